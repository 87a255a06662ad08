"""Every JobSpec field reaches the component that reads it: none is declared and never read.

Two checks. Statically, every leaf field of every section is read as an attribute by some product
module other than the one that declares it (a knob only its own validator looks at is dead).
Dynamically, the mechanical derivations (the controller's LearnerJob / RolloutJob, the vLLM engine
and sampling arguments, the DeepSpeed config, the verifier client) carry the values of a spec in
which every field differs from its default.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from pydantic import BaseModel

from services.control.jobspec import JobSpec

ROOT = Path(__file__).resolve().parents[2]

# Every leaf field with a valid non-default value (adding a field to a section means adding it here).
CHANGED = {
    "name": "reach",
    "model": {"path": "/models/m"},
    "data": {"train": "/d/train.jsonl", "eval": "/d/eval.jsonl", "format": "jsonl", "prompt_template": "plain",
             "default_task": "logic", "task_map": {"my/source": "logic"}, "on_bad_rows": "skip", "shuffle": False},
    "algorithm": {"loss": "grpo", "loss_hparams": {"clip_high": 0.28}, "advantage": "dr_grpo",
                  "advantage_hparams": {"eps": 1e-5}, "dynamic_sampling": True, "overlong_buffer_tokens": 16,
                  "overlong_penalty_factor": 0.5},
    "rollout": {"workers": 3, "n": 4, "temperature": 0.7, "top_p": 0.9, "max_tokens": 100, "stop": ["</s>"],
                "top_logprobs": 2, "chat_template": True, "max_model_len": 1024, "dtype": "bfloat16",
                "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5, "kv_cache_bytes": 1 << 28,
                "max_num_batched_tokens": 4096, "enable_chunked_prefill": True, "enforce_eager": True,
                "enable_prefix_caching": False, "batch_groups": 5, "pipeline": False, "block_ms": 250, "backpressure_bound": 64,
                "reclaim_idle_ms": 5000, "weight_wait_s": 9.0, "weight_sync": "broadcast", "metrics_interval_s": 7.0, "num_cpus": 2.0,
                "num_gpus": 1.0, "resources": {"rollout": 1.0}},
    "learner": {"lr": 3e-6, "warmup_steps": 4, "weight_decay": 0.1, "betas": [0.8, 0.95], "adam_eps": 1e-6,
                "grad_clip": 0.5, "zero_stage": 2, "precision": "bf16", "gradient_checkpointing": True,
                "batch_prompts": 4, "mini_batch_prompts": 2, "ppo_epochs": 2, "micro_batch_tokens": 999,
                "max_seq_len": 777, "overlong": "drop", "logprob_chunk_size": 128, "token_stats": "logits", "pack_sequences": False,
                "keep_checkpoints": 3,
                "read_block_ms": 50, "reclaim_idle_ms": 999, "world_size": 2, "num_cpus": 3.0, "num_gpus": 1.0,
                "resources": {"learner": 0.5}},
    "trainer": {"steps": 12, "max_staleness": 1, "save_every": 3, "eval_every": 6, "eval_n": 16,
                "eval_problems": 10, "export_final": False, "rollout_timeout_s": 60.0, "max_restarts": 2, "seed": 5,
                "loggers": ["jsonl", "tensorboard", "wandb", "mlflow"],
                "tracking": {"project": "p", "run_name": "r", "tags": ["t"], "mlflow_tracking_uri": "file:///tmp/m"}},
    "verifier": {"url": "http://v:8001", "workers": 3, "timeout_s": 5.0, "deadline_s": 9.0, "max_batch": 16,
                 "extraction": "strict"},
    "infra": {"redis_url": "redis://r:6379/0", "ray_address": "ray://h:10001"},
}


def leaf_fields(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[type, str]]:
    """'section.field' -> (declaring class, field name) for every non-section field."""
    out = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(leaf_fields(annotation, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = (model, name)
    return out


# Fields validated into typed objects at parse time: components read the typed attribute instead.
TYPED = {"loss_hparams": "loss_hp", "advantage_hparams": "advantage_hp"}


def attribute_reads() -> dict[str, set[tuple[str, str | None]]]:
    """attribute name -> {(module path, enclosing top-level class or None)} of its `x.name` reads."""
    reads: dict[str, set[tuple[str, str | None]]] = {}
    for top in ("services", "learner", "rollout", "verifier"):
        for path in (ROOT / top).rglob("*.py"):
            module = str(path.relative_to(ROOT))
            for top_node in ast.parse(path.read_text()).body:
                owner = top_node.name if isinstance(top_node, ast.ClassDef) else None
                for node in ast.walk(top_node):
                    if isinstance(node, ast.Attribute):
                        reads.setdefault(node.attr, set()).add((module, owner))
    return reads


def test_the_changed_spec_sets_every_field_to_a_non_default_value():
    spec = JobSpec.parse(CHANGED)
    default = JobSpec.parse({"model": {"path": "m"}, "data": {"train": "d"}})
    same = []
    for dotted in leaf_fields(JobSpec):
        a, b = spec, default
        for part in dotted.split("."):
            a, b = getattr(a, part), getattr(b, part)
        if a == b:
            same.append(dotted)
    assert not same, f"give these fields a non-default value in CHANGED: {same}"


def test_every_field_is_read_outside_the_module_that_declares_it():
    reads = attribute_reads()
    dead = []
    for dotted, (cls, name) in leaf_fields(JobSpec).items():
        own_body = (str(Path(inspect.getfile(cls)).resolve().relative_to(ROOT)), cls.__name__)
        if not reads.get(TYPED.get(name, name), set()) - {own_body}:  # its own validators do not count
            dead.append(dotted)
    assert not dead, f"declared but never read by a component: {dead}"


@pytest.fixture(scope="module")
def spec() -> JobSpec:
    return JobSpec.parse(CHANGED)


def test_the_controller_hands_each_component_its_sections(spec, tmp_path):
    from services.control.controller import JobContext, learner_job, rollout_job

    ctx = JobContext(job_id="j", spec=spec, run_dir=tmp_path, redis_url="redis://x", verifier_url="http://v")
    lj, rj = learner_job(ctx), rollout_job(ctx)
    assert lj.learner is spec.learner and lj.algorithm is spec.algorithm  # whole sections, never re-typed
    assert (lj.model_path, lj.temperature, lj.max_response_tokens, lj.seed) == ("/models/m", 0.7, 100, 5)
    assert rj.rollout is spec.rollout and rj.verifier is spec.verifier
    assert (rj.model_path, rj.max_staleness, rj.seed) == ("/models/m", 1, 5)
    assert lj.weight_sync == "broadcast"  # rank 0 publishes the way the workers receive
    assert lj.loss_hparams().clip_high == 0.28 and spec.algorithm.advantage_hp.eps == 1e-5


def test_rollout_fields_reach_vllm(spec):
    from rollout.engine import engine_kwargs, sampling_kwargs

    engine = engine_kwargs("/models/m", spec.rollout, seed=spec.trainer.seed)
    assert {k: engine[k] for k in ("dtype", "tensor_parallel_size", "max_model_len", "gpu_memory_utilization",
                                   "max_num_batched_tokens", "enable_chunked_prefill", "enforce_eager", "enable_prefix_caching", "seed",
                                   "kv_cache_memory_bytes")} == {
        "dtype": "bfloat16", "tensor_parallel_size": 2, "max_model_len": 1024, "gpu_memory_utilization": 0.5,
        "max_num_batched_tokens": 4096, "enable_chunked_prefill": True, "enforce_eager": True,
        "enable_prefix_caching": False, "seed": 5,
        "kv_cache_memory_bytes": 1 << 28}
    assert engine["worker_extension_cls"] == "rollout.weight_receiver.WeightReceiverExtension"  # weight_sync
    sampling = sampling_kwargs(spec.rollout, spec.rollout.n)
    assert sampling == {"n": 4, "temperature": 0.7, "top_p": 0.9, "max_tokens": 100, "stop": ["</s>"],
                        "logprobs": 2, "seed": None}


def test_learner_fields_reach_deepspeed(spec):
    from learner.engine import deepspeed_config

    ds = deepspeed_config(spec.learner, world_size=2)
    assert ds["gradient_clipping"] == 0.5 and ds["zero_optimization"]["stage"] == 2 and ds["bf16"]["enabled"]
    assert spec.learner.dist_backend == "nccl" and spec.learner.optimizer_steps_per_update == 4


def test_verifier_fields_reach_the_client(spec):
    from services.wire.verifier_client import VerifierClient

    client = VerifierClient.for_section("http://v:8001", spec.verifier)
    assert (client.timeout_s, client.deadline_s, client.max_batch, client.extraction) == (5.0, 9.0, 16, "strict")
