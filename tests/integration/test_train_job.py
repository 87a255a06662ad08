"""A whole SimKO job on CPU through the real system: `simko train` (private redis-server, Ray,
verifier over HTTP, vLLM rollout worker actors, DeepSpeed learner actor) and the same job through
the job API with two rollout workers resized to one mid-job, plus cancel and a Redis restart."""
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from services.control.jobspec import apply_override
from tests.integration.api_process import ROOT, SIMKO, read_metrics, start_api
from tests.reliability.process_table import kill_tagged, new_tag, survivors, tagged_env
from tests.job_overrides import EAGER, EAGER_ARGS

pytestmark = pytest.mark.slow
REQUIRED_KEYS = ["learner/optimizer_steps", "loss/policy", "reward/mean", "dist/lambda_1", "dist/lambda_2", "dist/lambda_3",
                 "dist/entropy_mean", "perf/tokens_per_s", "rollout/staleness_max", "learner/weight_version"]


def wait_for_rows(job: subprocess.Popen, run_dir: Path, count: int, timeout_s: float = 600) -> None:
    """Until the running `simko train` has logged `count` steps (fails with its stderr if it exits)."""
    deadline = time.monotonic() + timeout_s
    while not (run_dir / "metrics.jsonl").exists() or len(read_metrics(run_dir)) < count:
        assert job.poll() is None and time.monotonic() < deadline, job.stderr.read()[-4000:] if job.poll() else ""
        time.sleep(0.5)


def train_with_fault(argv: list[str], run_dir: Path, fault, *, after_rows: int = 2, env: dict | None = None,
                     timeout_s: float = 900) -> tuple[int, str]:
    """Run `simko train argv...`, call fault(job) once `after_rows` steps are logged, then wait for
    the job to end (killed if the test fails first): (exit code, stderr)."""
    job = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_rows(job, run_dir, after_rows)
        fault(job)
        _, stderr = job.communicate(timeout=timeout_s)
    finally:
        if job.poll() is None:
            job.kill()
    return job.returncode, stderr


def assert_on_policy_progress(rows: list[dict], steps: int) -> None:
    assert [r["trainer/step"] for r in rows] == list(range(1, steps + 1))
    updates = 0
    for r in rows:
        # The weights advance with every applied update (a batch whose groups all have equal
        # rewards has zero advantage everywhere: no optimizer step, no new version), and each batch
        # was sampled by the newest weights (max_staleness 0): the rollout side follows the learner.
        updates += r["learner/optimizer_steps"] > 0
        assert r["learner/weight_version"] == updates, r
        assert r["rollout/staleness_max"] == 0, r
        if r["learner/optimizer_steps"]:
            missing = [k for k in REQUIRED_KEYS if k not in r]
            assert not missing, (missing, r)
            assert r["perf/tokens_per_s"] > 0 and r["loss/policy"] == r["loss/policy"], r  # not NaN
    assert updates >= steps - 1, rows  # 8 prompts x 8 samples: an all-equal batch is rare


def test_simko_train_cli_runs_five_on_policy_steps(tmp_path):
    out, tag = tmp_path / "run", new_tag()
    result = subprocess.run([SIMKO, "train", "configs/tiny.yaml", "--out", str(out), "--set", "trainer.steps=5"],
                            cwd=ROOT, env=tagged_env(tag), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = read_metrics(out)
    assert_on_policy_progress(rows, 5)
    assert (out / "final" / "config.json").is_file()  # the exported Hugging Face model
    assert_nothing_left(tag, out)


def test_train_with_a_two_rank_learner(tmp_path):
    """learner.world_size 2: two Ray learner actors form one DeepSpeed (ZeRO-2) process group;
    rank 0 reads the stream and publishes, both ranks train, checkpoint and export together."""
    out = tmp_path / "run"
    result = subprocess.run([SIMKO, "train", "configs/tiny.yaml", "--out", str(out), "--set", "trainer.steps=3",
                             "--set", "learner.world_size=2", "--set", "learner.zero_stage=2", *EAGER_ARGS],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert_on_policy_progress(read_metrics(out), 3)
    assert (out / "final" / "config.json").is_file()
    shards = list((out / "checkpoints").glob("step_*/*optim_states.pt"))
    assert len(shards) == 2, shards  # one ZeRO optimizer shard per rank


def test_stopped_job_resumes_from_its_checkpoint(tmp_path):
    """SIGTERM `simko train` after step 2 (checkpoint every step); the same command with the same
    --out resumes from the newest checkpoint: the step count and weight versions continue
    instead of starting over."""
    out, tag = tmp_path / "run", new_tag()
    argv = [SIMKO, "train", "configs/tiny.yaml", "--out", str(out), "--set", "trainer.steps=4",
            "--set", "trainer.save_every=1", *EAGER_ARGS]
    code, _ = train_with_fault(argv, out, lambda job: job.terminate(), env=tagged_env(tag), timeout_s=120)
    before = read_metrics(out)
    assert code != 0 and len(before) < 4  # stopped early, not finished
    second = subprocess.run(argv, cwd=ROOT, env=tagged_env(tag), capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-4000:]
    resumed = read_metrics(out)[len(before):]
    # It picks up after the last checkpoint (step 2, or step 1 if the stop came between the
    # metrics row and the checkpoint of step 2), never from step 1 of a fresh model.
    assert resumed[0]["trainer/step"] in (2, 3) and resumed[-1]["trainer/step"] == 4, resumed
    assert [r["trainer/step"] for r in resumed] == list(range(resumed[0]["trainer/step"], 5))
    checkpointed = before[resumed[0]["trainer/step"] - 2]  # the row of the step that was checkpointed
    assert resumed[0]["learner/weight_version"] >= checkpointed["learner/weight_version"] >= 1
    assert_nothing_left(tag, out)


def test_a_sigkilled_learner_is_restarted_from_its_checkpoint(tmp_path):
    """SIGKILL the learner rank's process after step 2: the controller rebuilds the learner group
    from the newest checkpoint (every step) and the job finishes, the restart counted."""
    out, tag = tmp_path / "run", new_tag()
    argv = [SIMKO, "train", "configs/tiny.yaml", "--out", str(out), "--set", "trainer.steps=5",
            "--set", "trainer.save_every=1", "--set", "trainer.max_restarts=1", *EAGER_ARGS]
    def kill_the_rank(_job) -> None:
        ranks = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0].startswith("ray::LearnerActor")]
        assert len(ranks) == 1, ranks
        ranks[0].kill()

    code, stderr = train_with_fault(argv, out, kill_the_rank, env=tagged_env(tag))
    assert code == 0, stderr[-4000:]
    rows = read_metrics(out)
    steps = [r["trainer/step"] for r in rows]
    assert steps[-1] == 5 and set(steps) == {1, 2, 3, 4, 5}, steps  # a step after the checkpoint may be redone
    assert rows[-1]["trainer/learner_restarts"] == 1
    versions = [r["learner/weight_version"] for r in rows]
    assert versions[-1] > max(versions[:-1])  # the restored weights were republished under a newer version
    assert (out / "final" / "config.json").is_file()
    assert_nothing_left(tag, out)


def assert_nothing_left(tag: str, run_dir: Path) -> None:
    """Nothing the job started runs 10 s after it ended, searched in the whole process table
    (an orphan is re-parented to init, out of this test's tree): by the tag its environment
    carried, and by working directory for redis-server (which overwrites its environ block)."""
    left = survivors(tag, within_s=10, under=run_dir)
    kill_tagged(tag, under=run_dir)
    assert not left, "simko train left processes behind: " + "; ".join(map(str, left))


@pytest.fixture
def api_server(redis_url, tmp_path):
    token = "integration-token"
    env = dict(os.environ, SIMKO_API_TOKEN=token, SIMKO_API_REDIS_URL=redis_url, SIMKO_API_RUNS_DIR=str(tmp_path),
               SIMKO_API_ALLOWED_ROOTS=str(ROOT))  # the jobs' configs and data are the repository's
    proc, client, port = start_api(env, token)
    yield client, port, token
    client.close()
    proc.terminate()
    proc.wait(timeout=30)


def wait_state(client, job_id, states, timeout_s=900):
    deadline = time.monotonic() + timeout_s
    while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] not in states:
        assert time.monotonic() < deadline, job
        time.sleep(1.0)
    return job


def wait_metrics(client, job_id, count, timeout_s=900):
    deadline = time.monotonic() + timeout_s
    while len(rows := client.get(f"/v1/jobs/{job_id}/metrics").json()) < count:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] not in ("failed", "cancelled") and time.monotonic() < deadline, job
        time.sleep(1.0)
    return rows


def test_api_job_with_two_workers_resized_to_one(api_server):
    client, port, token = api_server
    submit = subprocess.run([SIMKO, "submit", "configs/tiny.yaml", "--api", f"http://127.0.0.1:{port}",
                             "--token", token, "--set", "trainer.steps=6", "--set", "rollout.workers=2", *EAGER_ARGS],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip()
    wait_metrics(client, job_id, 2)
    assert client.post(f"/v1/jobs/{job_id}/workers", json={"replicas": 1}).status_code == 200
    job = wait_state(client, job_id, ("succeeded", "failed", "cancelled"))
    assert job["state"] == "succeeded", job
    rows = client.get(f"/v1/jobs/{job_id}/metrics").json()
    assert_on_policy_progress(rows, 6)
    workers = [r["rollout/workers"] for r in rows]
    assert workers[0] == 2 and workers[-1] == 1, workers
    # The controller records the terminal state, then stops its workers, Ray and verifier.
    wait_exited([job["controller_pid"]], timeout_s=120)


def test_cancel_stops_the_job_and_leaves_no_processes(api_server):
    client, _port, _token = api_server
    spec = {"name": "to-cancel", "model": {"path": "builtin:tiny"},
            "data": {"train": str(ROOT / "configs/data/arith_train.jsonl"), "prompt_template": "boxed"},
            "rollout": {"workers": 1, "n": 4, "max_tokens": 32, "max_model_len": 256, "kv_cache_bytes": 268435456},
            "learner": {"batch_prompts": 4, "mini_batch_prompts": 4, "max_seq_len": 256},
            "trainer": {"steps": 1000}, "verifier": {"workers": 1}}
    apply_override(spec, EAGER)
    job_id = client.post("/v1/jobs", json=spec).json()["id"]
    wait_metrics(client, job_id, 1)
    pid = client.get(f"/v1/jobs/{job_id}").json()["controller_pid"]
    group = {p.pid for p in psutil.process_iter() if _pgid(p.pid) == pid}
    assert len(group) > 3  # controller + Ray + verifier processes
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "cancelling"
    job = wait_state(client, job_id, ("cancelled", "failed", "succeeded"), timeout_s=300)
    assert job["state"] == "cancelled", job
    wait_exited(group, timeout_s=60)


def wait_exited(pids, timeout_s: float) -> None:
    """Until none of `pids` runs any more (zombies count as gone); fails naming what is left."""
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]):
        assert time.monotonic() < deadline, [psutil.Process(p).cmdline() for p in left]
        time.sleep(0.5)


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_redis_restart_mid_job_the_job_continues(redis_factory, tmp_path):
    """SIGKILL the job's (non-persistent) redis-server after two steps and start a fresh one on
    the same port: the queue clients reconnect, recreate their consumer groups, the controller
    re-feeds the prompt groups that vanished, and the job finishes every step."""
    port, redis_proc = redis_factory()
    out = tmp_path / "run"
    def restart_redis(_job) -> None:
        redis_proc.kill()
        redis_proc.wait()
        time.sleep(2)
        redis_factory(port)

    code, stderr = train_with_fault([SIMKO, "train", "configs/tiny.yaml", "--out", str(out), "--set", "trainer.steps=5",
                                     "--set", f"infra.redis_url=redis://127.0.0.1:{port}/0", *EAGER_ARGS], out, restart_redis)
    assert code == 0, stderr[-4000:]
    rows = read_metrics(out)
    assert [r["trainer/step"] for r in rows] == [1, 2, 3, 4, 5]
    assert_on_policy_progress(rows, 5)
