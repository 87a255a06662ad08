"""Process-group setup for the learner: one code path for single-process, torchrun, the deepspeed
launcher and Ray actors (which set the same env vars before building the engine)."""
from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_process_group(backend: str) -> tuple[int, int]:
    """Initialise torch.distributed through DeepSpeed; return (rank, world_size).

    Without RANK/WORLD_SIZE in the environment DeepSpeed falls back to MPI discovery (and fails with
    "No module named 'mpi4py'"), so a lone process declares itself rank 0 of 1 on a free port.
    """
    import deepspeed

    if not dist.is_initialized():
        wait_for_extension_lock()
        if "RANK" not in os.environ:
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=str(free_port()))
        deepspeed.init_distributed(dist_backend=backend)
    return dist.get_rank(), dist.get_world_size()


def wait_for_extension_lock(timeout_s: float = 300.0) -> None:
    """DeepSpeed's CPU init loads its shm comm op through torch's JIT extension builder, which waits
    for as long as a lock file exists. A process killed while holding it (a cancelled job) leaves
    the file behind and every later learner would hang silently. A real build finishes within a
    minute or two (scripts/setup.sh prebuilds it), so a lock still there after `timeout_s` is stale."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    lock = Path(root) / "deepspeed_shm_comm" / "lock" if root else None
    deadline = time.monotonic() + timeout_s
    while lock is not None and lock.exists():
        if time.monotonic() > deadline:
            log.warning("removing stale extension lock %s (held for over %.0fs)", lock, timeout_s)
            lock.unlink(missing_ok=True)
            return
        time.sleep(1.0)


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is True on at least one (no-op for one process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_object(obj, src: int = 0):
    """`obj` from rank `src` on every rank (pickled; fine for a batch of ScoredGroups)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_1d(values: torch.Tensor) -> torch.Tensor:
    """Every rank's 1-D tensor, concatenated in rank order (lengths may differ between ranks)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    world = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.long, device=values.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([values.numel()], dtype=torch.long, device=values.device))
    longest = max(int(size) for size in sizes)
    padded = torch.zeros(longest, dtype=values.dtype, device=values.device)
    padded[:values.numel()] = values
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([part[:int(size)] for part, size in zip(gathered, sizes)])
