"""The `simko` command line. Each subcommand is a thin handler that imports its component lazily,
so `simko --help` is instant and a component's heavy imports (vLLM, DeepSpeed, Ray) load only
when used. `serve learner` exits with status 2 and says where the learner runs instead."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOT_BUILT_EXIT = 2


class NotBuiltYet(RuntimeError):
    """A subcommand that exists by name but not as this kind of process (exit status 2, with why)."""


def _serve(args: argparse.Namespace) -> int:
    if args.component == "verifier":
        from verifier.service import run_server

        run_server(args.host, args.port, args.workers)  # None: SIMKO_VERIFIER_* settings decide
        return 0
    if args.component == "api":
        from services.api.app import run_server as run_api

        run_api(args.host or "127.0.0.1", args.port or 8000)
        return 0
    if args.component == "rollout":
        from rollout.worker import main as rollout_main

        return rollout_main(args.extra) or 0
    raise NotBuiltYet("`simko serve learner` as a standalone process is not available yet: the learner runs "
                      "as a Ray actor of each job's controller (start the node with `ray start`).")


def _train(args: argparse.Namespace) -> int:
    from services.control.jobs import JobState, new_job_id
    from services.control.jobspec import JobSpec, JobSpecError

    try:
        spec = JobSpec.from_yaml(args.config, args.set)
    except JobSpecError as exc:
        print(f"simko train: {exc}", file=sys.stderr)
        return 2
    from services.control.controller import run_job
    from services.control.progress import StepProgress

    job_id = new_job_id(spec.name)
    run_dir = Path(args.out or Path("runs") / job_id).resolve()
    with StepProgress(total=spec.trainer.steps, title=f"{spec.name} ({spec.algorithm.loss})") as progress:
        outcome = run_job(spec, job_id=job_id, run_dir=run_dir, on_step=progress.update)
    print(f"{outcome.value}: {run_dir / 'metrics.jsonl'}")
    return 0 if outcome is JobState.SUCCEEDED else 1


def _demo(args: argparse.Namespace) -> int:
    import time

    started = time.monotonic()  # the budget counts from here: set-up (scripts/setup.sh) is excluded
    from services.embedded.arms import DEFAULT_ARMS, parse_arms
    from services.embedded.demo import DemoPlan, run_demo

    try:
        given = {"minutes": args.minutes, "steps": args.steps, "held_out": args.held_out, "n_eval": args.n_eval,
                 "seed": args.seed, "arms": parse_arms(args.algos) if args.algos else DEFAULT_ARMS}
        plan = DemoPlan(**{k: v for k, v in given.items() if v is not None}).with_overrides(args.set)
    except ValueError as exc:
        print(f"simko demo: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")).resolve()
    sizing = f"{plan.steps} steps per arm" if plan.steps else f"budget {plan.minutes:g} min, steps sized on this machine"
    print(f"simko demo: {', '.join(plan.arms)}; {sizing} -> {out}", flush=True)
    report = run_demo(out, plan, started=started)
    print(report.read_text())
    print(f"report: {report}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from rollout.config import RolloutSection
    from services.control.eval_job import evaluate
    from services.data.config import DataSection
    from services.evaluation.results import EVAL_SAMPLING, EvalSettings, format_table, parse_ks

    given = {"n": args.n, "max_tokens": args.max_tokens, "temperature": args.temperature,
             "max_model_len": args.max_model_len}
    try:
        sampling = RolloutSection(**{**EVAL_SAMPLING.model_dump(), **{k: v for k, v in given.items() if v is not None}})
        ks = parse_ks(args.k) if args.k else tuple(2 ** i for i in range(11) if 2 ** i <= sampling.n)
        settings = EvalSettings(ks=ks, template=args.template, seed=args.seed, sampling=sampling)
        task_map = dict(_key_value(item, "--task-map") for item in args.task_map)
        DataSection(train=args.data, format=args.format, task_map=task_map)  # the JobSpec's checks of them
    except ValueError as exc:
        print(f"simko eval: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("runs") / f"eval-{Path(args.model).name}-{Path(args.data).stem}").resolve()
    result = evaluate(args.model, args.data, settings, out_dir=out, fmt=args.format, default_task=args.task,
                      limit=args.limit, task_map=task_map, on_bad_rows=args.on_bad_rows)
    print(format_table({args.model: result["pass_at_k"]}))
    print(f"per-problem counts: {out / 'counts.jsonl'}; table: {out / 'pass_at_k.json'}")
    return 0


def _key_value(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.rpartition("=")
    if not sep or not key or not value:
        raise ValueError(f"{flag} takes KEY=VALUE, got {item!r}")
    return key, value


def _report(args: argparse.Namespace) -> int:
    from services.evaluation.report import load_run, write_report

    try:
        runs = [load_run(d) for d in args.run_dirs]
    except FileNotFoundError as exc:
        print(f"simko report: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or (Path(args.run_dirs[0]) if len(runs) == 1 else Path("runs") / "report"))
    print(f"report: {write_report(runs, out)}")
    return 0


def _make_tiny_model(args: argparse.Namespace) -> int:
    import json

    from services.embedded.tiny_reasoner import TinyRecipe, build

    recipe = TinyRecipe(seed=args.seed, sft_steps=args.steps)
    result = build(args.out, recipe)
    print(json.dumps({"pass_at_k": result["pass_at_k"], "per_task": result["per_task"],
                      "sft_seconds": result["sft_seconds"]}, indent=2))
    print(f"model: {args.out}")
    return 0


def _make_model(args: argparse.Namespace) -> int:
    import json

    from services.models.twins import build_twin

    try:
        summary = build_twin(args.like, args.out, layers=args.layers, seed=args.seed, dtype=args.dtype)
    except ValueError as exc:
        print(f"simko make-model: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _api_command(args: argparse.Namespace) -> int:
    """submit / status / cancel / resume / logs / scale against a running job API."""
    import json
    import time

    from services.api.client import ApiError, JobApiClient
    from services.control.jobspec import JobSpec, JobSpecError

    client = JobApiClient(args.api, token=args.token)
    try:
        if args.command == "submit":
            try:
                spec = JobSpec.from_yaml(args.config, args.set)  # validate (and resolve paths) before sending
            except JobSpecError as exc:
                print(f"simko submit: {exc}", file=sys.stderr)
                return 2
            print(client.submit(spec.model_dump(mode="json")))
        elif args.command == "status":
            print(json.dumps(client.job(args.job_id) if args.job_id else client.jobs(), indent=2))
        elif args.command == "cancel":
            print(json.dumps(client.cancel(args.job_id)))
        elif args.command == "resume":
            print(json.dumps(client.resume(args.job_id)))
        elif args.command == "scale":
            print(json.dumps(client.scale(args.job_id, args.replicas)))
        elif args.command == "logs":
            seen = 0
            while True:
                for row in client.metrics(args.job_id, since=seen):
                    print(json.dumps(row), flush=True)
                    seen += 1
                if not args.follow or client.job(args.job_id)["state"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(2.0)
    except ApiError as exc:
        print(f"simko {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simko", description="SimKO RLVR training: rollout, verifier, learner.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from services.embedded.demo import DemoPlan  # torch-free; its defaults are the help's (declared once)

    plan = DemoPlan()
    demo = sub.add_parser("demo", help="train GRPO and SimKO on the embedded tiny model and write a pass@K report")
    demo.add_argument("--out", default=None, help="run directory (default: runs/demo-<time>/)")
    demo.add_argument("--minutes", type=float, default=None,
                      help=f"wall-time budget, set-up excluded (default {plan.minutes:g}); steps are sized to it from costs "
                           "measured during the run")
    demo.add_argument("--seed", type=int, default=None, help=f"(default {plan.seed})")
    demo.add_argument("--steps", type=int, default=None,
                      help="learner steps per algorithm (default: sized to --minutes; with --steps no budget)")
    demo.add_argument("--held-out", type=int, default=None, help=f"held-out problems evaluated (default {plan.held_out})")
    demo.add_argument("--n-eval", type=int, default=None,
                      help=f"samples per held-out problem, pass@K up to it (default {plan.n_eval})")
    demo.add_argument("--algos", default=None, metavar="A,B,...",
                      help=f"arms (default {','.join(plan.arms)}; also nsr, w_reinforce, kl_cov); grpo and simko always run")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a field of every arm's JobSpec (e.g. learner.lr=3e-5)")
    demo.set_defaults(handler=_demo)

    train = sub.add_parser("train", help="run a training job locally from a JobSpec YAML")
    train.add_argument("config")
    train.add_argument("--out", default=None, help="run directory (default: runs/<job-id>/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a JobSpec field")
    train.set_defaults(handler=_train)

    evaluate = sub.add_parser("eval", help="pass@K evaluation of a model directory on a dataset")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--n", type=int, default=None, help="samples per problem (default: services.evaluation.results.EVAL_SAMPLING)")
    evaluate.add_argument("--k", default=None, help="comma-separated K (default: 1, 2, 4, ... up to n)")
    evaluate.add_argument("--out", default=None, help="where counts.jsonl and pass_at_k.json go")
    evaluate.add_argument("--template", default="boxed",
                          help="text prompts: template name (services.data.TEMPLATES) or a string with {prompt}; "
                               "chat prompts use the model's chat template")
    evaluate.add_argument("--format", default="auto",
                          help="dataset layout (auto, jsonl, json, parquet, arrow, hf_disk, math, gsm8k, bbh)")
    evaluate.add_argument("--task", default="math", help="verifier task for rows that name no task or data_source")
    evaluate.add_argument("--task-map", action="append", default=[], metavar="SOURCE=TASK",
                          help="verl rows: map a data_source (or ability) to a verifier task (repeatable)")
    evaluate.add_argument("--on-bad-rows", choices=["error", "skip"], default="error",
                          help="malformed rows: stop naming the row (error), or drop and count them (skip)")
    evaluate.add_argument("--max-tokens", type=int, default=None, help="default: EVAL_SAMPLING")
    evaluate.add_argument("--max-model-len", type=int, default=None, help="default: EVAL_SAMPLING")
    evaluate.add_argument("--temperature", type=float, default=None, help="default: EVAL_SAMPLING")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate only the first N problems")
    evaluate.set_defaults(handler=_eval)

    submit = sub.add_parser("submit", help="submit a JobSpec YAML to a running job API")
    submit.add_argument("config")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a JobSpec field")
    for name, text in (("status", "show one job, or all jobs"), ("cancel", "cancel a job"),
                       ("resume", "resume a failed or cancelled job from its newest checkpoint"),
                       ("logs", "print a job's step metrics (JSON lines)"), ("scale", "resize a job's rollout pool")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("job_id", nargs="?" if name == "status" else None)
        if name == "scale":
            cmd.add_argument("replicas", type=int)
        if name == "logs":
            cmd.add_argument("--follow", "-f", action="store_true")
    for cmd in (submit, *(sub.choices[n] for n in ("status", "cancel", "resume", "logs", "scale"))):
        cmd.add_argument("--api", default="http://127.0.0.1:8000", help="job API base URL")
        cmd.add_argument("--token", default=None, help="bearer token (default: $SIMKO_API_TOKEN)")
        cmd.set_defaults(handler=_api_command)

    serve = sub.add_parser("serve", help="run one service of the system in the foreground")
    serve.add_argument("component", choices=["api", "verifier", "rollout", "learner"])
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1, or SIMKO_VERIFIER_HOST)")
    serve.add_argument("--port", type=int, default=None, help="default: api 8000, verifier 8001 (or SIMKO_VERIFIER_PORT)")
    serve.add_argument("--workers", type=int, default=None,
                       help="verifier grader processes (default: SIMKO_VERIFIER_WORKERS, else 2)")
    # Rollout options (`simko serve rollout --job J --model M ...`) are collected by parse_args below.
    serve.set_defaults(handler=_serve)

    report = sub.add_parser("report", help="comparison table and plots across run directories")
    report.add_argument("run_dirs", nargs="+")
    report.add_argument("--out", default=None, help="report folder (default: the run, or runs/report)")
    report.set_defaults(handler=_report)

    tiny = sub.add_parser("make-tiny-model", help="build the embedded tiny model and tokenizer locally")
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--steps", type=int, default=400, help="supervised warm-start steps")
    tiny.set_defaults(handler=_make_tiny_model)

    twin = sub.add_parser("make-model", help="write a random-init model with a real model's architecture (a shape twin)")
    twin.add_argument("--like", required=True, help="qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-math-7b or llama3.2-3b")
    twin.add_argument("--layers", type=int, default=2, help="decoder layers (the only reducible dimension)")
    twin.add_argument("--out", required=True)
    twin.add_argument("--seed", type=int, default=0)
    twin.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    twin.set_defaults(handler=_make_model)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line. `serve rollout` hands options it does not know to the rollout
    worker's own parser (its --job, --model, ... options); any other unknown option is an error.
    Options may come before or after the component."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.extra = unknown
    if unknown and not (args.command == "serve" and args.component == "rollout"):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.handler(args) or 0
    except NotBuiltYet as exc:
        print(f"simko: {exc}", file=sys.stderr)
        return NOT_BUILT_EXIT


if __name__ == "__main__":
    sys.exit(main())
