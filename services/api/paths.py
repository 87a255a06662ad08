"""Confined paths for jobs submitted through the API: every file a job names must lie under one of
the deployment's allowed roots (SIMKO_API_ALLOWED_ROOTS, default /data).

A job runs with the API host's rights, so without this any API user could train on, or have the
job read, any file of the cluster (and, through the MLflow store, write anywhere). Paths are
resolved with realpath, so `..` escapes and symlinks that leave the roots are caught; a folder
(a model directory, a folder of shards) is walked and every symlink in it resolved too, and a glob
is checked on its literal prefix and on every file it matches now. The CLI's local `simko train`
does not go through this: a user may train on any file they can read.

Known limit: the check happens at submission; someone who may write under a root could swap a
file for a symlink afterwards. Roots should therefore be writable only by those trusted with
the files the API host can read.
"""
from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path

from services.control.jobspec import JobSpec

BUILTIN_PREFIX = "builtin:"  # services.models: a model shipped with the code, not a path
_GLOB_CHARS = re.compile(r"[*?\[]")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# MLflow stores on the local file system (everything else, e.g. http(s)://, is a server).
_LOCAL_URI_SCHEMES = {"file", "sqlite"}


def parse_roots(text: str) -> tuple[Path, ...]:
    """`SIMKO_API_ALLOWED_ROOTS`: absolute folders separated by os.pathsep (':') or commas."""
    parts = [p.strip() for p in re.split(rf"[,{re.escape(os.pathsep)}]", text) if p.strip()]
    if not parts:
        raise ValueError("allowed_roots: no folder given (SIMKO_API_ALLOWED_ROOTS)")
    relative = [p for p in parts if not os.path.isabs(p)]
    if relative:
        raise ValueError(f"allowed_roots: {relative} must be absolute paths (SIMKO_API_ALLOWED_ROOTS)")
    return tuple(Path(os.path.realpath(p)) for p in parts)


def path_fields(spec: JobSpec) -> Iterator[tuple[str, str]]:
    """(field, local path) for every file-system location a JobSpec names. A new path-valued
    JobSpec field must be added here (tests/api/test_paths.py fails until it is classified)."""
    if not spec.model.path.startswith(BUILTIN_PREFIX):
        yield "model.path", spec.model.path
    yield "data.train", spec.data.train
    if spec.data.eval is not None:
        yield "data.eval", spec.data.eval
    uri = spec.trainer.tracking.mlflow_tracking_uri
    if uri is not None:
        local = _local_part(uri)
        if local is not None:
            yield "trainer.tracking.mlflow_tracking_uri", local


def _local_part(uri: str) -> str | None:
    match = _URI.match(uri)
    if match is None:
        return uri  # a bare path is a file store
    if match.group(1).lower() not in _LOCAL_URI_SCHEMES:
        return None
    return uri[match.end():].split("?", 1)[0] or "/"  # file:///x, sqlite:////x.db -> /x, //x.db


def confine(spec: JobSpec, roots: tuple[Path, ...], *, cwd: Path | None = None) -> list[dict[str, str]]:
    """Errors ({"field", "message"}, as JobSpecError) for each path outside `roots`; [] if none."""
    errors = []
    for field, value in path_fields(spec):
        problem = outside(value, roots, cwd=cwd)
        if problem is not None:
            errors.append({"field": field, "message": f"{value!r} {problem}; allowed roots: "
                                                      f"{', '.join(str(r) for r in roots)}"})
    return errors


def outside(value: str, roots: tuple[Path, ...], *, cwd: Path | None = None) -> str | None:
    """Why `value` (a path or glob, relative to `cwd`: the directory jobs run in) leaves `roots`,
    or None when all of it stays inside."""
    base = Path(cwd or os.getcwd())
    path = Path(value) if os.path.isabs(value) else base / value
    if _GLOB_CHARS.search(value) and not path.exists():
        literal = _literal_prefix(path)
        if not _inside(literal, roots):
            return f"is outside the allowed roots (its folder resolves to {os.path.realpath(literal)})"
        for match in glob.iglob(str(path), recursive=True):
            if not _inside(Path(match), roots):
                return f"matches {match}, which resolves to {os.path.realpath(match)}, outside the allowed roots"
        return None
    if not _inside(path, roots):
        return f"resolves to {os.path.realpath(path)}, outside the allowed roots"
    if path.is_dir():
        link = _first_escape(path, roots)
        if link is not None:
            return f"contains {link}, a symlink to {os.path.realpath(link)}, outside the allowed roots"
    return None


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == root or root in real.parents for root in roots)


def _literal_prefix(path: Path) -> Path:
    """The part of a glob before its first wildcard component: /data/a/*/x.parquet -> /data/a."""
    parts = []
    for part in path.parts:
        if _GLOB_CHARS.search(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path("/")


def _first_escape(folder: Path, roots: tuple[Path, ...]) -> Path | None:
    """The first symlink in the tree under `folder` (links to folders followed, each real folder
    once, so cycles end) whose target leaves `roots`; None if every one stays inside."""
    seen: set[str] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        real = os.path.realpath(current)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue  # unreadable: the job will fail on it, it cannot read through it
        for entry in entries:
            if entry.is_symlink() and not _inside(Path(entry.path), roots):
                return Path(entry.path)
            if entry.is_dir(follow_symlinks=True):
                stack.append(Path(entry.path))
    return None
