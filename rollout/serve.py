"""`simko serve rollout`: one rollout worker as a plain process (no Ray needed unless --weights ray).

    simko serve rollout --job J --model DIR --redis-url URL --verifier-url URL \\
        [--config rollout.yaml] [--set KEY=VALUE ...] [--max-staleness N] [--seed N] [--worker-id NAME]
        [--weights none|dir:PATH|ray]

`--config` holds a JobSpec `rollout` section (YAML or JSON); `--set` overrides its fields. SIGTERM
or SIGINT stops the worker after its current batch (which is then published and ACKed).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from pydantic import ValidationError

from rollout.config import RolloutJob, RolloutSection
from rollout.worker import RolloutWorker
from services.wire.weights import BroadcastSource, DirectoryWeights, WeightSource

log = logging.getLogger(__name__)


def weight_source_from_spec(spec: str | None, job_id: str, weight_sync: str = "object_store"
                            ) -> WeightSource | BroadcastSource | None:
    """`none` | `dir:PATH` | `ray` (the job's registry actor in the Ray cluster at RAY_ADDRESS, by
    rollout.weight_sync: the object store or broadcast)."""
    if not spec or spec == "none":
        return None
    if spec.startswith("dir:"):
        return DirectoryWeights(spec[4:])
    if spec == "ray":
        from services.wire.weight_registry import connect_ray_weights  # imports ray: only on this path

        return connect_ray_weights(job_id, address=os.environ.get("RAY_ADDRESS", "auto"), weight_sync=weight_sync)
    raise ValueError(f"unknown weight source {spec!r}: use none, dir:PATH or ray")


def parse_args(argv: Sequence[str] | None) -> tuple[RolloutJob, str | None]:
    p = argparse.ArgumentParser(prog="simko serve rollout", description="Run one rollout worker process.")
    p.add_argument("--config", help="JSON or YAML file with a JobSpec rollout section (--set overrides it)")
    p.add_argument("--job", dest="job_id", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--verifier-url", default="http://127.0.0.1:8001")
    p.add_argument("--max-staleness", type=int, default=0, help="as trainer.max_staleness")
    p.add_argument("--seed", type=int, default=0, help="as trainer.seed")
    p.add_argument("--worker-id", default="", help="the stream consumer name (default: host-pid)")
    p.add_argument("--weights", default=None, help="none | dir:PATH | ray")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a rollout section field, value parsed as JSON when possible")
    args = p.parse_args(argv)
    values: dict = {}
    if args.config:
        import yaml

        with open(args.config) as f:
            values.update(yaml.safe_load(f) or {})
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    try:
        section = RolloutSection(**values)
        job = RolloutJob(job_id=args.job_id, model_path=args.model, redis_url=args.redis_url,
                         verifier_url=args.verifier_url, max_staleness=args.max_staleness, seed=args.seed,
                         rollout=section, worker_id=args.worker_id)
    except (ValidationError, TypeError, ValueError) as exc:
        p.error(str(exc))
        raise  # unreachable: p.error exits
    return job, args.weights


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    job, weights_spec = parse_args(argv)
    source = weight_source_from_spec(weights_spec, job.job_id, job.rollout.weight_sync)
    worker = RolloutWorker(job, weight_source=source)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("rollout worker %s serving job %s", worker.worker_id, job.job_id)
    try:
        worker.run(stop)
    finally:
        log.info("final metrics %s", json.dumps(worker.metrics.snapshot()))
        worker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
