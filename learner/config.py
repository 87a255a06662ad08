"""The learner's one frozen config section (composed into the JobSpec at the entry point).

Everything is validated once, here: loss / advantage names and their hyper-parameters are checked
against the registries, so a typo fails at construction rather than at the first update.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from learner.advantages import advantage_names, compute_advantages
from learner.losses import loss_names, make_hparams


class LearnerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model_path: str  # a Hugging Face causal-LM directory (weights + tokenizer)

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
    dist_backend: Literal["gloo", "nccl"] = "gloo"

    # batching: one update = batch_prompts groups -> batch_prompts / mini_batch_prompts optimizer
    # steps per PPO epoch; each rank runs its share of a mini-batch in micro-batches whose padded
    # size (rows x longest row) stays within micro_batch_tokens.
    batch_prompts: int = Field(8, ge=1)
    mini_batch_prompts: int = Field(8, ge=1)
    ppo_epochs: int = Field(1, ge=1)
    micro_batch_tokens: int = Field(4096, ge=1)
    max_seq_len: int = Field(2048, ge=2)  # prompt + response tokens
    overlong: Literal["truncate", "drop"] = "truncate"  # what to do with longer sequences
    dynamic_sampling: bool = True  # DAPO: drop groups whose rewards are all equal before the update

    # objective
    loss: str = "simko"
    loss_hparams: dict[str, Any] = Field(default_factory=dict)
    advantage: str = "grpo"
    advantage_hparams: dict[str, Any] = Field(default_factory=dict)
    temperature: float = Field(1.0, gt=0)  # the rollout sampling temperature: logits are divided by it
    logprob_chunk_size: int = Field(1024, ge=1)  # rows per chunk when recomputing old log-probs

    # checkpoints
    checkpoint_dir: str | None = None
    checkpoint_every: int = Field(0, ge=0)  # updates between checkpoints; 0 = only when asked
    keep_checkpoints: int = Field(2, ge=1)

    # the stream loop
    read_block_ms: int = Field(1000, ge=0)  # how long one read of the rollout stream blocks
    reclaim_idle_ms: int = Field(60_000, ge=1)  # take over groups left un-ACKed this long (dead learner)

    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "LearnerConfig":
        if self.batch_prompts % self.mini_batch_prompts:
            raise ValueError(f"batch_prompts ({self.batch_prompts}) must be a multiple of "
                             f"mini_batch_prompts ({self.mini_batch_prompts})")
        if self.loss not in loss_names():
            raise ValueError(f"unknown loss {self.loss!r}; valid: {loss_names()}")
        make_hparams(self.loss, **self.effective_loss_hparams)  # raises listing valid names
        if self.advantage not in advantage_names():
            raise ValueError(f"unknown advantage estimator {self.advantage!r}; valid: {advantage_names()}")
        # The advantage registry validates hparams on call: a one-group dry run checks them now
        # (64 samples so group-size-dependent hparams such as pass@k's k are accepted).
        compute_advantages(self.advantage, torch.tensor([[0.0, 1.0] * 32]), **self.advantage_hparams)
        if self.precision == "bf16" and self.zero_stage == 0:
            # Stage-0 bf16 runs DeepSpeed's BF16_Optimizer, whose fp32 gradient accumulators the
            # NaN-skip path cannot discard; ZeRO 1-3 skip non-finite steps themselves.
            raise ValueError("precision='bf16' needs zero_stage >= 1")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ValueError("checkpoint_every > 0 needs checkpoint_dir")
        return self

    @property
    def effective_loss_hparams(self) -> dict[str, Any]:
        """loss_hparams with the micro-batch-independent defaults the engine needs.

        Dr.GRPO's seq-mean-token-sum-norm divides by a constant length; the loss library defaults it
        to the padded width of its input, which under micro-batching would depend on how rows were
        packed. Pin it to max_seq_len so the objective is a property of the batch, not the packing.
        """
        hp = dict(self.loss_hparams)
        if hp.get("aggregation") == "seq-mean-token-sum-norm" and hp.get("norm_length") is None:
            hp["norm_length"] = self.max_seq_len
        return hp

    @property
    def optimizer_steps_per_update(self) -> int:
        return self.ppo_epochs * (self.batch_prompts // self.mini_batch_prompts)
