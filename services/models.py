"""Model locations: a local Hugging Face directory, or `builtin:NAME` for a model this project
builds (or ships) itself, so the embedded CPU job needs nothing from a hub."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = {"tiny": dict(seed=0)}  # name -> services.tiny_model.build_tiny_model arguments


def cache_root() -> Path:
    return Path(os.environ.get("SIMKO_CACHE", Path.cwd() / ".cache")) / "models"


def resolve_model_path(path: str) -> str:
    """A real directory for `path`; builds a builtin model once (under a file lock, so concurrent
    jobs do not race) into the cache."""
    if not path.startswith(BUILTIN_PREFIX):
        if not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"model.path {path!r} is not a Hugging Face model directory (no config.json)")
        return path
    name = path[len(BUILTIN_PREFIX):]
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown builtin model {name!r}; known: {sorted(BUILTIN_MODELS)}")
    target = cache_root() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            from services.tiny_model import build_tiny_model

            build_tiny_model(target, **BUILTIN_MODELS[name])
    return str(target)
