"""The policy-loss registry: a name maps to its token-loss function; its hyper-parameter class is
declared under the same name in learner.hparams (torch-free, so the JobSpec can validate it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from learner.hparams import CommonHparams, declare_loss, loss_names, make_hparams
from learner.losses.core import LossInputs, TokenLoss


@dataclass(frozen=True)
class LossSpec:
    name: str
    fn: Callable[[LossInputs, CommonHparams], TokenLoss]
    # Every token's loss is the advantage times a row-local term (no statistic over other rows or
    # tokens), so a zero-advantage row has exactly zero gradient: the learner skips its backward.
    zero_advantage_inert: bool = False


_LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, hparams: type[CommonHparams] | None = None, *, zero_advantage_inert: bool = False):
    """Decorator: @register_loss("my_loss") def my_loss(inputs, hp) -> TokenLoss. Passing `hparams`
    declares the name's hyper-parameter class too (otherwise it must be declared in learner.hparams).
    zero_advantage_inert: see LossSpec (claim it only for losses that are A x a row-local term;
    tests/learner/test_zero_advantage.py checks the claim for every loss that makes it)."""
    if hparams is not None:
        declare_loss(name, hparams)

    def wrap(fn):
        if name in _LOSSES:
            raise ValueError(f"policy loss {name!r} is already registered")
        if name not in loss_names():
            raise ValueError(f"policy loss {name!r} has no declared hyper-parameters (learner.hparams)")
        _LOSSES[name] = LossSpec(name=name, fn=fn, zero_advantage_inert=zero_advantage_inert)
        return fn

    return wrap


def registered_losses() -> list[str]:
    return sorted(_LOSSES)


def get_loss(name: str) -> LossSpec:
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown policy loss {name!r}; valid: {registered_losses()}") from None


__all__ = ["LossSpec", "get_loss", "loss_names", "make_hparams", "register_loss", "registered_losses"]
