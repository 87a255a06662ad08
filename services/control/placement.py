"""Where a job's compute goes on the machine (pure functions of the JobSpec and machine facts)."""
from __future__ import annotations

from services.control.jobspec import JobSpec


def learner_threads(spec: JobSpec, *, one_node_cores: int | None) -> int | None:
    """Torch threads per learner rank, or None to keep Ray's (OMP_NUM_THREADS = learner.num_cpus).

    one_node_cores: the machine's core count when every actor of the job shares it (the job's own
    local Ray), None on a cluster, where Ray's CPU accounting already keeps actors apart.
    On-policy (max_staleness 0) generation and training take turns, so the learner may use all
    its num_cpus while the engines wait. With max_staleness > 0 they run at the same time, and a
    learner whose threads spill onto the cores the rollout workers compute on slows both sides
    (2 cores, learner.num_cpus 2: the overlap ran slower than taking turns, README); there it
    gets the cores the rollout workers do not hold, at least one."""
    if one_node_cores is None or spec.trainer.max_staleness == 0:
        return None
    wanted = spec.learner.full_threads
    free = one_node_cores - spec.rollout.workers * spec.rollout.num_cpus
    cap = max(1, int(free // spec.learner.world_size))
    return cap if cap < wanted else None
