"""`simko demo`: SimKO against GRPO on the embedded default, run by the real distributed system.

    write a seeded train / held-out split of the synthetic suite (run_dir/data/)
    for loss in (grpo, simko):   same shipped checkpoint, seed, data order and step budget
        services.control.controller.run_job  (private redis + verifier service + Ray; vLLM rollout worker
                                      actor; DeepSpeed learner actor) -> run_dir/<loss>/final
    pass@K, K = 1..64, n = 64 samples per held-out problem, for base / grpo / simko
        (one vLLM engine whose weights are swapped in place; graded by the verifier service)
    run_dir/report.md: pass@K table, pass@K curves, Lambda^(k) over steps, entropy histograms, reward

The step budget is sized from --minutes with per-step and fixed costs measured on a 2-core CPU
machine (see docs/demo_results.md); both algorithms always get the same number of steps.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from services.embedded.tiny_reasoner import MAX_TOKENS, TEMPLATE

LOSSES = ("grpo", "simko")
# Measured on the 2-core dev machine (shared with other jobs): ~0.76 s per training step of
# demo_spec, ~35 s fixed per run (Ray + vLLM + DeepSpeed start-up, export), ~60 s to evaluate three
# models on 48 problems x 64 samples. The constants below add head-room for a busier machine.
STEP_S, RUN_FIXED_S, EVAL_FIXED_S, EVAL_S_PER_PROBLEM = 1.0, 50.0, 30.0, 0.6


@dataclass(frozen=True)
class DemoPlan:
    steps: int
    held_out: int = 48
    train: int = 2000
    n_eval: int = 64
    seed: int = 0
    ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    overrides: tuple[str, ...] = ()  # `KEY=VALUE` JobSpec overrides (services.control.jobspec.apply_override)

    @classmethod
    def for_minutes(cls, minutes: float, *, seed: int = 0) -> "DemoPlan":
        plan = cls(steps=1, seed=seed)
        eval_s = EVAL_FIXED_S + 3 * plan.held_out * EVAL_S_PER_PROBLEM
        train_s = minutes * 60 - eval_s - len(LOSSES) * RUN_FIXED_S
        steps = int(train_s / len(LOSSES) / STEP_S)
        if steps < 5:
            raise ValueError(f"--minutes {minutes} leaves no room to train; use at least "
                             f"{(eval_s + len(LOSSES) * (RUN_FIXED_S + 5 * STEP_S)) / 60:.1f}")
        return cls(steps=steps, seed=seed)


    def with_sizes(self, *, steps: int | None = None, held_out: int | None = None,
                   n_eval: int | None = None) -> "DemoPlan":
        """Explicit sizes (smoke tests, longer runs) instead of the ones derived from --minutes."""
        n = n_eval or self.n_eval
        if min(x for x in (steps, held_out, n) if x is not None) < 1:
            raise ValueError("--steps, --held-out and --n-eval must be >= 1")
        return replace(self, steps=steps or self.steps, held_out=held_out or self.held_out, n_eval=n,
                       ks=tuple(k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= n))


    def with_overrides(self, items: list[str]) -> "DemoPlan":
        """`--set KEY=VALUE` JobSpec overrides, applied to both arms alike. Both arms' specs are
        validated now, so a bad override fails before anything starts, naming the field."""
        from services.control.jobspec import JobSpec

        plan = replace(self, overrides=self.overrides + tuple(items))
        for loss in LOSSES:
            JobSpec.parse(demo_spec(plan, loss, Path("train.jsonl")))
        return plan


def demo_spec(plan: DemoPlan, loss: str, train_file: Path) -> dict:
    """The JobSpec of one arm. GRPO and SimKO differ only in algorithm.loss (+ its hparams)."""
    from services.control.jobspec import apply_override

    hparams = {"top_k": 3, "alpha": 0.01, "tau_quantile": 0.8, "lambda_top1": 1.1} if loss == "simko" else {}
    spec = {
        "name": f"demo-{loss}",
        "model": {"path": "builtin:tiny"},
        "data": {"train": str(train_file), "prompt_template": TEMPLATE},
        "algorithm": {"loss": loss, "loss_hparams": hparams, "advantage": "grpo"},
        "rollout": {"workers": 1, "n": 8, "temperature": 1.0, "max_tokens": MAX_TOKENS, "max_model_len": 256,
                    "kv_cache_bytes": 256 << 20, "batch_groups": 8},
        # 3e-4 collapsed both arms within 100 steps (pass@64 93.8 -> ~43); 3e-5 improves pass@1.
        "learner": {"lr": 3e-5, "batch_prompts": 8, "mini_batch_prompts": 8, "max_seq_len": 256,
                    "micro_batch_tokens": 8192},
        "trainer": {"steps": plan.steps, "max_staleness": 0, "seed": plan.seed},
        "verifier": {"workers": 1},
    }
    for item in plan.overrides:
        apply_override(spec, item)
    return spec


def write_split(plan: DemoPlan, data_dir: Path) -> tuple[Path, Path]:
    from verifier.synthetic import split_mix, write_jsonl

    train, held = split_mix(plan.train, plan.held_out, seed=plan.seed + 1000)
    return (write_jsonl(train, data_dir / "train.jsonl", "train"),
            write_jsonl(held, data_dir / "heldout.jsonl", "heldout"))


def train_arm(plan: DemoPlan, loss: str, train_file: Path, run_dir: Path) -> float:
    from services.control.controller import run_job
    from services.control.jobs import JobState
    from services.control.jobspec import JobSpec
    from services.control.progress import StepProgress

    spec = JobSpec.parse(demo_spec(plan, loss, train_file))
    t0 = time.perf_counter()
    with StepProgress(total=plan.steps, title=f"train {loss}") as progress:
        outcome = run_job(spec, job_id=f"demo-{loss}-{int(time.time())}", run_dir=run_dir, on_step=progress.update)
    if outcome is not JobState.SUCCEEDED:
        raise RuntimeError(f"the {loss} run ended {outcome.value}; logs in {run_dir / 'logs'}")
    return time.perf_counter() - t0


def evaluate_all(plan: DemoPlan, models: dict[str, Path], heldout: Path, out: Path) -> None:
    """pass@K of every model with ONE engine: later models are swapped in with an in-place weight
    update (same architecture and tokenizer), which saves an engine start-up per model."""
    from rich.progress import Progress

    from rollout.config import RolloutSection
    from rollout.engine import Engine, load_checkpoint
    from services.control.local_stack import start_verifier
    from services.data import load_dataset
    from services.evaluation.results import EvalSettings, write_results
    from services.evaluation.sampling import count_correct, service_grader

    # The arms' own sampling and engine settings, with n_eval samples per problem.
    sampling = RolloutSection(**{**demo_spec(plan, LOSSES[0], heldout)["rollout"], "n": plan.n_eval,
                                 "top_logprobs": 0})
    settings = EvalSettings(ks=plan.ks, template=TEMPLATE, seed=plan.seed, sampling=sampling)
    examples = load_dataset(heldout)
    names = list(models)
    verifier = start_verifier(workers=1, log_dir=out / "logs")
    engine = None
    try:
        grade = service_grader(verifier.url)
        engine = Engine(str(models[names[0]]), sampling, seed=plan.seed)
        with Progress() as progress:
            for version, name in enumerate(names):
                if version:
                    engine.update_weights(load_checkpoint(models[name]), version=version)
                task = progress.add_task(f"pass@K {name} (n={plan.n_eval})", total=len(examples))
                counts = count_correct(engine, examples, template=TEMPLATE, n=plan.n_eval, grade=grade,
                                       seed=plan.seed, chunk=8,
                                       on_chunk=lambda m, t=task: progress.advance(t, m))
                eval_dir = out / name / "eval"
                write_results(eval_dir, counts, settings, {"model": str(models[name]), "data": str(heldout)})
    finally:
        if engine is not None:
            engine.shutdown()
        verifier.stop()


def run_demo(out: Path, plan: DemoPlan) -> Path:
    from services.evaluation.report import load_run, write_report

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    train_file, heldout = write_split(plan, out / "data")
    (out / "plan.json").write_text(json.dumps({"steps": plan.steps, "held_out": plan.held_out, "train": plan.train,
                                               "n_eval": plan.n_eval, "seed": plan.seed,
                                               "overrides": list(plan.overrides)}, indent=2) + "\n")
    walls = {}
    for loss in LOSSES:
        walls[loss] = train_arm(plan, loss, train_file, out / loss)
    from services.models import resolve_model_path

    models = {"base": Path(resolve_model_path("builtin:tiny")), **{loss: out / loss / "final" for loss in LOSSES}}
    t_eval = time.perf_counter()
    evaluate_all(plan, models, heldout, out)
    eval_s = time.perf_counter() - t_eval
    total = time.perf_counter() - t0
    runs = [load_run(out / "base", name="base"), *(load_run(out / loss, name=loss) for loss in LOSSES)]
    preamble = (f"Shipped tiny-reasoner (`builtin:tiny`) trained with GRPO and with SimKO from the same checkpoint, "
                f"seed {plan.seed}, {plan.steps} learner steps each (8 prompts x 8 samples per step), on "
                f"{plan.train} synthetic problems; evaluated on {plan.held_out} held-out problems with "
                f"n = {plan.n_eval} samples each (temperature 1.0).\n\n"
                f"Wall time: total {total / 60:.1f} min (GRPO {walls['grpo']:.0f}s, SimKO {walls['simko']:.0f}s, "
                f"evaluation {eval_s:.0f}s). Command: `simko demo --out {out} --seed {plan.seed} --steps {plan.steps} "
                f"--held-out {plan.held_out} --n-eval {plan.n_eval}"
                + "".join(f" --set {item}" for item in plan.overrides) + "`.")
    return write_report(runs, out, title="SimKO vs GRPO on the embedded default", preamble=preamble)
