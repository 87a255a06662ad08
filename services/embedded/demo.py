"""`simko demo`: SimKO against GRPO (and optional baselines) on the embedded default, run by the real
distributed system, sized to --minutes from costs it measures on this machine as it runs.

    write a seeded train / held-out split of the synthetic suite (run_dir/data/)
    pass@K of the base model on the held-out split        -> measures the evaluation's cost
    first arm (GRPO), k calibration steps                 -> measures start-up, step and shutdown costs
    plan N steps per arm from the time left (services/embedded/budget.py); print the plan and its ETA
    first arm resumed from its checkpoint to N steps; every other arm N steps from the same base model
        (services.control.controller.run_job: private redis + verifier service + Ray; vLLM rollout
         worker actor; DeepSpeed learner actor; same seed, data order and settings: only the
         algorithm section differs)
    pass@K of the trained models on the same problems (one vLLM engine, weights swapped in place)
    run_dir/report.md (services/evaluation/report.py): pass@K with bootstrap intervals, SimKO - GRPO
        per K (paired bootstrap over problems), Lambda^(k) over steps, entropy histograms, timing

With --steps the run is sized by hand (no calibration, no budget); the ETA is still measured.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from services.embedded import budget
from services.embedded.arms import DEFAULT_ARMS, algorithm_section
from services.embedded.progress import DemoLog
from services.embedded.tiny_reasoner import MAX_TOKENS, TEMPLATE

ALL_KS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class DemoPlan:
    minutes: float = 14.0  # wall-time budget, set-up excluded (used when steps is None)
    steps: int | None = None  # learner steps per arm; None: sized to `minutes` at run time
    held_out: int = 200  # one problem moves pass@K by 0.5 points
    train: int = 2000
    n_eval: int = 32  # samples per held-out problem; pass@K for K up to it
    seed: int = 0
    arms: tuple[str, ...] = DEFAULT_ARMS
    calibration_steps: int = 10  # steps of the first arm that measure the step and start-up costs (budget.py)
    overrides: tuple[str, ...] = ()  # `KEY=VALUE` JobSpec overrides (services.control.jobspec.apply_override)

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise ValueError("--minutes must be > 0")
        if min(self.held_out, self.train, self.n_eval) < 1 or (self.steps is not None and self.steps < 1):
            raise ValueError("--steps, --held-out and --n-eval must be >= 1")
        if self.calibration_steps < 2:
            raise ValueError("calibration_steps must be >= 2 (step 1 includes the engines' start-up)")

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(k for k in ALL_KS if k <= self.n_eval)

    def with_overrides(self, items: list[str]) -> "DemoPlan":
        """`--set KEY=VALUE` JobSpec overrides, applied to every arm alike. Every arm's spec is
        validated now, so a bad override fails before anything starts, naming the field."""
        from services.control.jobspec import JobSpec

        plan = replace(self, overrides=self.overrides + tuple(items))
        for arm in plan.arms:
            JobSpec.parse(demo_spec(plan, arm, Path("train.jsonl"), steps=1))
        return plan


def demo_spec(plan: DemoPlan, arm: str, train_file: Path, *, steps: int) -> dict:
    """The JobSpec of one arm. Arms differ only in the algorithm section (services/embedded/arms.py)."""
    from services.control.jobspec import apply_override

    spec = {
        "name": f"demo-{arm}",
        "model": {"path": "builtin:tiny"},
        "data": {"train": str(train_file), "prompt_template": TEMPLATE},
        "algorithm": algorithm_section(arm),
        # enforce_eager: a demo starts four or five vLLM engines (base evaluation; one per run_job, and the
        # first arm's calibration and resumed runs are two; trained evaluation). vLLM's graph compilation
        # costs ~35 s of each on the slower machine profile (AMD EPYC: LLM() 41 s compiled, 6 s eager; a
        # 4-minute demo overran by 21% compiled), and a cold cache's first job ~80 s more (Intel: first step
        # 111 s compiled, 31 s eager). The price is generation: on AVX-512 Intel 0.89-0.97 s per step eager
        # against 0.67-0.75 s compiled (README, "Start-up"). `--set rollout.enforce_eager=false` compiles.
        "rollout": {"workers": 1, "n": 8, "temperature": 1.0, "max_tokens": MAX_TOKENS, "max_model_len": 256,
                    "kv_cache_bytes": 256 << 20, "batch_groups": 8, "enforce_eager": True},
        # lr: 3e-4 collapsed both arms within 100 steps on the earlier model (pass@64 93.8 -> ~43); 3e-5 moved
        # the policy too little in the ~50 steps a 14-minute budget buys on a slow 2-core machine for
        # GRPO's concentration to show. 1e-4 sits between (docs/demo_results.md).
        "learner": {"lr": 1e-4, "batch_prompts": 8, "mini_batch_prompts": 8, "max_seq_len": 256,
                    "micro_batch_tokens": 8192},
        "trainer": {"steps": steps, "max_staleness": 0, "seed": plan.seed},
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


@dataclass
class RunTiming:
    """One run_job call: when it started, when each step's metrics arrived, when it returned."""
    started: float
    step_times: list[float] = field(default_factory=list)
    ended: float = 0.0

    def step_walls(self) -> list[float]:
        marks = [self.started, *self.step_times]
        return [b - a for a, b in zip(marks, marks[1:])]

    def costs(self, prior: budget.Costs) -> budget.Costs:
        """`prior` with this run's measured start-up and step costs, and its shutdown once it ended."""
        step_s = budget.steady_step_s(self.step_walls())
        end = self.ended - self.step_times[-1] if self.ended else prior.run_end_s
        # start-up + the early steps' excess over a steady step: every run pays both
        start = self.step_times[-1] - self.started - len(self.step_times) * step_s
        return replace(prior, step_s=step_s, run_start_s=max(0.0, start),
                       run_end_s=end)


def train_arm(plan: DemoPlan, arm: str, train_file: Path, run_dir: Path, *, steps: int, log: DemoLog,
              eta) -> RunTiming:
    """One run_job of `arm` up to `steps` (resuming from run_dir's checkpoint if there is one).
    `eta(timing, metrics)` -> seconds left in the demo, or None."""
    from services.control.controller import run_job
    from services.control.jobs import JobState
    from services.control.jobspec import JobSpec

    spec = JobSpec.parse(demo_spec(plan, arm, train_file, steps=steps))
    timing = RunTiming(started=time.monotonic())
    first = _last_step(run_dir)
    with log.arm(f"train {arm}", steps, first=first) as progress:
        progress.eta = lambda metrics: eta(timing, metrics)

        def on_step(metrics: dict) -> None:
            timing.step_times.append(time.monotonic())
            progress.update(metrics)

        outcome = run_job(spec, job_id=f"demo-{arm}-{int(time.time())}", run_dir=run_dir, on_step=on_step)
    timing.ended = time.monotonic()
    if outcome is not JobState.SUCCEEDED:
        raise RuntimeError(f"the {arm} run ended {outcome.value}; logs in {run_dir / 'logs'}")
    return timing


def _last_step(run_dir: Path) -> int:
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return 0
    lines = [line for line in metrics.read_text().splitlines() if line.strip()]
    return int(json.loads(lines[-1]).get("trainer/step", 0)) if lines else 0


@dataclass
class EvalTiming:
    setup_s: float = 0.0  # verifier + engine start + a warm-up batch
    model_s: dict[str, float] = field(default_factory=dict)


def evaluate_models(plan: DemoPlan, models: dict[str, Path], heldout: Path, out: Path, log: DemoLog) -> EvalTiming:
    """pass@K of every model with ONE engine: later models are swapped in with an in-place weight
    update (same architecture and tokenizer), which saves an engine start-up per model."""
    from rollout.config import RolloutSection
    from rollout.engine import Engine, load_checkpoint
    from services.control.local_stack import start_verifier
    from services.data import load_dataset
    from services.evaluation.results import EvalSettings, write_results
    from services.evaluation.sampling import count_correct, service_grader

    import vllm  # noqa: F401  (a one-time cost of this process: outside the timed set-up, which repeats)

    t0 = time.monotonic()
    # The arms' own sampling and engine settings, with n_eval samples per problem.
    sampling = RolloutSection(**{**demo_spec(plan, plan.arms[0], heldout, steps=1)["rollout"], "n": plan.n_eval,
                                 "top_logprobs": None})
    settings = EvalSettings(ks=plan.ks, template=TEMPLATE, seed=plan.seed, sampling=sampling)
    examples = load_dataset(heldout)
    names = list(models)
    timing = EvalTiming()
    verifier = start_verifier(workers=1, log_dir=out / "logs")
    engine = None
    try:
        grade = service_grader(verifier.url)
        engine = Engine(str(models[names[0]]), sampling, seed=plan.seed)
        # One throw-away batch: an engine's first generate sets up its kernels (seconds); without it that
        # lands in the first model's time, which budget.py multiplies by the number of models. Its own
        # prompts: prefix caching must not see the held-out ones first (per-request seeds keep the rest).
        engine.generate([f"warm-up {i}:" for i in range(8)], plan.n_eval, seed=plan.seed)
        timing.setup_s = time.monotonic() - t0
        for version, name in enumerate(names):
            started = time.monotonic()
            if version:
                engine.update_weights(load_checkpoint(models[name]), version=version)
            counts = count_correct(engine, examples, template=TEMPLATE, n=plan.n_eval, grade=grade, seed=plan.seed,
                                   chunk=8)
            write_results(out / name / "eval", counts, settings, {"model": str(models[name]), "data": str(heldout)})
            timing.model_s[name] = time.monotonic() - started
            log.say(f"pass@K {name}: {len(examples)} problems x {plan.n_eval} samples in {timing.model_s[name]:.0f}s")
    finally:
        if engine is not None:
            engine.shutdown()
        verifier.stop()
    return timing


class Demo:
    """One `simko demo` run: the phases of the module docstring, with the budget kept as it goes."""

    def __init__(self, out: Path, plan: DemoPlan, *, started: float | None = None):
        self.out, self.plan = out, plan
        self.started = time.monotonic() if started is None else started
        self.budget_s = plan.minutes * 60 if plan.steps is None else None
        self.log = DemoLog(self.started, self.budget_s)
        self.prior: budget.Costs | None = None  # the evaluation's costs, before any run was measured
        self.costs: budget.Costs | None = None  # everything measured (after the first run)
        self.steps = plan.steps
        self.phases: dict[str, float] = {}  # phase -> seconds, for the report

    # ------------------------------------------------------------------ the ETA
    def eta(self, arm_index: int, timing: RunTiming, metrics: dict, *, calibrating: bool) -> float | None:
        """Seconds left, from the costs measured so far and this run's own step time once it has
        steady steps; None while the number of steps is not planned yet."""
        if self.steps is None or calibrating or self.prior is None:
            return None
        costs = self.costs
        if len(timing.step_times) >= 3:
            live = timing.costs(costs or self.prior)
            costs = costs.with_step_s(live.step_s) if costs else live
        if costs is None:
            return None
        return budget.remaining_s(costs, arm=arm_index, arms=len(self.plan.arms), steps=self.steps,
                                  step=int(metrics.get("trainer/step", 0)))

    def _train(self, arm_index: int, steps: int, train_file: Path, *, calibrating: bool = False) -> RunTiming:
        arm = self.plan.arms[arm_index]
        t0 = time.monotonic()
        timing = train_arm(self.plan, arm, train_file, self.out / arm, steps=steps, log=self.log,
                           eta=lambda timing, m: self.eta(arm_index, timing, m, calibrating=calibrating))
        self.phases[f"train {arm}"] = self.phases.get(f"train {arm}", 0.0) + time.monotonic() - t0
        return timing

    # ------------------------------------------------------------------ the phases
    def run(self) -> Path:
        from services.models import resolve_model_path

        plan, out, log = self.plan, self.out, self.log
        out.mkdir(parents=True, exist_ok=True)
        train_file, heldout = write_split(plan, out / "data")
        arms = plan.arms
        log.say(f"arms {', '.join(arms)}; {plan.held_out} held-out problems x {plan.n_eval} samples; "
                + (f"steps sized to a {plan.minutes:g}-minute budget from costs measured now"
                   if self.steps is None else f"{self.steps} steps per arm (no budget)"))

        t0 = time.monotonic()
        base = {"base": Path(resolve_model_path(demo_spec(plan, arms[0], train_file, steps=1)["model"]["path"]))}
        timing = evaluate_models(plan, base, heldout, out, log)
        self.phases["eval base"] = time.monotonic() - t0
        # step_s is a placeholder until the first run measures it
        prior = self.prior = budget.Costs(eval_setup_s=timing.setup_s, eval_model_s=timing.model_s["base"],
                                          run_start_s=0.0, run_end_s=0.0, step_s=1.0)

        if self.steps is None:
            k = plan.calibration_steps
            calibration = self._train(0, k, train_file, calibrating=True)
            report_started = time.monotonic()
            self._report(partial=True)  # base + the calibration steps so far; also times the report itself
            self.costs = replace(calibration.costs(prior), report_s=time.monotonic() - report_started)
            # planned with the step time's upper bound; the ETA then follows the steps as they come
            planning = self.costs.with_step_s(budget.planning_step_s(calibration.step_walls()))
            self.steps = budget.plan_steps(self.budget_s - log.elapsed(), planning, calibrated=k, arms=len(arms))
            self._write_plan()
            left = budget.after_calibration_s(planning, steps=self.steps, calibrated=k, arms=len(arms))
            log.say(f"plan: {self.steps} steps per arm (step {self.costs.step_s:.2f}s, planned at "
                    f"{planning.step_s:.2f}s; run start-up "
                    f"{self.costs.run_start_s:.0f}s + shutdown {self.costs.run_end_s:.0f}s, evaluation "
                    f"{self.costs.eval_setup_s:.0f}s + {self.costs.eval_model_s:.0f}s per model); {log.eta_text(left)}")
            if self.steps == k:
                log.say(f"the budget leaves no room beyond the {k} calibration steps on this machine")
            else:
                self._train(0, self.steps, train_file)  # resumes from the calibration run's checkpoint
        else:
            self._write_plan()
            first = self._train(0, self.steps, train_file)
            if len(first.step_times) >= 2:
                self.costs = first.costs(prior)
        for index in range(1, len(arms)):
            self._train(index, self.steps, train_file)

        t0 = time.monotonic()
        self.log.say(f"evaluating {', '.join(arms)} ({log.eta_text(budget.eval_s(self.costs, len(arms)) if self.costs else None)})")
        evaluate_models(plan, {arm: out / arm / "final" for arm in arms}, heldout, out, log)
        self.phases["eval trained"] = time.monotonic() - t0
        report = self._report()
        total = log.elapsed()
        verdict = f" (budget {format_minutes(self.budget_s)}: {100 * (total / self.budget_s - 1):+.0f}%)" if self.budget_s else ""
        log.say(f"done in {format_minutes(total)}{verdict}; report {report}")
        return report

    def _write_plan(self) -> None:
        plan = {**asdict(self.plan), "steps_per_arm": self.steps,
                "measured_costs_s": asdict(self.costs) if self.costs else None}
        (self.out / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")

    def _report(self, *, partial: bool = False) -> Path:
        from services.evaluation.report import load_run, write_report

        plan, out = self.plan, self.out
        total = self.log.elapsed()
        if partial:  # while training: what exists so far, replaced by the full report at the end
            runs = [load_run(out / name, name=name) for name in ("base", *plan.arms) if (out / name).is_dir()]
            return write_report(runs, out, title="SimKO vs GRPO on the embedded default (in progress)",
                                preamble="Written after the calibration steps; the full report replaces it.",
                                baseline="grpo", seed=plan.seed)
        (out / "timing.json").write_text(json.dumps({"total_s": total, "budget_s": self.budget_s,
                                                     "steps_per_arm": self.steps, "phases_s": self.phases,
                                                     "measured_costs_s": asdict(self.costs) if self.costs else None},
                                                    indent=2) + "\n")
        runs = [load_run(out / "base", name="base"), *(load_run(out / arm, name=arm) for arm in plan.arms)]
        phases = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in self.phases.items())
        command = (f"simko demo --out {out} --seed {plan.seed} --steps {self.steps} --held-out {plan.held_out} "
                   f"--n-eval {plan.n_eval} --algos {','.join(plan.arms)}"
                   + "".join(f" --set {item}" for item in plan.overrides))
        sizing = (f"sized at run time to a {plan.minutes:g}-minute budget from the costs measured in this run"
                  if self.budget_s else "sized by hand (--steps)")
        preamble = (f"Shipped tiny-reasoner (`builtin:tiny`) trained with {', '.join(plan.arms)} from the same "
                    f"checkpoint, seed {plan.seed}, {self.steps} learner steps each ({sizing}; 8 prompts x 8 samples "
                    f"per step), on {plan.train} synthetic problems; every model evaluated on the same "
                    f"{plan.held_out} held-out problems with n = {plan.n_eval} samples each (temperature 1.0).\n\n"
                    f"Wall time: {format_minutes(total)} ({phases}). To repeat these sizes: `{command}`.")
        return write_report(runs, out, title="SimKO vs GRPO on the embedded default", preamble=preamble,
                            baseline="grpo", seed=plan.seed)


def format_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def run_demo(out: Path, plan: DemoPlan, *, started: float | None = None) -> Path:
    return Demo(out, plan, started=started).run()
