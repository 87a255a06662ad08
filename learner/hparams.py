"""Hyper-parameters of the policy losses and advantage estimators: one frozen dataclass per name,
validated at construction, and the catalogs that map names to them.

Torch-free on purpose: the JobSpec (and with it the job API and `simko submit`) validates names and
hyper-parameters here without loading torch. The functions live in learner.losses and
learner.advantages, which register under names declared here (a test checks both sides agree):

    @declare_loss("my_loss")                    # here (or in your own module): the schema
    @dataclass(frozen=True)
    class MyHparams(CommonHparams): ...
    @register_loss("my_loss")                   # learner.losses: the token-loss function
    def my_loss(inputs, hp) -> TokenLoss: ...
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

_LOSSES: dict[str, type] = {}
_ADVANTAGES: dict[str, type] = {}


def _declare(catalog: dict[str, type], kind: str, name: str, hparams: type) -> None:
    if catalog.get(name, hparams) is not hparams:
        raise ValueError(f"{kind} {name!r} is already declared with {catalog[name].__name__}")
    catalog[name] = hparams


def declare_loss(name: str, hparams: type | None = None):
    """Declare a policy-loss name and its hyper-parameter class (usable as a class decorator)."""
    if hparams is not None:
        _declare(_LOSSES, "policy loss", name, hparams)
        return hparams
    return lambda cls: declare_loss(name, cls)


def declare_advantage(name: str, hparams: type | None = None):
    """Declare an advantage-estimator name and its hyper-parameter class."""
    if hparams is not None:
        _declare(_ADVANTAGES, "advantage estimator", name, hparams)
        return hparams
    return lambda cls: declare_advantage(name, cls)


def loss_names() -> list[str]:
    return sorted(_LOSSES)


def advantage_names() -> list[str]:
    return sorted(_ADVANTAGES)


def _make(catalog: dict[str, type], kind: str, name: str, hparams: dict):
    if name not in catalog:
        raise ValueError(f"unknown {kind} {name!r}; valid: {sorted(catalog)}")
    cls = catalog[name]
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown} for {kind} {name!r}; valid: {valid}")
    return cls(**hparams)


def make_hparams(name: str, **hparams) -> "CommonHparams":
    """The named loss's validated hyper-parameters; unknown names or keys raise, listing valid ones."""
    return _make(_LOSSES, "policy loss", name, hparams)


def make_advantage_hparams(name: str, **hparams) -> "AdvantageHparams":
    return _make(_ADVANTAGES, "advantage estimator", name, hparams)

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def _check(condition: bool, field: str, message: str, value) -> None:
    if not condition:
        raise ValueError(f"{field} {message}, got {value!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class CommonHparams:
    """Shared by every loss: the PPO/GRPO clipped surrogate, aggregation and diagnostics."""

    clip_low: float = 0.2  # ratio lower bound 1 - clip_low
    clip_high: float = 0.2  # ratio upper bound 1 + clip_high (DAPO clip-higher: 0.28)
    dual_clip: float | None = None  # c > 1: caps a negative-advantage token's loss at -A*c (Ye et al. 2020)
    aggregation: str = "token-mean"
    norm_length: int | None = None  # Dr.GRPO's constant for seq-mean-token-sum-norm (default: T)
    diagnostic_top_k: int = 3  # Lambda^(k) reported for k = 1..this
    chunk_size: int = 1024  # token rows per chunk in the token statistics
    entropy_bins: int = 32  # histogram bins over [0, ln V]
    # Entropy bonus: loss - entropy_coeff * H aggregated like the loss (verl's actor.entropy_coeff;
    # the official GRPO baseline trains with 0.001). 0 = off, and then the entropy gets no gradient.
    entropy_coeff: float = 0.0

    def __post_init__(self) -> None:
        _check(_is_number(self.entropy_coeff) and self.entropy_coeff >= 0, "entropy_coeff", "must be >= 0",
               self.entropy_coeff)
        for name in ("clip_low", "clip_high"):
            _check(_is_number(getattr(self, name)), name, "must be a number", getattr(self, name))
        _check(0 <= self.clip_low < 1, "clip_low", "must be in [0, 1)", self.clip_low)
        _check(self.clip_high >= 0, "clip_high", "must be >= 0", self.clip_high)
        _check(self.dual_clip is None or (_is_number(self.dual_clip) and self.dual_clip > 1),
               "dual_clip", "must be None or a number > 1", self.dual_clip)
        _check(self.aggregation in AGGREGATIONS, "aggregation", f"must be one of {list(AGGREGATIONS)}",
               self.aggregation)
        _check(self.norm_length is None or (isinstance(self.norm_length, int) and self.norm_length >= 1),
               "norm_length", "must be None or an int >= 1", self.norm_length)
        for name in ("diagnostic_top_k", "chunk_size", "entropy_bins"):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name,
                   "must be an int >= 1", value)

    def candidates_needed(self, vocab_size: int) -> int:
        """How many ranked candidates the token statistics must produce (diagnostics clamp to V)."""
        return min(self.diagnostic_top_k, vocab_size)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


@dataclass(frozen=True)
class SimkoHparams(CommonHparams):
    top_k: int = 3  # K candidates the positive gradient is spread over
    alpha: float = 0.01  # top-K label-smoothing weight
    tau_quantile: float = 0.8  # entropy quantile defining forking tokens
    tau_scope: str = "sequence"  # "sequence" (official code) or "batch" (the paper's wording)
    lambda_top1: float = 1.1  # extra weight on negative top-1 forking tokens
    # A fixed entropy threshold instead of the quantile of the inputs. The learner engine sets it
    # for tau_scope="batch" to the quantile over the whole training batch (every micro-batch and
    # rank), which one micro-batch's inputs cannot see.
    tau_value: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.tau_value is None or (_is_number(self.tau_value) and 0 <= self.tau_value < float("inf")),
               "tau_value", "must be None or a finite number >= 0", self.tau_value)
        _check(isinstance(self.top_k, int) and not isinstance(self.top_k, bool) and self.top_k >= 1,
               "top_k", "must be an int >= 1", self.top_k)
        _check(_is_number(self.alpha) and 0 <= self.alpha <= 1, "alpha", "must be in [0, 1]", self.alpha)
        _check(_is_number(self.tau_quantile) and 0 <= self.tau_quantile <= 1, "tau_quantile",
               "must be in [0, 1]", self.tau_quantile)
        _check(self.tau_scope in ("sequence", "batch"), "tau_scope", "must be 'sequence' or 'batch'",
               self.tau_scope)
        _check(_is_number(self.lambda_top1) and self.lambda_top1 >= 1, "lambda_top1", "must be >= 1",
               self.lambda_top1)

    def candidates_needed(self, vocab_size: int) -> int:
        if self.top_k > vocab_size:
            raise ValueError(f"top_k ({self.top_k}) exceeds the vocabulary size {vocab_size}")
        return max(self.top_k, super().candidates_needed(vocab_size))


@dataclass(frozen=True)
class ClipCovHparams(CommonHparams):
    """Clip-Cov (Cui et al. 2025): detach the gradient of a random few high-covariance tokens."""

    clip_cov_ratio: float = 0.0002  # fraction of valid tokens whose gradient is detached
    clip_cov_lb: float = 1.0  # covariance window (lb, ub) the detached tokens are drawn from
    clip_cov_ub: float = 5.0
    seed: int | None = None  # generator seed for the random selection (None: global RNG)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(_is_number(self.clip_cov_ratio) and 0 <= self.clip_cov_ratio <= 1, "clip_cov_ratio",
               "must be in [0, 1]", self.clip_cov_ratio)
        _check(_is_number(self.clip_cov_lb) and _is_number(self.clip_cov_ub)
               and self.clip_cov_lb < self.clip_cov_ub, "clip_cov_lb", "must be < clip_cov_ub",
               (self.clip_cov_lb, self.clip_cov_ub))


@dataclass(frozen=True)
class KlCovHparams(CommonHparams):
    """KL-Cov (Cui et al. 2025): a |log r| penalty on the top covariance tokens; no ratio clipping."""

    kl_cov_ratio: float = 0.0002  # fraction of valid tokens (top covariance) that get the penalty
    kl_coef: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(_is_number(self.kl_cov_ratio) and 0 <= self.kl_cov_ratio <= 1, "kl_cov_ratio",
               "must be in [0, 1]", self.kl_cov_ratio)
        _check(_is_number(self.kl_coef) and self.kl_coef >= 0, "kl_coef", "must be >= 0", self.kl_coef)


@dataclass(frozen=True)
class EntropyAdvHparams(CommonHparams):
    """Entropy-based advantage shaping (Cheng et al. 2025): A + min(beta * H, |A| / kappa)."""

    entropy_beta: float = 0.4
    entropy_kappa: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(_is_number(self.entropy_beta) and self.entropy_beta >= 0, "entropy_beta", "must be >= 0",
               self.entropy_beta)
        _check(_is_number(self.entropy_kappa) and self.entropy_kappa > 0, "entropy_kappa", "must be > 0",
               self.entropy_kappa)


@dataclass(frozen=True)
class ForkingTokensHparams(CommonHparams):
    """'Beyond the 80/20 rule' (Wang et al. 2025): policy gradient on the top-entropy tokens only."""

    top_entropy_frac: float = 0.2
    entropy_scope: str = "batch"  # quantile over the whole batch (paper) or per sequence

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(_is_number(self.top_entropy_frac) and 0 < self.top_entropy_frac <= 1, "top_entropy_frac",
               "must be in (0, 1]", self.top_entropy_frac)
        _check(self.entropy_scope in ("sequence", "batch"), "entropy_scope",
               "must be 'sequence' or 'batch'", self.entropy_scope)


for _name, _cls in (("grpo", CommonHparams), ("simko", SimkoHparams), ("clip_cov", ClipCovHparams),
                    ("kl_cov", KlCovHparams), ("entropy_adv", EntropyAdvHparams),
                    ("forking_tokens", ForkingTokensHparams)):
    declare_loss(_name, _cls)


# ---------------------------------------------------------------- advantage estimators
@dataclass(frozen=True)
class AdvantageHparams:
    eps: float = 1e-6  # added to the group std before dividing
    correct_threshold: float = 0.5  # reward > threshold counts as a correct response (PSR/NSR/pass@k)

    def __post_init__(self) -> None:
        _check(_is_number(self.eps) and self.eps >= 0, "eps", "must be >= 0", self.eps)
        _check(_is_number(self.correct_threshold), "correct_threshold", "must be a number", self.correct_threshold)

    def check_group_size(self, n: int) -> None:
        """Raise ValueError if groups of `n` samples cannot be scored (pass@k needs n >= k)."""


@dataclass(frozen=True)
class WReinforceHparams(AdvantageHparams):
    positive_weight: float = 0.1  # lambda: weight of correct samples (incorrect ones get -1)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(_is_number(self.positive_weight) and self.positive_weight >= 0, "positive_weight", "must be >= 0",
               self.positive_weight)


@dataclass(frozen=True)
class PasskHparams(AdvantageHparams):
    k: int = 4  # the K whose pass@K the analytical advantages optimise

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 1, "k",
               "must be an int >= 1", self.k)

    def check_group_size(self, n: int) -> None:
        if self.k > n:
            raise ValueError(f"passk_training k={self.k} exceeds the group size n={n}")


for _name, _cls in (("grpo", AdvantageHparams), ("dr_grpo", AdvantageHparams), ("psr", AdvantageHparams),
                    ("nsr", AdvantageHparams), ("w_reinforce", WReinforceHparams),
                    ("passk_training", PasskHparams)):
    declare_advantage(_name, _cls)
