"""Process-group setup for the learner: one code path for single-process, torchrun, the deepspeed
launcher and Ray actors (which set the same env vars before building the engine)."""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist


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
        if "RANK" not in os.environ:
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=str(free_port()))
        deepspeed.init_distributed(dist_backend=backend)
    return dist.get_rank(), dist.get_world_size()


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
