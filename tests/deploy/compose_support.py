"""Reading docker-compose.yml the way `docker compose` does, without a Docker engine.

`load_compose` parses the file and applies compose's variable interpolation; `ServicePlan`
turns one service into what its container would run: the image's entry point + the command,
the environment (env_file, then `environment`) and the healthcheck. `LocalMapping` rewrites a
plan to run as a local process: hostnames of services -> 127.0.0.1, container ports -> free
ports, volume paths -> directories of the test.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
CPU_PROFILE = REPO / "deploy" / "compose.cpu.yml"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"

_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


class InterpolationError(ValueError):
    pass


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's rules: `$$` is a literal `$`; `${X}`, `$X`, `${X:-d}`, `${X-d}`, `${X:?msg}`,
    `${X?msg}`, `${X:+alt}`, `${X+alt}`; unset variables are empty strings."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("plain"):
            return variables.get(match.group("plain"), "")
        spec = _BRACED.match(match.group("braced"))
        if spec is None:
            raise InterpolationError(f"invalid interpolation {match.group(0)!r}")
        name, op, arg = spec.group("name"), spec.group("op"), spec.group("arg")
        value = variables.get(name)
        if op is None:
            return value or ""
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op in (":?", "?"):
            if (op == ":?" and not value) or value is None:
                raise InterpolationError(f"{name}: {arg}")
            return value
        if op == ":+":
            return arg if value else ""
        return arg if value is not None else ""

    return _VAR.sub(one, text)


def _interpolate_tree(node, variables: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


class _Reset:
    """Compose's `!reset` tag: the override removes the key from what it merges into."""


RESET = _Reset()


class _ComposeLoader(yaml.SafeLoader):
    pass


_ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)


def load_compose(variables: dict[str, str] | None = None, path: Path = COMPOSE_FILE) -> dict:
    """The compose model after YAML merge keys and interpolation (`variables` = compose's shell env)."""
    raw = yaml.load(path.read_text(), Loader=_ComposeLoader)
    return _interpolate_tree(raw, variables or {})


def merge_compose(base: dict, override: dict) -> dict:
    """`docker compose -f base -f override`, for what our files use: mappings merge key by key,
    anything else (scalars, command lists) is replaced, `!reset` deletes. (Compose merges some
    lists, e.g. ports and volumes, by target; the override files here set none.)"""
    merged = dict(base)
    for key, value in override.items():
        if value is RESET:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_compose(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_profile(variables: dict[str, str] | None = None, override: Path = CPU_PROFILE) -> dict:
    """docker-compose.yml with an override file on top (default: the CPU profile)."""
    return merge_compose(load_compose(variables), load_compose(variables, override))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; `#` comments and blank lines skipped (compose's env_file format)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not KEY=VALUE: {line!r}")
        env[key.strip()] = value.strip().strip("'\"")
    return env


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def dockerfile_entrypoint(dockerfile: Path) -> list[str]:
    """The exec-form ENTRYPOINT of a Dockerfile ([] when it has none)."""
    import json

    entry = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("ENTRYPOINT"):
            entry = json.loads(line.removeprefix("ENTRYPOINT").strip())
    return entry


@dataclass
class ServicePlan:
    """What one replica of a compose service runs."""

    name: str
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None  # argv of the probe
    listens: list[int] = field(default_factory=list)  # container ports it binds

    @classmethod
    def from_compose(cls, compose: dict, name: str, env_file_values: dict[str, str]) -> "ServicePlan":
        service = compose["services"][name]
        env: dict[str, str] = {}
        for env_file in as_list(service.get("env_file")):
            assert env_file == "deploy/.env", f"{name}: unexpected env_file {env_file}"
            env.update(env_file_values)
        env.update(environment(service))
        command = service.get("command")
        argv = shlex.split(command) if isinstance(command, str) else list(command or [])
        build = service.get("build")
        if build:  # our images: the Dockerfile's ENTRYPOINT runs first
            argv = dockerfile_entrypoint(REPO / build["dockerfile"]) + argv
        check = (service.get("healthcheck") or {}).get("test")
        probe = None
        if check:
            kind, *rest = check
            probe = rest if kind == "CMD" else ["sh", "-c", rest[0]]
        joined = " ".join(argv)
        listens = sorted({int(p) for p in re.findall(r"--(?:dashboard-)?port[ =](\d+)", joined)})
        return cls(name=name, argv=argv, env=env, healthcheck=probe, listens=listens)


@dataclass
class LocalMapping:
    """Container world -> this machine: service hostnames and ports, and volume paths."""

    ports: dict[tuple[str, int], int]  # (service, container port) -> local port
    paths: list[tuple[str, str]]  # (container path prefix, local path), longest prefix first

    def address(self, text: str) -> str:
        """`svc:port` (also inside URLs) -> `127.0.0.1:local`."""
        for (service, port), local in self.ports.items():
            text = re.sub(rf"(?<![\w.-]){re.escape(service)}:{port}(?!\d)", f"127.0.0.1:{local}", text)
        return text

    def own_ports(self, service: str, text: str) -> str:
        """The service's own container ports (in its command and probe) -> its local ports."""
        for (owner, port), local in self.ports.items():
            if owner == service:
                text = re.sub(rf"(?<![\d.]){port}(?!\d)", str(local), text)
        return text

    def path(self, text: str) -> str:
        if "," in text:  # a list of paths (SIMKO_API_ALLOWED_ROOTS): each one
            return ",".join(self.path(part) for part in text.split(","))
        for prefix, local in self.paths:
            if text == prefix or text.startswith(prefix + "/"):
                return local + text[len(prefix):]
        return text

    def apply(self, plan: ServicePlan) -> ServicePlan:
        def argv(items):  # a container binds every interface; the local process binds loopback only
            items = ["127.0.0.1" if a == "0.0.0.0" else a for a in items]
            return [self.path(self.address(self.own_ports(plan.name, a))) for a in items]

        env = {k: self.path(self.address(v)) for k, v in plan.env.items()}
        probe = argv(plan.healthcheck) if plan.healthcheck else None
        return ServicePlan(plan.name, argv(plan.argv), env, probe, plan.listens)
