"""Sizing `simko demo` to --minutes from costs measured during the run itself (pure functions).

Nothing here knows how fast any machine is: every cost is measured on the machine, in this run,
before it is used, so a machine 4x slower gets about 4x fewer steps, not a 4x longer demo.

    evaluate the base model                        -> eval_setup_s (verifier + vLLM engine start + one warm-up
                                                      batch: a first generate pays one-time kernel set-up, 3-15 s
                                                      on AMD EPYC, that timed into eval_model_s predicted a trained
                                                      evaluation of 57 s that took 6), eval_model_s
    train the first arm for k calibration steps    -> step_s (mean of the later half of steps 2..k: step 1 waits
                                                      for the rollout engine to start and compile, and a run's
                                                      next few steps are still slower than its steady ones;
                                                      the plan uses the mean's upper bound, mean + 2 standard
                                                      errors, as it holds for ~100 steps measured on ~5),
                                                      run_start_s (run start to the end of step k, minus k steady
                                                      steps: start-up plus the early steps' excess, paid by
                                                      every run),
                                                      run_end_s (last step to the run's return: checkpoint, export, stop)
    plan N = the most steps per arm such that
           run_start + (N - k) step_s + run_end          the first arm, resumed from its checkpoint to N
         + (arms - 1) (run_start + N step_s + run_end)   every other arm, N steps from the same base model
         + eval_setup + arms * eval_model + report       pass@K of the trained models, report.md
         <= (time left) * (1 - MARGIN)
    every arm then trains N steps; the ETA is re-predicted from the same model after every step,
    with the step time measured so far in the current arm.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Head-room for costs that drift after they were measured (response lengths change as a policy
# trains, a neighbour takes a core for a while): a fraction of the time left, not a machine constant.
MARGIN = 0.06


@dataclass(frozen=True)
class Costs:
    """Seconds, as measured in this run."""
    eval_setup_s: float  # verifier service + vLLM engine start for one evaluation phase
    eval_model_s: float  # sampling n answers per held-out problem for one model, and grading them
    run_start_s: float  # a training run's start-up: redis, verifier, Ray, actors, vLLM + DeepSpeed init
    run_end_s: float  # after its last step: checkpoint, Hugging Face export, stopping everything
    step_s: float  # one steady learner step: rollout, update, publish, log
    report_s: float = 0.0  # writing report.md and its plots (timed on the partial report after calibration)

    def with_step_s(self, step_s: float) -> "Costs":
        return replace(self, step_s=step_s)


def steady_step_s(step_walls: list[float]) -> float:
    """Mean wall time of the steady steps: the later half of the steps after the first. Measured on
    a slow 2-core machine, every run's first ~5 steps took ~1.2x its later ones; averaging them in
    sized the demo ~20% short of its budget (docs/demo_results.md)."""
    steady = _steady(step_walls)
    return sum(steady) / len(steady)


def _steady(step_walls: list[float]) -> list[float]:
    if len(step_walls) < 2:
        raise ValueError("need at least 2 steps to measure a steady step")
    after_first = step_walls[1:]
    return after_first[len(after_first) // 2:]


def planning_step_s(step_walls: list[float]) -> float:
    """The steady steps' mean plus two standard errors: the step time a plan multiplies by a hundred
    steps or more. The ~5 steady calibration steps of a 2-core machine scatter by +-20% (0.75-1.02 s
    on AMD EPYC); their plain mean sized a demo whose later steps averaged 13% more."""
    steady, mean = _steady(step_walls), steady_step_s(step_walls)
    if len(steady) < 2:
        return mean
    var = sum((w - mean) ** 2 for w in steady) / (len(steady) - 1)
    return mean + 2.0 * math.sqrt(var / len(steady))


def run_s(costs: Costs, steps: int) -> float:
    return costs.run_start_s + steps * costs.step_s + costs.run_end_s


def eval_s(costs: Costs, models: int) -> float:
    """Evaluating `models` trained models and writing the report: the tail after the last arm."""
    return costs.eval_setup_s + models * costs.eval_model_s + costs.report_s


def after_calibration_s(costs: Costs, *, steps: int, calibrated: int, arms: int) -> float:
    """Predicted seconds from the end of the calibration run to the end of the evaluation."""
    first = run_s(costs, steps - calibrated) if steps > calibrated else 0.0
    return first + (arms - 1) * run_s(costs, steps) + eval_s(costs, arms)


def plan_steps(time_left_s: float, costs: Costs, *, calibrated: int, arms: int, margin: float = MARGIN) -> int:
    """The most steps per arm that fit in `time_left_s` after the calibration run (never fewer
    than `calibrated`: those are trained already)."""
    if costs.step_s <= 0 or arms < 1:
        raise ValueError("step_s must be > 0 and arms >= 1")
    usable = time_left_s * (1 - margin)
    fixed = costs.run_start_s + costs.run_end_s
    # after_calibration_s(N) = arms * fixed + (arms * N - k) * step_s + eval (the first arm resumed)
    steps = math.floor((usable - eval_s(costs, arms) - arms * fixed + calibrated * costs.step_s)
                       / (arms * costs.step_s))
    return max(calibrated, steps)


def remaining_s(costs: Costs, *, arm: int, arms: int, steps: int, step: int, started: bool = True) -> float:
    """Predicted seconds left while arm `arm` (0-based; `arms` = evaluating) is at `step` of
    `steps`; `started`: its run has reached its first step (its start-up is behind it)."""
    if arm >= arms:
        return eval_s(costs, arms)
    this_arm = (0.0 if started else costs.run_start_s) + max(0, steps - step) * costs.step_s + costs.run_end_s
    return this_arm + (arms - arm - 1) * run_s(costs, steps) + eval_s(costs, arms)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"
