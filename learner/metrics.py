"""Reduce the loss library's per-micro-batch stats into one flat, JSON-ready dict per update."""
from __future__ import annotations

from collections import defaultdict

import torch


class StatsAccumulator:
    """Scalars: token-weighted mean over micro-batches. Histograms (`*_hist`): summed counts.
    Bin edges (`*_edges`): kept as given. Everything else that is not a scalar is dropped."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = defaultdict(float)
        self._weights: dict[str, float] = defaultdict(float)
        self._hists: dict[str, torch.Tensor] = {}
        self._edges: dict[str, list[float]] = {}

    def add(self, stats: dict[str, torch.Tensor], weight: float) -> None:
        for key, value in stats.items():
            if key.endswith("_edges"):
                self._edges[key] = value.tolist()
            elif key.endswith("_hist"):
                self._hists[key] = self._hists[key] + value if key in self._hists else value.clone()
            elif value.numel() == 1:
                self._sums[key] += float(value) * weight
                self._weights[key] += weight

    def result(self) -> dict[str, float | list[float]]:
        out: dict[str, float | list[float]] = {k: self._sums[k] / w for k, w in self._weights.items() if w > 0}
        out.update({k: v.tolist() for k, v in self._hists.items()})
        out.update(self._edges)
        return out
