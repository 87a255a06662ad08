"""Checkpoints (DeepSpeed state + learner state + RNG) and Hugging Face exports.

A checkpoint is a DeepSpeed tag directory `step_XXXXXXXX` under the checkpoint dir; the learner's
own state rides in DeepSpeed's client_state, so one load restores weights, optimizer moments, LR
schedule, step / weight version, the applied group ids and the data cursor together.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: the driver reads `latest_checkpoint` without DeepSpeed or torch
    from learner.engine import LearnerEngine
    from learner.state import LearnerState

TAG_PREFIX = "step_"


def save_checkpoint(engine: LearnerEngine, directory: str | Path | None = None) -> Path:
    """Every rank must call this (ZeRO shards are saved per rank). Returns the tag directory."""
    root = Path(directory or engine.job.checkpoint_dir or "")
    if not str(root):
        raise ValueError("no checkpoint directory: pass one or set LearnerJob.checkpoint_dir")
    from learner.state import capture_rng

    tag = f"{TAG_PREFIX}{engine.state.step:08d}"
    client_state = {"learner": engine.state.to_dict(), "rng": capture_rng()}
    engine.ds.save_checkpoint(str(root), tag=tag, client_state=client_state)
    _barrier()
    if engine.rank == 0:
        _prune(root, engine.cfg.keep_checkpoints)
    _barrier()
    return root / tag


def load_checkpoint(engine: LearnerEngine, directory: str | Path, tag: str | None = None) -> LearnerState:
    """Restore the latest (or the given) checkpoint into `engine`; return the restored state."""
    from learner.state import LearnerState, restore_rng

    path, client_state = engine.ds.load_checkpoint(str(directory), tag=tag, load_optimizer_states=True,
                                                   load_lr_scheduler_states=True)
    if path is None:
        raise FileNotFoundError(f"no DeepSpeed checkpoint in {directory} (tag={tag})")
    engine.state = LearnerState.from_dict(client_state["learner"])
    restore_rng(client_state["rng"])
    return engine.state


def latest_checkpoint(directory: str | Path) -> str | None:
    """The tag DeepSpeed's `latest` file names, or None when the directory holds no checkpoint."""
    latest = Path(directory) / "latest"
    return latest.read_text().strip() if latest.is_file() else None


def export_hf(engine: LearnerEngine, out_dir: str | Path) -> Path | None:
    """Write the current weights + config + tokenizer in Hugging Face format (safetensors), loadable
    by transformers and vLLM. Every rank must call it; rank 0 writes and gets the path."""
    state_dict = engine.full_state_dict()
    if engine.rank != 0:
        _barrier()
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # save_pretrained with an explicit state_dict never reads the (possibly ZeRO-3 partitioned)
    # parameters themselves.
    engine.ds.module.save_pretrained(out, state_dict=state_dict, safe_serialization=True)
    engine.tokenizer.save_pretrained(out)
    _barrier()
    return out


def _prune(root: Path, keep: int) -> None:
    tags = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(TAG_PREFIX))
    for old in tags[:-keep]:
        shutil.rmtree(old)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
