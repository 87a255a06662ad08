"""JobSpec overrides shared by the tests that run whole jobs to exercise the control plane (faults,
restarts, the job API, trackers, data formats, process lifetimes), not vLLM's compiled graph.

rollout.enforce_eager: every such test starts at least one vLLM engine, and compiling its graph costs
~35 s per start on the slower machine profile (AMD EPYC: `LLM()` 41 s compiled, 6 s eager; README,
"Start-up") and 5-7 s on a faster one. The compiled path (configs/tiny.yaml as shipped) stays
covered where it is the subject: tests/integration/test_train_job.py::
test_simko_train_cli_runs_five_on_policy_steps, the engine tests in tests/rollout and tests/models,
bench/e2e_vs_trl.py."""

EAGER = "rollout.enforce_eager=true"
EAGER_ARGS = ["--set", EAGER]  # for `simko train` / `simko submit`
