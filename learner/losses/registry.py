"""The policy-loss registry: a name maps to (token-loss function, hyper-parameter dataclass)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from learner.losses.core import LossInputs, TokenLoss
from learner.losses.hparams import CommonHparams


@dataclass(frozen=True)
class LossSpec:
    name: str
    fn: Callable[[LossInputs, CommonHparams], TokenLoss]
    hparams: type[CommonHparams]


_LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, hparams: type[CommonHparams] = CommonHparams):
    """Decorator: @register_loss("my_loss", MyHparams) def my_loss(inputs, hp) -> TokenLoss."""

    def wrap(fn):
        if name in _LOSSES:
            raise ValueError(f"policy loss {name!r} is already registered")
        _LOSSES[name] = LossSpec(name=name, fn=fn, hparams=hparams)
        return fn

    return wrap


def loss_names() -> list[str]:
    return sorted(_LOSSES)


def get_loss(name: str) -> LossSpec:
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown policy loss {name!r}; valid: {loss_names()}") from None


def make_hparams(name: str, **hparams) -> CommonHparams:
    """Build and validate the named loss's hyper-parameters; unknown keys raise, listing valid ones."""
    spec = get_loss(name)
    valid = spec.hparams.field_names()
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown} for loss {name!r}; valid: {valid}")
    return spec.hparams(**hparams)
