"""Masked reductions over [B,T] token tensors (pure torch, no host syncs)."""
from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid entries; 0 when there are none (never NaN)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def response_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over responses of each response's own token mean ([B,T] -> scalar): every response
    counts once, however long (the paper's eq. 2 averaging). Rows without valid tokens are left
    out; 0 when there are none."""
    mask = mask.to(values.dtype)
    counts = mask.sum(dim=-1)
    rows = counts > 0
    row_means = (values * mask).sum(dim=-1) / counts.clamp(min=1)
    return (row_means * rows).sum() / rows.sum().clamp(min=1)


def masked_quantile(values: torch.Tensor, mask: torch.Tensor, q: float, dim: int | None = None) -> torch.Tensor:
    """The q-quantile of the valid entries, linear interpolation (as torch.quantile / numpy "linear").

    dim=None: one scalar over all valid entries; dim=-1: one value per row ([B] for [B,T]).
    Rows without valid entries give +inf, so "value > quantile" selects nothing there.
    """
    if dim is None:
        values, mask = values.reshape(1, -1), mask.reshape(1, -1)
    elif dim not in (-1, values.dim() - 1):
        raise ValueError("masked_quantile supports dim=None or the last dim")
    filled = torch.where(mask.bool(), values, torch.full_like(values, float("inf")))
    ordered = filled.sort(dim=-1).values
    count = mask.bool().sum(dim=-1)
    position = q * (count - 1).clamp(min=0).to(values.dtype)
    lower = position.floor().long()
    upper = position.ceil().long()
    frac = position - lower.to(values.dtype)
    low_v = ordered.gather(-1, lower[..., None])[..., 0]
    up_v = ordered.gather(-1, upper[..., None])[..., 0]
    # lerp without inf-inf: equal positions need no interpolation.
    result = torch.where(upper == lower, low_v, low_v + frac * (up_v - low_v))
    result = torch.where(count > 0, result, torch.full_like(result, float("inf")))
    return result[0] if dim is None else result


def masked_histogram(values: torch.Tensor, mask: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Counts of valid entries per bin [edges[i], edges[i+1]); the last bin is closed on the right.
    Values outside the edges are clamped into the end bins so every valid token is counted once."""
    # bincount with mask weights instead of boolean indexing: no data-dependent shape, no host sync.
    bins = torch.bucketize(values.detach().reshape(-1).to(edges.dtype), edges[1:-1], right=True)
    weights = mask.reshape(-1).to(torch.float32)
    return torch.bincount(bins, weights=weights, minlength=edges.numel() - 1)
