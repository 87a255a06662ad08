"""learner.threads.ThreadGovernor: the learner's torch threads follow the rollout's generating state,
switching inside one forward and one backward; and the LearnerEngine wired to real Redis marks."""
from __future__ import annotations

import uuid

import pytest
import torch

import learner.threads as threads_module
from learner.engine import LearnerEngine
from learner.threads import ThreadGovernor
from services.wire.streams import GenerationMarks
from tests.learner.learner_support import make_groups


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads_module, "MIN_INTERVAL_S", 0.0)  # ask at every hook
    yield
    torch.set_num_threads(before)


def test_switches_inside_one_forward_and_one_backward():
    answers: list[bool] = []  # what busy() answers next (True: a worker generates)
    asked: list[str] = []

    def busy() -> bool:
        asked.append(phase)
        return answers.pop(0) if answers else False

    layers = [torch.nn.Linear(8, 8) for _ in range(4)]
    seen: list[int] = []
    governor = ThreadGovernor(busy, capped=1, full=2)
    assert torch.get_num_threads() == 1  # starts capped: the safe side
    governor.install(layers)
    for layer in layers:  # registered after install's pre-hook: sees the count the governor set
        layer.register_forward_hook(lambda _m, _a, _o: seen.append(torch.get_num_threads()))

    phase = "forward"
    answers[:] = [True, True, False, False]  # the rollout finishes generating mid-forward
    x = torch.randn(3, 8, requires_grad=True)
    for layer in layers:
        x = layer(x)
    assert seen == [1, 1, 2, 2]

    phase = "backward"
    answers[:] = [True] * 4  # the next batch starts generating: back to the cap within backward
    x.sum().backward()
    assert asked.count("backward") == 4 and torch.get_num_threads() == 1
    metrics = governor.take_metrics()
    assert metrics["perf/learner_thread_switches"] == 2 and metrics["perf/learner_full_threads_s"] > 0
    assert governor.take_metrics() == {"perf/learner_thread_switches": 0, "perf/learner_full_threads_s": 0.0}


def test_caps_that_leave_nothing_to_switch_are_refused():
    for capped, full in ((2, 2), (0, 2), (3, 2)):
        with pytest.raises(ValueError, match="capped"):
            ThreadGovernor(lambda: False, capped=capped, full=full)


@pytest.mark.slow
def test_engine_lifts_its_cap_only_while_no_worker_generates(learner_config, redis_url):
    job_id = f"threads-{uuid.uuid4().hex[:8]}"
    worker, learner = GenerationMarks(redis_url, job_id), GenerationMarks(redis_url, job_id)
    engine = LearnerEngine(learner_config(torch_threads=1, num_cpus=2), rollout_busy=learner.any_generating)
    assert engine.threads is not None and torch.get_num_threads() == 1
    with worker.generating("w0", expected_s=600):
        metrics = engine.update(make_groups(4))
    assert metrics["perf/learner_thread_switches"] == 0 and torch.get_num_threads() == 1
    metrics = engine.update(make_groups(4, seed=1))  # nobody generating: all of num_cpus
    assert metrics["perf/learner_thread_switches"] == 1 and metrics["perf/learner_threads"] == 2
    assert metrics["perf/learner_full_threads_s"] > 0
    with worker.generating("w0", expected_s=-1):  # a mark past its deadline (a dead worker's) counts for nothing
        assert not learner.any_generating()

    plain = LearnerEngine(learner_config(torch_threads=1, num_cpus=2))  # no marks: the fixed cap
    assert plain.threads is None and torch.get_num_threads() == 1
    assert "perf/learner_thread_switches" not in plain.update(make_groups(4, seed=2))
