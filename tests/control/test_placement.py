"""learner_threads: the learner's torch threads when the job's actors share one machine."""
from __future__ import annotations

import pytest

from services.control.jobspec import JobSpec
from services.control.placement import learner_threads


def spec(staleness: int, learner_cpus: float = 2, rollout_workers: int = 1, rollout_cpus: float = 1,
         world_size: int = 1) -> JobSpec:
    return JobSpec.parse({"model": {"path": "m"}, "data": {"train": "d.jsonl"},
                          "trainer": {"max_staleness": staleness},
                          "learner": {"num_cpus": learner_cpus, "world_size": world_size},
                          "rollout": {"workers": rollout_workers, "num_cpus": rollout_cpus}})


def test_on_policy_keeps_rays_threads_they_take_turns_with_generation():
    assert learner_threads(spec(0), one_node_cores=2) is None


@pytest.mark.parametrize("cores,expected", [(2, 1), (3, None), (16, None)])
def test_overlapped_learner_gets_the_cores_the_rollout_does_not_hold(cores, expected):
    assert learner_threads(spec(1), one_node_cores=cores) == expected


def test_never_below_one_thread_and_shared_between_ranks():
    assert learner_threads(spec(2, rollout_workers=4), one_node_cores=2) == 1
    assert learner_threads(spec(1, learner_cpus=4, world_size=2), one_node_cores=6) == 2
    assert learner_threads(spec(1, learner_cpus=0.5), one_node_cores=2) is None  # already one


def test_a_cluster_is_left_to_rays_accounting():
    assert learner_threads(spec(1), one_node_cores=None) is None


def test_the_controller_hands_the_threads_to_the_learner_only_on_its_own_machine(tmp_path):
    from services.control.controller import JobContext, learner_job

    def job(local_ray: bool):
        ctx = JobContext(job_id="j", spec=spec(1, learner_cpus=64), run_dir=tmp_path, redis_url="redis://x",
                         verifier_url="http://v", local_ray=local_ray)
        return learner_job(ctx)

    import os
    assert job(local_ray=True).torch_threads == max(1, (os.cpu_count() or 1) - 1)
    assert job(local_ray=False).torch_threads is None
