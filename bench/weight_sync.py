"""Weight update latency: the Ray object store against broadcast (rollout.weight_sync), in one run.

    python bench/weight_sync.py [--like qwen2.5-0.5b] [--layers 2] [--updates 3] [--model DIR]

A shape twin of the model (services/models/twins.py, random weights, the real vocabulary and
widths) is built into a temporary directory; a publisher Ray actor plays learner rank 0 and
publishes each version through the job's registry (RayWeights / RayBroadcastWeights); this process
holds one vLLM-CPU engine and loads each version (fetch + reload, or receive by broadcast straight
into the loaded weights). Per update, publish->loaded = the publisher's publish call plus this
side's load, measured one after the other (the worker syncs after the learner's publish returns).
The two paths alternate on the same engine. Prints one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class Publisher:
    """Learner rank 0's publishing side, in its own process (a Ray actor)."""

    def __init__(self, model_dir: str, job_id: str):
        from rollout.engine import load_checkpoint
        from services.wire.weight_registry import weights_for

        self.base = load_checkpoint(model_dir)
        self.transports = {sync: weights_for(f"{job_id}-{sync}", sync) for sync in ("object_store", "broadcast")}
        self.next: dict = {}

    def prepare(self, version: int) -> int:
        """New weights for `version` (untimed: the learner's update made them)."""
        import torch

        g = torch.Generator().manual_seed(version)
        self.next = {n: t + 1e-3 * torch.randn(t.shape, generator=g) for n, t in self.base.items()}
        return sum(t.numel() for t in self.next.values())

    def publish(self, sync: str, version: int) -> float:
        t0 = time.perf_counter()
        self.transports[sync].publish(version, self.next)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--like", default="qwen2.5-0.5b", help="the shape twin to build (simko make-model --like)")
    p.add_argument("--layers", type=int, default=2, help="decoder layers of the twin")
    p.add_argument("--model", help="an existing model directory instead of building a twin")
    p.add_argument("--updates", type=int, default=3, help="timed updates per path")
    args = p.parse_args(argv)

    import ray
    import torch

    from rollout.config import RolloutSection
    from rollout.engine import Engine
    from services.control.local_stack import ensure_ray_auth_token
    from services.wire.weight_registry import kill_registry, weights_for

    with tempfile.TemporaryDirectory(prefix="simko-weight-sync-") as tmp:
        model_dir = args.model
        if model_dir is None:
            from services.models.twins import build_twin

            model_dir = str(Path(tmp) / "twin")
            build_twin(args.like, model_dir, layers=args.layers)
        ensure_ray_auth_token()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        job_id = f"bench-{int(time.time())}"
        try:
            engine = Engine(model_dir, RolloutSection(weight_sync="broadcast", max_model_len=256,
                                                      kv_cache_bytes=256 << 20, enforce_eager=True))
            publisher = ray.remote(Publisher).options(num_cpus=0).remote(model_dir, job_id)
            sources = {sync: weights_for(f"{job_id}-{sync}", sync) for sync in ("object_store", "broadcast")}
            runs: dict[str, list[dict]] = {"object_store": [], "broadcast": []}
            version, params = 0, 0
            for _ in range(args.updates + 1):  # the first round of each path warms up (not counted)
                for sync in runs:
                    version += 1
                    params = ray.get(publisher.prepare.remote(version))
                    publish_s = ray.get(publisher.publish.remote(sync, version))
                    t0 = time.perf_counter()
                    if sync == "broadcast":
                        engine.receive_weights(sources[sync].offer(version))
                    else:
                        engine.update_weights(sources[sync].fetch(version), version)
                    load_s = time.perf_counter() - t0
                    assert engine.version == version, (sync, engine.version, version)
                    runs[sync].append({"publish_s": publish_s, "load_s": load_s, "total_s": publish_s + load_s})
            report = {"model": args.model or f"{args.like} twin, {args.layers} layers", "params": params,
                      "bytes_fp32": params * 4, "updates": args.updates, "torch": torch.__version__,
                      "backend": "gloo", "cpu_threads": torch.get_num_threads()}
            for sync, rows in runs.items():
                timed = rows[1:]
                report[sync] = {k: statistics.median(r[k] for r in timed) for k in ("publish_s", "load_s", "total_s")}
            report["broadcast_over_object_store_total"] = (report["broadcast"]["total_s"]
                                                           / report["object_store"]["total_s"])
            engine.shutdown()
        finally:
            for sync in ("object_store", "broadcast"):
                kill_registry(f"{job_id}-{sync}")
            ray.shutdown()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
