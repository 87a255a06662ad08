"""The learner state's bounded window of applied group ids and its round trip through a dict."""
from learner.state import LearnerState, RecentIds


def test_recent_ids_forget_the_oldest_beyond_capacity():
    ids = RecentIds(capacity=3)
    ids.update(["a", "b", "c"])
    ids.update(["a"])  # seen again: now the most recent
    ids.update(["d"])
    assert list(ids) == ["c", "a", "d"] and "b" not in ids and len(ids) == 3


def test_state_round_trip_keeps_the_window_in_order():
    state = LearnerState(step=3, weight_version=2, optimizer_steps=2)
    state.applied_group_ids.update(["g2", "g1", "g3"])
    restored = LearnerState.from_dict(state.to_dict())
    assert list(restored.applied_group_ids) == ["g2", "g1", "g3"]
    assert (restored.step, restored.weight_version, restored.optimizer_steps) == (3, 2, 2)

