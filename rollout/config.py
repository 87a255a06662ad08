"""RolloutConfig: the rollout section of a JobSpec (one frozen config, validated at construction)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rollout.engine import EngineConfig, SamplingConfig


@dataclass(frozen=True)
class RolloutConfig:
    job_id: str
    model: str  # Hugging Face model directory
    redis_url: str = "redis://127.0.0.1:6379/0"
    verifier_url: str = "http://127.0.0.1:8001"
    # sampling (n is the default; a PromptGroup's own n wins)
    n: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    top_logprobs: int = 3
    chat_template: bool = False  # wrap text prompts in the tokenizer's chat template
    # engine
    max_model_len: int = 2048
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    kv_cache_bytes: int | None = None
    seed: int = 0
    # flow control
    batch_groups: int = 16  # prompt groups per generate call
    # Verify/publish/ACK a batch in the background while the next one generates (one in flight;
    # the back-pressure bound may then be overshot by one batch).
    pipeline: bool = True
    block_ms: int = 1000  # how long an idle worker blocks on the prompt stream
    max_staleness: int = 0  # never sample with weights older than learner_version - max_staleness
    backpressure_bound: int = 256  # stop taking prompts while the learner's backlog is this large
    reclaim_idle_ms: int = 120_000  # take over prompts un-ACKed this long (> the slowest batch!)
    weight_wait_s: float = 60.0  # how long to wait for a required weight version before leaving the batch
    stream_maxlen: int = 100_000
    # verifier client
    verifier_timeout_s: float = 30.0
    verifier_deadline_s: float = 120.0
    verifier_max_batch: int = 64
    worker_id: str = ""  # default: host-pid
    metrics_interval_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ValueError("job_id is required")
        for name in ("batch_groups", "n", "max_tokens", "backpressure_bound", "verifier_max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_staleness < 0 or self.block_ms < 0 or self.reclaim_idle_ms < 1:
            raise ValueError("max_staleness and block_ms must be >= 0, reclaim_idle_ms >= 1")
        if self.backpressure_bound >= self.stream_maxlen:
            # MAXLEN trimming drops unconsumed entries; the bound must keep the stream well below it.
            raise ValueError("backpressure_bound must be < stream_maxlen")
        # YAML may give one string or a list; a bare string must not become a tuple of characters.
        object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))
        self.engine_config()  # validate the engine and sampling sections now, loudly
        self.sampling_config(self.n)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RolloutConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown rollout config keys {unknown}; valid: {sorted(known)}")
        return cls(**values)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(model=self.model, dtype=self.dtype, tensor_parallel_size=self.tensor_parallel_size,
                            max_model_len=self.max_model_len, gpu_memory_utilization=self.gpu_memory_utilization,
                            kv_cache_bytes=self.kv_cache_bytes, seed=self.seed)

    def sampling_config(self, n: int) -> SamplingConfig:
        return SamplingConfig(n=n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                              stop=self.stop, top_logprobs=self.top_logprobs, chat_template=self.chat_template)
