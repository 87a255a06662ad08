"""Reduce the loss library's per-micro-batch stats into one flat, JSON-ready dict per update.

Scalars are weighted means over micro-batches: token-weighted, except the per-response means of
the paper's eq. 2 (`dist/lambda_1`, ..., `dist/lambda_sampled`), which are weighted by the number
of responses in the micro-batch (`dist/responses`), so every response counts once. Histograms
(`*_hist`) are summed counts, bin edges (`*_edges`) kept as given. With several learner ranks the
sums are merged across ranks (`merge_ranks`), so the step's metrics cover the whole batch.
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist

RESPONSES_KEY = "dist/responses"


def per_response(key: str) -> bool:
    return key.startswith("dist/lambda_") and not key.endswith("_token")


class StatsAccumulator:
    def __init__(self) -> None:
        self._sums: dict[str, float] = defaultdict(float)
        self._weights: dict[str, float] = defaultdict(float)
        self._hists: dict[str, list[float]] = {}
        self._edges: dict[str, list[float]] = {}

    def add(self, stats: dict[str, torch.Tensor], weight: float) -> None:
        """`weight`: the micro-batch's valid tokens; per-response keys use its response count."""
        responses = float(stats[RESPONSES_KEY]) if RESPONSES_KEY in stats else weight
        for key, value in stats.items():
            if key == RESPONSES_KEY:
                continue
            if key.endswith("_edges"):
                self._edges[key] = value.tolist()
            elif key.endswith("_hist"):
                counts = value.tolist()
                old = self._hists.get(key)
                self._hists[key] = counts if old is None else [a + b for a, b in zip(old, counts)]
            elif value.numel() == 1:
                w = responses if per_response(key) else weight
                self._sums[key] += float(value) * w
                self._weights[key] += w

    def merge_ranks(self) -> None:
        """Sum every rank's sums, weights and histograms (collective: all ranks call it)."""
        if not dist.is_initialized() or dist.get_world_size() == 1:
            return
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (dict(self._sums), dict(self._weights), self._hists, self._edges))
        self._sums, self._weights = defaultdict(float), defaultdict(float)
        self._hists, self._edges = {}, {}
        for sums, weights, hists, edges in parts:
            for key, value in sums.items():
                self._sums[key] += value
            for key, value in weights.items():
                self._weights[key] += value
            for key, counts in hists.items():
                old = self._hists.get(key)
                self._hists[key] = counts if old is None else [a + b for a, b in zip(old, counts)]
            self._edges.update(edges)

    def result(self) -> dict[str, float | list[float]]:
        out: dict[str, float | list[float]] = {k: self._sums[k] / w for k, w in self._weights.items() if w > 0}
        out.update(self._hists)
        out.update(self._edges)
        return out
