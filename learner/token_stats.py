"""Per-token statistics of a policy's logits, in one chunked pass.

For every position we need: the sampled token's log-prob, the entropy (detached), the top-K
candidates (ranked by the detached logits) with their log-probs, and whether the sampled token is
the argmax. A naive implementation materialises `log_softmax(logits)` ([B,T,V] float32) and then
expands it K times for the candidates (the official SimKO code does this), which dominates memory at
real vocabulary sizes. Here a custom autograd Function keeps only the per-row log-sum-exp and the
gathered indices; both passes walk the token axis in chunks, so the extra memory is O(chunk x V) on
top of the logits and their gradient (which autograd needs anyway).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_CHUNK_SIZE = 1024


@dataclass(frozen=True)
class TokenStats:
    logp: torch.Tensor  # [B,T] log pi(y_t), differentiable
    entropy: torch.Tensor  # [B,T] H(pi(.|s_t)), detached (gates, thresholds, diagnostics)
    topk_ids: torch.Tensor  # [B,T,K] candidate ids ranked by detached logits (rank 0 = argmax)
    topk_logp: torch.Tensor  # [B,T,K] log pi(c_k), differentiable
    is_top1: torch.Tensor  # [B,T] bool, y_t == argmax
    entropy_live: torch.Tensor | None = None  # [B,T] the same entropy with its gradient (entropy bonus)

    @property
    def top_k(self) -> int:
        return self.topk_ids.shape[-1]


def _work_dtype(logits: torch.Tensor) -> torch.dtype:
    """bf16/fp16 logits are reduced in float32; float64 stays float64 (gradcheck)."""
    return torch.promote_types(logits.dtype, torch.float32)


class _GatherLogProbs(torch.autograd.Function):
    """log_softmax(logits)[rows, idx] for a small index set per row, chunked, with entropy.

    forward: logits [N,V], tokens [N] -> (gathered [N,1+K], topk_ids [N,K], entropy [N]), float32 or wider
    where gathered[:,0] is the sampled token and gathered[:,1:] the top-K candidates.
    backward: d/dlogits of sum(g * gathered) = scatter(g) - softmax * sum(g), recomputed per chunk;
    plus, only when the entropy is used with its gradient (an entropy bonus), dH/dz_v =
    -p_v (log p_v + H).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, tokens: torch.Tensor, top_k: int, chunk_size: int):
        n_rows = logits.shape[0]
        work = _work_dtype(logits)
        lse = torch.empty(n_rows, dtype=work, device=logits.device)
        entropy = torch.empty(n_rows, dtype=work, device=logits.device)
        idx = torch.empty(n_rows, 1 + top_k, dtype=torch.long, device=logits.device)
        gathered = torch.empty(n_rows, 1 + top_k, dtype=work, device=logits.device)
        for start in range(0, n_rows, chunk_size):
            rows = slice(start, min(start + chunk_size, n_rows))
            chunk = logits[rows].to(work)  # [c,V]
            chunk_lse = torch.logsumexp(chunk, dim=-1)  # [c]
            probs = torch.exp(chunk - chunk_lse[:, None])
            # H = lse - sum_v p_v z_v. Where z_v = -inf (a masked vocabulary entry) p_v z_v = 0 * -inf
            # = NaN: nansum drops exactly those terms. A NaN logit still shows, through lse.
            entropy[rows] = chunk_lse - probs.mul_(chunk).nansum(dim=-1)
            del probs
            idx[rows, 0] = tokens[rows]
            idx[rows, 1:] = torch.topk(chunk, top_k, dim=-1).indices
            gathered[rows] = chunk.gather(1, idx[rows]) - chunk_lse[:, None]
            lse[rows] = chunk_lse
        ctx.save_for_backward(logits, lse, idx, entropy)
        ctx.chunk_size = chunk_size
        ctx.set_materialize_grads(False)  # unused outputs get None: no entropy term unless asked for
        topk_ids = idx[:, 1:].clone()
        ctx.mark_non_differentiable(topk_ids)
        return gathered, topk_ids, entropy

    @staticmethod
    def backward(ctx, grad_gathered, _grad_ids, grad_entropy):
        logits, lse, idx, entropy = ctx.saved_tensors
        grad_logits = torch.empty_like(logits)
        work = _work_dtype(logits)
        if grad_gathered is None:
            grad_gathered = torch.zeros(idx.shape, dtype=work, device=logits.device)
        grad_gathered = grad_gathered.to(work)
        grad_total = grad_gathered.sum(dim=-1)  # [N]
        for start in range(0, logits.shape[0], ctx.chunk_size):
            rows = slice(start, min(start + ctx.chunk_size, logits.shape[0]))
            chunk = logits[rows].to(work)
            log_probs = chunk - lse[rows, None]
            probs = torch.exp(log_probs)
            chunk_grad = probs * -grad_total[rows, None]
            chunk_grad.scatter_add_(1, idx[rows], grad_gathered[rows])
            if grad_entropy is not None:
                # -p (log p + H); where p = 0 (a -inf logit) the term is 0, not 0 * -inf.
                term = torch.where(probs > 0, -probs * (log_probs + entropy[rows, None]), torch.zeros_like(probs))
                chunk_grad += term * grad_entropy[rows, None].to(work)
            grad_logits[rows] = chunk_grad.to(logits.dtype)
        return grad_logits, None, None, None


def compute_token_stats(logits: torch.Tensor, tokens: torch.Tensor, *, top_k: int = 3,
                        chunk_size: int = DEFAULT_CHUNK_SIZE) -> TokenStats:
    """logits [B,T,V] (temperature applied), tokens [B,T] valid ids -> TokenStats."""
    if logits.dim() != 3 or tokens.shape != logits.shape[:2]:
        raise ValueError(f"expected logits [B,T,V] and tokens [B,T]; got {tuple(logits.shape)} and {tuple(tokens.shape)}")
    if not 1 <= top_k <= logits.shape[-1]:
        raise ValueError(f"top_k must be in [1, V={logits.shape[-1]}], got {top_k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    batch, length, vocab = logits.shape
    gathered, topk_ids, entropy = _GatherLogProbs.apply(
        logits.reshape(batch * length, vocab), tokens.reshape(-1).long(), top_k, chunk_size)
    topk_ids = topk_ids.reshape(batch, length, top_k)
    entropy = entropy.reshape(batch, length)
    return TokenStats(
        logp=gathered[:, 0].reshape(batch, length),
        entropy=entropy.detach(),
        topk_ids=topk_ids,
        topk_logp=gathered[:, 1:].reshape(batch, length, top_k),
        is_top1=topk_ids[..., 0] == tokens,
        entropy_live=entropy,
    )


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """log pi(y_t) [B,T] only (e.g. recomputing old log-probs under no_grad)."""
    return compute_token_stats(logits, tokens, top_k=1, chunk_size=chunk_size).logp
