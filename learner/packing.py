"""Several sequences per model row: the learner's forward without padding compute (pure torch).

A micro-batch is [b, S] right-padded rows; on the embedded job a third of those positions are
padding, and the model's matmuls, norms and attention cost scale with every position. Packing puts
rows end to end into bins of width S (first fit, longest first), with position ids restarting at 0
for each sequence. Hugging Face causal LMs (transformers >= 4.53, `masking_utils`) read a restart
of the position ids, with no attention mask, as a sequence boundary and build a block-diagonal
causal mask, so no token attends across sequences and the hidden states equal the padded ones.
`unpack` gathers the bins' hidden states back into the padded [b, S] layout (its backward is a
scatter-add), so everything after the forward (token statistics, the losses, every per-row
statistic) sees the same tensors as without packing.

Whether a model honours the boundaries is an attention-implementation property (FlashAttention-2
in transformers treats position ids as packed only for a batch of one row, for example), so the
engine checks it once on the loaded model (`honours_packing`) before it packs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class PackedRows:
    input_ids: torch.Tensor  # [bins, S] long
    position_ids: torch.Tensor  # [bins, S] long: 0.. per sequence; each bin's padding tail is one more sequence
    index: torch.Tensor  # [b, S] long: flat position (bin * S + offset) of each padded (row, position)

    @property
    def bins(self) -> int:
        return self.input_ids.shape[0]

    def unpack(self, hidden: torch.Tensor) -> torch.Tensor:
        """[bins, S, H] -> [b, S, H] in the padded layout. A padding position takes its row's last
        token's state (finite; masked out downstream, as a padded row's padding states are)."""
        return hidden.reshape(-1, hidden.shape[-1])[self.index]


def first_fit(lengths: list[int], width: int) -> list[tuple[int, int]]:
    """(bin, offset) of each row: rows longest first, each into the first bin with room."""
    if any(n < 1 or n > width for n in lengths):
        raise ValueError(f"row lengths must be in [1, {width}], got {lengths}")
    free: list[int] = []
    place: list[tuple[int, int]] = [(0, 0)] * len(lengths)
    for row in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        n = lengths[row]
        target = next((k for k, room in enumerate(free) if room >= n), None)
        if target is None:
            target = len(free)
            free.append(width)
        place[row] = (target, width - free[target])
        free[target] -= n
    return place


def pack_rows(input_ids: torch.Tensor, lengths: list[int], pad_id: int) -> PackedRows | None:
    """The packed form of right-padded [b, S] rows with these lengths, or None when packing would
    not save a model row (every row needs a bin of its own)."""
    batch, width = input_ids.shape
    place = first_fit(lengths, width)
    bins = 1 + max(b for b, _ in place)
    if bins >= batch:
        return None
    ids = torch.full((bins, width), pad_id, dtype=torch.long)
    positions = torch.zeros((bins, width), dtype=torch.long)
    used = [0] * bins
    index = torch.empty((batch, width), dtype=torch.long)
    for row, ((b, offset), n) in enumerate(zip(place, lengths)):
        ids[b, offset:offset + n] = input_ids[row, :n]
        positions[b, offset:offset + n] = torch.arange(n)
        flat = b * width + offset
        index[row, :n] = torch.arange(flat, flat + n)
        index[row, n:] = flat + n - 1
        used[b] = max(used[b], offset + n)
    for b, end in enumerate(used):  # the tail restarts at 0 too: a sequence of its own
        positions[b, end:] = torch.arange(width - end)
    return PackedRows(input_ids=ids, position_ids=positions, index=index)


def honours_packing(body: Callable[..., torch.Tensor], vocab_size: int, *, device: torch.device,
                    rtol: float) -> bool:
    """Whether `body` (input_ids, attention_mask=None | [b,S], position_ids=None | [b,S] -> last
    hidden states [b,S,H]) gives packed sequences the hidden states it gives them padded. Five
    rows in three bins (a bin of one sequence, one of two with no padding, one of two and a padding
    tail): if attention crossed a boundary, the later sequences' states would change by far more
    than float noise."""
    generator = torch.Generator().manual_seed(0)
    lengths = [5, 3, 2, 2, 1]  # first fit into width 5: bins (5), (3, 2), (2, 1, padding)
    width = max(lengths)
    ids = torch.randint(0, vocab_size, (len(lengths), width), generator=generator)
    attention = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        attention[row, :n] = 1
    packed = pack_rows(ids, lengths, pad_id=0)
    assert packed is not None and packed.bins == 3
    with torch.no_grad():
        padded = body(ids.to(device), attention_mask=attention.to(device), position_ids=None)
        unpacked = packed.unpack(body(packed.input_ids.to(device), attention_mask=None,
                                      position_ids=packed.position_ids.to(device)))
    valid = attention.bool().to(device)
    error = (padded - unpacked)[valid].float().norm() / padded[valid].float().norm().clamp(min=1e-12)
    return bool(error <= rtol)
