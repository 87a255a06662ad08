"""docker-compose.yml as local processes: the same commands, entry point and environment as its
containers, then a job submitted through the API runs to completion. No Docker engine needed.

What differs from the containers, and why (nothing else is changed):
- service hostnames and container ports -> 127.0.0.1 and free ports; `0.0.0.0` binds -> loopback;
- volumes -> directories of the test, except /data/cache -> the project's .cache (reuses the
  built tiny model and DeepSpeed's compiled op instead of rebuilding them each run);
- CPU: SIMKO_GPUS=0, one verifier replica with one grader (2 cores), small Ray object stores,
  no Ray dashboard, Ray's per-node agent ports made unique (three Ray nodes share one host here);
- redis binds loopback and keeps its append-only file in the test directory.
Every process carries a marker variable; the test fails if any marked process outlives teardown.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from services.control.local_stack import free_port
from tests.deploy.compose_support import (ENV_EXAMPLE, REPO, LocalMapping, ServicePlan, load_compose,
                                          read_env_file)
from tests.job_overrides import EAGER_ARGS

pytestmark = pytest.mark.slow

STEPS = 3
MARKER = "SIMKO_COMPOSE_PROCS"  # marks the processes of one run (SIMKO_COMPOSE_SMOKE gates the Docker test)
COMPOSE_VARIABLES = {"VERIFIER_WORKERS": "1"}  # compose's shell environment for this run
START_ORDER = ["redis", "verifier", "ray-head", "rollout", "learner"]
READY_TIMEOUT_S = {"redis": 20, "verifier": 90, "ray-head": 120, "rollout": 90, "learner": 90}


def marked_pids(marker: str) -> list[int]:
    """Processes of this user whose environment carries `MARKER=marker`."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # exited, or not ours
            continue
    return found


def depends_on(compose: dict, name: str) -> dict:
    deps = compose["services"][name].get("depends_on") or {}
    return deps if isinstance(deps, dict) else {d: {"condition": "service_started"} for d in deps}


class ProcessStack:
    """The compose services as process groups, started in dependency order."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True)
        self.marker = uuid.uuid4().hex
        self.procs: dict[str, subprocess.Popen] = {}
        self._envs: dict[str, dict[str, str]] = {}
        self.secrets = {"REDIS_PASSWORD": secrets.token_hex(16), "SIMKO_API_TOKEN": secrets.token_hex(16),
                        "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        env_example = read_env_file(ENV_EXAMPLE)
        assert set(env_example) == set(self.secrets), "deploy/.env.example lists other secrets than the test fills"
        self.compose = load_compose(COMPOSE_VARIABLES)
        plans = {n: ServicePlan.from_compose(self.compose, n, self.secrets) for n in self.compose["services"]}
        assert sorted(plans) == sorted(START_ORDER)
        ports = {(n, p): free_port() for n, plan in plans.items() for p in plan.listens}
        self.ray_tmp = Path(os.environ.get("SIMKO_CACHE", REPO / ".cache")) / "ray" / f"c{self.marker[:6]}"
        paths = [("/data/cache", os.environ.get("SIMKO_CACHE", str(REPO / ".cache"))),
                 ("/data", str(workdir / "data")), ("/app", str(REPO))]
        self.mapping = LocalMapping(ports=ports, paths=paths)
        self.plans = {n: self.mapping.apply(plan) for n, plan in plans.items()}

    # ------------------------------------------------------------------ environment
    def env_for(self, name: str) -> dict[str, str]:
        if name not in self._envs:
            self._envs[name] = self._env(name)
        return self._envs[name]

    def _env(self, name: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
        base["PATH"] = f"{Path(sys.executable).parent}:{base.get('PATH', '')}"  # the image's venv
        env = dict(base, **self.plans[name].env, **{MARKER: self.marker})
        if "SIMKO_RAY_HEAD" in env or name == "ray-head":
            self.ray_tmp.mkdir(parents=True, exist_ok=True)
            extra = ["--object-store-memory", str(200 * 2**20), "--dashboard-agent-listen-port", str(free_port()),
                     "--metrics-export-port", str(free_port())]
            if name == "ray-head":
                extra += ["--include-dashboard", "false", "--ray-client-server-port", str(free_port())]
            env.update(SIMKO_GPUS="0", SIMKO_RAY_NODE_IP="127.0.0.1", SIMKO_RAY_START_ARGS=" ".join(extra),
                       RAY_TMPDIR=str(self.ray_tmp))
        return env

    def argv_for(self, name: str) -> list[str]:
        argv = self.plans[name].argv
        if name == "redis":  # appended after the compose command's options: later ones win
            (self.workdir / "redis").mkdir()
            argv = argv + ["--bind", "127.0.0.1", "--dir", str(self.workdir / "redis")]
        return argv

    # ------------------------------------------------------------------ lifecycle
    def start(self, name: str) -> None:
        for dep, rule in depends_on(self.compose, name).items():
            assert dep in self.procs, f"{name} depends on {dep}, which is not started"
            assert rule["condition"] == "service_healthy"
        with open(self.logs / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(self.argv_for(name), cwd=REPO, env=self.env_for(name), stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        if "SIMKO_RAY_HEAD" in self.env_for(name) or name == "ray-head":
            self._wait_ray_node_started(name)

    def _wait_ray_node_started(self, name: str) -> None:
        """One Ray node at a time: containers have a network namespace each, but here every raylet
        shares the host's ports, and two nodes starting together can pick the same free port
        ("bind: Address already in use", the node then times out registering)."""
        self._wait_until(name, lambda: "Ray runtime started" in self.tail(name, lines=200), "Ray node not started",
                         poll_s=0.5)

    def wait_healthy(self, name: str) -> None:
        probe = self.plans[name].healthcheck
        self._wait_until(name, lambda: subprocess.run(probe, cwd=REPO, env=self.env_for(name), capture_output=True,
                                                      timeout=30).returncode == 0, "not healthy", poll_s=1.0)

    def _wait_until(self, name: str, ready, what: str, *, poll_s: float) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S[name]
        while True:
            self._assert_alive(name)
            if ready():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} {what} after {READY_TIMEOUT_S[name]}s:\n{self.tail(name)}")
            time.sleep(poll_s)

    def assert_running(self) -> None:
        """Every service is still up (Docker would restart an exited one; here the job would hang)."""
        for name in self.procs:
            self._assert_alive(name)

    def _assert_alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, grace_s: float = 10.0) -> list[int]:
        """SIGTERM every group (dependents first), SIGKILL what is left; return marked strays."""
        for name in reversed(list(self.procs)):
            self._signal(self.procs[name], signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in reversed(list(self.procs.values())):
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        time.sleep(1.0)
        for proc in self.procs.values():
            self._signal(proc, signal.SIGKILL)  # ray's daemons outlive `ray start` by a few seconds
        for proc in self.procs.values():
            proc.wait(timeout=30)
        time.sleep(1.0)
        strays = marked_pids(self.marker)
        for pid in strays:  # outside every group we started: report, then end them by id
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return strays

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def describe(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out.append(f"{pid}: {cmdline[:200]}")
        except OSError:
            out.append(f"{pid}: (gone)")
    return "\n".join(out)


def phase(t0: float, what: str) -> None:
    print(f"[compose-smoke] {time.monotonic() - t0:6.1f}s {what}", flush=True)  # shown with -s or on failure


def test_compose_services_as_processes_run_a_job(tmp_path):
    t0 = time.monotonic()
    stack = ProcessStack(tmp_path)
    strays: list[int] = []
    passed = False
    try:
        for name in START_ORDER:
            for dep in depends_on(stack.compose, name):
                stack.wait_healthy(dep)
            stack.start(name)
            phase(t0, f"started {name}")
        for name in START_ORDER:
            stack.wait_healthy(name)
        phase(t0, "all services healthy")

        api_url = f"http://127.0.0.1:{stack.mapping.ports[('ray-head', 8000)]}"
        # As the README submits: no verifier.url, so the API fills in the compose verifier.
        submit = subprocess.run(
            [sys.executable, "-m", "services.cli", "submit", "configs/tiny.yaml", "--api", api_url,
             "--set", f"trainer.steps={STEPS}", *EAGER_ARGS],
            cwd=REPO, env=dict(os.environ, SIMKO_API_TOKEN=stack.secrets["SIMKO_API_TOKEN"]),
            capture_output=True, text=True, timeout=120)
        assert submit.returncode == 0, submit.stderr
        job_id = submit.stdout.strip().splitlines()[-1]
        phase(t0, f"submitted {job_id}")

        api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {stack.secrets['SIMKO_API_TOKEN']}"},
                           timeout=30)
        assert httpx.get(f"{api_url}/v1/jobs").status_code == 401  # the token from deploy/.env is enforced
        deadline = time.monotonic() + 240
        while (job := api.get(f"/v1/jobs/{job_id}").json())["state"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"job still {job['state']}:\n{stack.tail('ray-head')}"
            stack.assert_running()
            time.sleep(2.0)
        phase(t0, f"job {job['state']}")
        run_dir = Path(job["run_dir"])
        controller_log = (run_dir / "controller.log").read_text(errors="replace")[-4000:] \
            if (run_dir / "controller.log").exists() else ""
        assert job["state"] == "succeeded", f"{job.get('error')}\n{controller_log}"

        metrics = api.get(f"/v1/jobs/{job_id}/metrics").json()
        api.close()
        assert [m["trainer/step"] for m in metrics] == list(range(1, STEPS + 1))
        # Where the README says a run lands: /data/runs/<job-id>/ on the shared volume.
        assert run_dir == tmp_path / "data" / "runs" / job_id
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == STEPS and all("perf/step_s" in r for r in rows)
        assert (run_dir / "final" / "config.json").is_file()  # Hugging Face export
        assert any((run_dir / "checkpoints").iterdir())
        # The job used the compose verifier, not a private one started by its controller.
        assert not (run_dir / "logs" / "verifier.log").exists()
        spec = json.loads((run_dir / "jobspec.json").read_text())
        assert spec["verifier"]["url"] == stack.plans["ray-head"].env["SIMKO_API_VERIFIER_URL"]
        passed = True
    finally:
        strays = stack.stop()
        if passed:  # Ray's session logs stay for a failed run (path in the assertion below)
            shutil.rmtree(stack.ray_tmp, ignore_errors=True)
        phase(t0, "stopped")
    assert not strays, f"processes outlived teardown (Ray logs: {stack.ray_tmp}):\n{describe(strays)}"
    assert not any(p.poll() is None for p in stack.procs.values())
