"""Model locations: a local Hugging Face directory, or `builtin:NAME` for a model this project
ships or builds itself, so the embedded CPU job needs nothing from a hub.

- `builtin:tiny`: the warm-started tiny reasoner shipped in the repository (models/tiny-reasoner/,
  reproducible with `simko make-tiny-model`); RL on it gets non-zero rewards from the first step.
- `builtin:tiny-random`: a random-init tiny Qwen2 (services.models.tiny), built once into the cache;
  for plumbing tests that do not care about rewards.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODELS = {"tiny": REPO_ROOT / "models" / "tiny-reasoner"}
BUILTIN_MODELS = {"tiny-random": dict(seed=0)}  # name -> services.models.tiny.build_tiny_model arguments


def cache_root() -> Path:
    return Path(os.environ.get("SIMKO_CACHE", Path.cwd() / ".cache")) / "models"


def resolve_model_path(path: str) -> str:
    """A real directory for `path`. Shipped builtins resolve to their folder in the repository;
    built ones are built once (under a file lock, so concurrent jobs do not race) into the cache."""
    if not path.startswith(BUILTIN_PREFIX):
        if not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"model.path {path!r} is not a Hugging Face model directory (no config.json)")
        return path
    name = path[len(BUILTIN_PREFIX):]
    if name in SHIPPED_MODELS:
        shipped = SHIPPED_MODELS[name]
        if not (shipped / "config.json").is_file():
            raise FileNotFoundError(f"{path}: the shipped checkpoint {shipped} is missing; rebuild it with "
                                    f"`simko make-tiny-model --out {shipped}`")
        return str(shipped)
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown builtin model {name!r}; known: {sorted([*SHIPPED_MODELS, *BUILTIN_MODELS])}")
    target = cache_root() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            from services.models.tiny import build_tiny_model

            build_tiny_model(target, **BUILTIN_MODELS[name])
    return str(target)
