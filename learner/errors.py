"""Errors the learner side raises to its driver (torch- and Ray-free, so the loop can name them)."""


class LearnerLost(RuntimeError):
    """A learner rank died (its process is gone): the group's state since its newest checkpoint is
    lost with it. The training loop restarts the whole group from that checkpoint."""
