"""The vLLM side of weights by broadcast (rollout.weight_sync = broadcast).

    Engine.receive_weights(offer)                         # in the rollout worker's process
      check_offer(spec, offer)                            # names/shapes/dtypes vs the checkpoint, finite
      llm.collective_rpc("simko_receive_weights", ...)    # runs in every vLLM worker:
        WeightReceiverExtension.simko_receive_weights
          BroadcastReceiver(offer)                        # ticket -> this round's rank and version
          model_runner.reload_weights(weights_iterator=   # vLLM's in-place reload, fed lazily
              received bucket by bucket)                  #   so peak extra memory ~ one bucket

The extension is mixed into vLLM's worker class through the engine argument `worker_extension_cls`
(rollout.engine.engine_kwargs sets it), so it runs wherever the worker runs: in this process
(VLLM_ENABLE_V1_MULTIPROCESSING=0) or in the engine-core process; the offer crosses as a plain dict.
It uses reload_weights rather than model.load_weights: on CPU vLLM repacks weights after loading
(parameters may have shape [0]), and only the reload path re-runs that processing (docs/platform.md).
"""
from __future__ import annotations

from collections.abc import Mapping

from services.wire.weight_broadcast import BroadcastError, BroadcastOffer, BroadcastReceiver

EXTENSION = "rollout.weight_receiver.WeightReceiverExtension"  # the worker_extension_cls qualname


def check_offer(spec: Mapping, offer: BroadcastOffer) -> list[str]:
    """Problems that make `offer` unloadable by an engine whose checkpoint is `spec` (name ->
    TensorSpec): checked before joining a round, because a failed reload can kill the engine."""
    names = {t.name: t for t in offer.tensors}
    problems: list[str] = []
    missing = sorted(set(spec) - set(names))
    unknown = sorted(set(names) - set(spec))
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
    if unknown:
        problems.append(f"unknown names {unknown[:5]}")
    for name, meta in names.items():
        ref = spec.get(name)
        if ref is not None and tuple(meta.shape) != tuple(ref.shape):
            problems.append(f"{name}: shape {tuple(meta.shape)} != {tuple(ref.shape)}")
        if not meta.torch_dtype.is_floating_point:
            problems.append(f"{name}: dtype {meta.dtype} is not floating point")
    if not offer.finite:
        problems.append("non-finite values")
    return problems


class WeightReceiverExtension:
    """Methods vLLM adds to its worker class (`self` is the worker: model_runner, device, model_config)."""

    def simko_receive_weights(self, offer: dict, timeout_s: float) -> dict:
        """Receive the offered weights into the loaded model: {"version": received}, or {"error":
        why, "torn": whether some buckets were already loaded} when the round failed. Errors travel
        as values because collective_rpc's exception types differ between in-process and
        multi-process engines, and the engine must know whether its weights are still whole."""
        offer_ = BroadcastOffer.from_dict(offer)
        # NCCL delivers into the worker's GPU; gloo into host memory (the loader copies to the device).
        device = self.device if offer_.backend == "nccl" else "cpu"
        try:
            receiver = BroadcastReceiver(offer_, device=device, timeout_s=timeout_s)
        except BroadcastError as exc:  # StaleOffer included: nothing was received, the weights are whole
            return {"error": f"{type(exc).__name__}: {exc}", "torn": False}
        dtype = self.model_config.dtype  # a learner may hold fp32 masters for a bf16 engine
        stream = receiver.tensors()
        try:
            self.model_runner.reload_weights(weights_iterator=((n, t.to(dtype)) for n, t in stream))
        except BroadcastError as exc:
            return {"error": f"{type(exc).__name__}: {exc}", "torn": True}
        finally:
            # The round's broadcasts are collective: finish them even if the loader stopped early,
            # or the publisher and this round's other receivers would wait for this rank.
            try:
                for _ in stream:
                    pass
            except BroadcastError:
                pass  # already failing: the return value (or the loader's error) says so
        if receiver.buckets_received != len(offer_.bucket_sizes):
            return {"error": f"received {receiver.buckets_received} of {len(offer_.bucket_sizes)} buckets",
                    "torn": True}
        return {"version": receiver.version}
