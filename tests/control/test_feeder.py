from services.data import Example
from services.control.feeder import PromptFeeder


def make(n_examples=5, **kw):
    examples = [Example(id=str(i), prompt=f"p{i}", answer=str(i), task="math") for i in range(n_examples)]
    return PromptFeeder(job_id="j", examples=examples, template="plain", n=4, seed=3, **kw)


def test_epochs_cover_every_example_once_and_ids_are_stable():
    feeder = make()
    first = feeder.next_groups(7, min_version=2)
    assert sorted(g.index for g in first[:5]) == [0, 1, 2, 3, 4]
    assert [g.epoch for g in first] == [0] * 5 + [1] * 2
    assert all(g.min_version == 2 and g.n == 4 and g.prompt == f"p{g.index}" for g in first)
    assert first[0].group_id == f"j-e0-i{first[0].index}"
    # a resumed feeder at the same cursor yields the same groups
    resumed = make(fed=3)
    assert [g.group_id for g in resumed.next_groups(4, 0)] == [g.group_id for g in first[3:7]]


def test_advance_moves_the_cursor():
    feeder = make()
    a = feeder.next_groups(2, 0)
    feeder.advance(2)
    b = feeder.next_groups(2, 0)
    assert {g.group_id for g in a}.isdisjoint({g.group_id for g in b})
