"""Torch threads that follow the rollout: the learner's cap while a rollout worker on its machine
generates, all its cores while none does.

With max_staleness > 0 on one machine the learner trains while the engines generate, and a learner
whose threads spill onto the engines' cores slows both (services.control.placement caps it). But
the engines finish each batch before the learner finishes its update and then wait for the next
prompts; with a fixed cap the learner leaves those cores idle for the rest of the update
(issue 17: 2 cores, generate 0.65 s, update 0.89 s on one thread, 0.52 s on two). The governor
re-decides at every decoder layer's forward and backward and at every micro-batch and optimizer
step, so it switches within one micro-batch.

`busy` answers "is a rollout worker generating?" (services.wire.streams.GenerationMarks over
Redis, injected by learner.actor); the governor knows nothing about Redis. OpenMP thread counts
are per calling thread: every switch happens on the training thread (CPU autograd runs backward
on the caller).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

# Re-ask `busy` at most this often: a forward of a small model passes its layers in well under a
# millisecond, a Redis round trip costs ~0.1-0.3 ms.
MIN_INTERVAL_S = 0.005


class ThreadGovernor:
    def __init__(self, busy: Callable[[], bool], *, capped: int, full: int) -> None:
        if not 1 <= capped < full:
            raise ValueError(f"need 1 <= capped < full threads, got capped={capped}, full={full}")
        self.busy, self.capped, self.full = busy, capped, full
        self._checked_at = -float("inf")
        self.switches = 0
        self.full_s = 0.0  # time spent at `full` threads (since the last take_metrics)
        self._full_since: float | None = None
        torch.set_num_threads(capped)

    def check(self) -> None:
        """Set the thread count the rollout's state calls for now (cheap when called often)."""
        now = time.perf_counter()
        if now - self._checked_at < MIN_INTERVAL_S:
            return
        self._checked_at = now
        want = self.capped if self.busy() else self.full
        if want != torch.get_num_threads():
            torch.set_num_threads(want)
            self.switches += 1
            if want == self.full:
                self._full_since = now
            elif self._full_since is not None:
                self.full_s += now - self._full_since
                self._full_since = None

    def install(self, layers: list[torch.nn.Module]) -> None:
        """Check before every layer's forward and, through a hook on its output, before its backward."""
        for layer in layers:
            layer.register_forward_pre_hook(lambda _m, _a: self.check())
            layer.register_forward_hook(self._hook_backward)

    def _hook_backward(self, _module, _args, output) -> None:
        tensor = output[0] if isinstance(output, tuple) else output
        if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
            tensor.register_hook(self._on_grad)

    def _on_grad(self, grad: torch.Tensor) -> None:
        self.check()

    def take_metrics(self) -> dict:
        """Switches and seconds at full threads since the last call."""
        now = time.perf_counter()
        if self._full_since is not None:
            self.full_s += now - self._full_since
            self._full_since = now
        metrics = {"perf/learner_thread_switches": self.switches, "perf/learner_full_threads_s": self.full_s}
        self.switches, self.full_s = 0, 0.0
        return metrics
