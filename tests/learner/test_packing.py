"""Sequence packing (learner/packing.py): the layout, the gather back, and the check that a model
keeps packed sequences apart, on pure torch "models" whose attention is known."""
from __future__ import annotations

import random

import pytest
import torch

from learner.packing import first_fit, honours_packing, pack_rows


def padded(lengths: list[int], seed: int = 0, pad: int = 1) -> torch.Tensor:
    rng = random.Random(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.tensor([rng.randrange(8, 512) for _ in range(n)])
    return ids


@pytest.mark.parametrize("seed", range(5))
def test_first_fit_places_every_row_once_without_overlap(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 40) for _ in range(rng.randint(1, 60))]
    width = max(lengths)
    place = first_fit(lengths, width)
    cells: dict[tuple[int, int], int] = {}
    for row, ((b, offset), n) in enumerate(zip(place, lengths)):
        assert 0 <= offset and offset + n <= width
        for k in range(offset, offset + n):
            assert (b, k) not in cells, f"rows {cells[(b, k)]} and {row} overlap"
            cells[(b, k)] = row
    bins = 1 + max(b for b, _ in place)
    # first fit decreasing uses at most 11/9 OPT + 1 bins; OPT >= total / width
    assert bins <= 11 / 9 * (sum(lengths) / width) + 2


def test_first_fit_rejects_a_row_wider_than_the_bins():
    with pytest.raises(ValueError, match="row lengths"):
        first_fit([3, 9], 8)
    with pytest.raises(ValueError, match="row lengths"):
        first_fit([0, 2], 8)


def test_packed_rows_gather_back_to_the_padded_rows():
    lengths = [9, 3, 5, 2, 6, 1, 4]
    ids = padded(lengths)
    packed = pack_rows(ids, lengths, pad_id=1)
    assert packed is not None and packed.bins < len(lengths)
    back = packed.unpack(packed.input_ids[..., None])[..., 0]  # [b,S] ids through the index
    positions = packed.unpack(packed.position_ids[..., None])[..., 0]
    for row, n in enumerate(lengths):
        assert torch.equal(back[row, :n], ids[row, :n])
        assert torch.equal(positions[row, :n], torch.arange(n))  # each sequence starts at position 0
        assert (back[row, n:] == ids[row, n - 1]).all()  # padding reads the row's last token
    # every real token of the bins comes from exactly one row; the rest is padding
    assert int((packed.input_ids != 1).sum()) == sum(lengths)


def test_bin_tails_restart_their_positions():
    packed = pack_rows(padded([6, 2, 1]), [6, 2, 1], pad_id=1)  # bins (6) and (2, 1, tail of 3)
    assert packed is not None and packed.bins == 2
    assert packed.position_ids[1].tolist() == [0, 1, 0, 0, 1, 2]


def test_no_packing_when_it_saves_no_row():
    assert pack_rows(padded([5, 5, 4]), [5, 5, 4], pad_id=1) is None  # no two rows fit in one width
    assert pack_rows(padded([3]), [3], pad_id=1) is None


def prefix_sum_model(respect_boundaries: bool):
    """A one-layer "causal LM": each position's state is the running sum of the embeddings before it
    in its sequence. A sequence starts where the position ids restart, as Hugging Face's masks
    read them, unless respect_boundaries is False (attention over the whole row)."""
    table = torch.randn(512, 4, generator=torch.Generator().manual_seed(1))

    def body(ids, attention_mask=None, position_ids=None):
        x = table[ids]
        if position_ids is None or not respect_boundaries:
            return x.cumsum(dim=1)
        out = torch.zeros_like(x)
        for b in range(ids.shape[0]):
            running = torch.zeros(4)
            for t in range(ids.shape[1]):
                running = x[b, t] if position_ids[b, t] == 0 else running + x[b, t]
                out[b, t] = running
        return out

    return body


def test_the_check_accepts_a_model_that_keeps_sequences_apart():
    assert honours_packing(prefix_sum_model(True), 512, device=torch.device("cpu"), rtol=1e-5)


def test_the_check_rejects_a_model_whose_attention_crosses_sequences():
    assert not honours_packing(prefix_sum_model(False), 512, device=torch.device("cpu"), rtol=1e-2)
