"""The learner's configuration: the JobSpec's `learner` and `algorithm` sections themselves, and
what a learner rank is given (`LearnerJob`). Torch-free, so the job API validates specs without torch.

AlgorithmSection validates loss / advantage names and hyper-parameters once, at parse time, into
typed objects (`loss_hp`, `advantage_hp`) that travel down to the learner ranks with the section.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from learner.hparams import AdvantageHparams, CommonHparams, make_advantage_hparams, make_hparams


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlgorithmSection(_Section):
    loss: str = "simko"
    loss_hparams: dict[str, Any] = Field(default_factory=dict)
    advantage: str = "grpo"
    advantage_hparams: dict[str, Any] = Field(default_factory=dict)
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal (the batch is refilled)
    # DAPO soft overlong punishment: the last `overlong_buffer_tokens` of rollout.max_tokens ramp the
    # reward down linearly to -overlong_penalty_factor (0 = off).
    overlong_buffer_tokens: int = Field(0, ge=0)
    overlong_penalty_factor: float = Field(1.0, ge=0)

    _loss_hp: CommonHparams = PrivateAttr()
    _advantage_hp: AdvantageHparams = PrivateAttr()

    @model_validator(mode="after")
    def _typed_hparams(self) -> "AlgorithmSection":
        self._loss_hp = _typed("loss", make_hparams, self.loss, self.loss_hparams)
        self._advantage_hp = _typed("advantage", make_advantage_hparams, self.advantage, self.advantage_hparams)
        return self

    @property
    def loss_hp(self) -> CommonHparams:
        """The loss's hyper-parameters, validated when the section was built."""
        return self._loss_hp

    @property
    def advantage_hp(self) -> AdvantageHparams:
        return self._advantage_hp


def _typed(kind: str, make, name: str, values: dict):
    """make(name, **values), its error naming the field: `loss`, `loss_hparams` or `loss_hparams.alpha`."""
    try:
        return make(name, **values)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if message.startswith("unknown policy loss") or message.startswith("unknown advantage estimator"):
            raise ValueError(f"{kind}: {message}") from None
        first = message.split(" ", 1)[0]
        field = f"{kind}_hparams.{first}" if first in values else f"{kind}_hparams"
        raise ValueError(f"{field}: {message}") from None


class LearnerSection(_Section):
    # optimiser
    lr: float = Field(1e-6, gt=0)
    warmup_steps: int = Field(0, ge=0)  # linear warm-up over optimizer steps, then constant
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(1.0, ge=0)  # max global grad norm; 0 disables clipping
    # engine
    zero_stage: Literal[0, 1, 2, 3] = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    gradient_checkpointing: bool = False
    # batching: one update = batch_prompts groups -> batch_prompts / mini_batch_prompts optimizer
    # steps per PPO epoch; each rank runs its share of a mini-batch in micro-batches whose padded
    # size (rows x longest row) stays within micro_batch_tokens.
    batch_prompts: int = Field(8, ge=1)  # prompt groups per update
    mini_batch_prompts: int = Field(8, ge=1)
    ppo_epochs: int = Field(1, ge=1)
    micro_batch_tokens: int = Field(4096, ge=1)
    max_seq_len: int = Field(2048, ge=2)  # prompt + response tokens
    overlong: Literal["truncate", "drop"] = "truncate"  # sequences longer than max_seq_len
    logprob_chunk_size: int = Field(1024, ge=1)  # token rows per chunk when recomputing old log-probs
    # Token statistics from the last hidden states and the lm_head, chunk by chunk ("hidden": no
    # [tokens, vocab] logits or gradient ever exist; the memory peak at real vocabularies), or from
    # the model's full logits ("logits", the reference path).
    token_stats: Literal["hidden", "logits"] = "hidden"
    # The forward runs on rows packed end to end, position ids restarting per sequence, instead of
    # padded rows (learner/packing.py: the same hidden states, less compute where lengths vary).
    # Used with token_stats "hidden" once the engine has checked the model keeps the sequences apart.
    pack_sequences: bool = True
    # checkpoints and the stream
    keep_checkpoints: int = Field(2, ge=1)
    read_block_ms: int = Field(1000, ge=0)  # how long one read of the rollout stream blocks
    reclaim_idle_ms: int = Field(60_000, ge=1)  # take over groups left un-ACKed this long (a dead learner)
    # Ray placement: world_size ranks (Ray actors forming one DeepSpeed process group), per rank
    world_size: int = Field(1, ge=1)
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources, e.g. {"learner": 1}

    @model_validator(mode="after")
    def _check(self) -> "LearnerSection":
        if self.batch_prompts % self.mini_batch_prompts:
            raise ValueError(f"mini_batch_prompts: {self.mini_batch_prompts} must divide batch_prompts "
                             f"({self.batch_prompts})")
        if self.precision == "bf16" and self.zero_stage == 0:
            # Stage-0 bf16 runs DeepSpeed's BF16_Optimizer, whose fp32 gradient accumulators the
            # NaN-skip path cannot discard; ZeRO 1-3 skip non-finite steps themselves.
            raise ValueError("precision: 'bf16' needs zero_stage >= 1")
        return self

    @property
    def dist_backend(self) -> str:
        return "nccl" if self.num_gpus > 0 else "gloo"

    @property
    def full_threads(self) -> int:
        """Torch threads a rank may use when it has its num_cpus to itself (at least one)."""
        return max(1, int(self.num_cpus))

    @property
    def optimizer_steps_per_update(self) -> int:
        return self.ppo_epochs * (self.batch_prompts // self.mini_batch_prompts)


@dataclass(frozen=True)
class LearnerJob:
    """What a learner rank is given: its two sections and the job facts it needs from elsewhere in
    the JobSpec (values, not re-declared settings)."""

    model_path: str  # a Hugging Face causal-LM directory (weights + tokenizer)
    temperature: float  # rollout.temperature: logits are divided by it
    max_response_tokens: int  # rollout.max_tokens: the DAPO overlong ramp ends here
    seed: int  # trainer.seed
    learner: LearnerSection = LearnerSection()
    algorithm: AlgorithmSection = AlgorithmSection()
    checkpoint_dir: str | None = None
    job_id: str | None = None  # the job's streams and weight registry (None: an engine without them)
    weight_sync: str = "object_store"  # rollout.weight_sync: how rank 0 publishes weights
    torch_threads: int | None = None  # derived by the controller (placement.learner_threads); None: OMP_NUM_THREADS

    def loss_hparams(self) -> CommonHparams:
        """The loss hparams the engine trains with. Dr.GRPO's seq-mean-token-sum-norm divides by a
        constant length; the library defaults it to the padded width of its input, which under
        micro-batching would depend on how rows were packed: pin it to max_seq_len."""
        hp = self.algorithm.loss_hp
        if hp.aggregation == "seq-mean-token-sum-norm" and hp.norm_length is None:
            hp = replace(hp, norm_length=self.learner.max_seq_len)
        return hp
