"""Per-token statistics of a policy's logits, in one chunked pass, from the logits or from the last
hidden states and the lm_head weight.

For every position we need: the sampled token's log-prob, the entropy (detached), the top-K
candidates (ranked by the detached logits) with their log-probs, and whether the sampled token is
the argmax. A naive implementation materialises `log_softmax(logits)` ([B,T,V] float32) and then
expands it K times for the candidates (the official SimKO code does this), which dominates memory at
real vocabulary sizes. Here a custom autograd Function keeps only the per-row log-sum-exp and the
gathered indices; both passes walk the token axis in chunks, so the extra memory is O(chunk x V) on
top of the logits and their gradient (which autograd needs anyway).

From hidden states (compute_token_stats_from_hidden, the learner's default) not even the logits
exist: each chunk's logits are computed from the hidden states in forward and again in backward,
so a real vocabulary (151,936 rows) costs O(chunk x V), never [B,T,V], for values and gradients.
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


@dataclass(frozen=True)
class HiddenStates:
    """What the learner hands the loss instead of logits: the last hidden states [B,T,H] (after the
    final norm) and the lm_head; logits = (hidden weight^T + bias) / temperature are never built."""

    hidden: torch.Tensor  # [B,T,H]
    weight: torch.Tensor  # [V,H] (the embedding matrix when tied)
    bias: torch.Tensor | None = None  # [V]
    temperature: float = 1.0
    # The model's lm_head module, when the weight belongs to one. The statistics are then computed
    # inside a call of that module, so DeepSpeed ZeRO-3's hooks gather its partitioned weight for
    # the forward and again for the backward, as they do for the module's own forward.
    head: torch.nn.Module | None = None

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """[V,H]; DeepSpeed ZeRO-3 keeps a partitioned parameter's full shape in ds_shape."""
        return tuple(getattr(self.weight, "ds_shape", self.weight.shape))

    @property
    def shape(self) -> tuple[int, int, int]:
        """[B,T,V] of the logits these stand for."""
        return (*self.hidden.shape[:2], self.weight_shape[0])

    def stats(self, tokens: torch.Tensor, *, top_k: int, chunk_size: int) -> "TokenStats":
        if self.head is None:
            return compute_token_stats_from_hidden(self.hidden, self.weight, tokens, bias=self.bias,
                                                   temperature=self.temperature, top_k=top_k, chunk_size=chunk_size)
        head = self.head
        batch, length, width = self.hidden.shape
        _check_top_k(top_k, self.weight_shape[0])

        def forward(hidden: torch.Tensor):
            # head.weight is the full weight here: ZeRO-3 gathered it before calling forward. The
            # outputs are plain tensors, so its hooks also re-gather it before this backward.
            return _HiddenGather.apply(hidden, head.weight, head.bias, tokens.reshape(-1).long(),
                                       1.0 / self.temperature, top_k, chunk_size)

        head.forward = forward  # the instance attribute shadows Linear.forward for this one call
        try:
            gathered, topk_ids, entropy = head(self.hidden.reshape(batch * length, width))
        finally:
            del head.forward
        return _stats(gathered, topk_ids, entropy, tokens, batch, length, top_k)

    @classmethod
    def of(cls, hidden: torch.Tensor, head: torch.nn.Module, temperature: float) -> "HiddenStates":
        return cls(hidden, head.weight, getattr(head, "bias", None), temperature, head)


def token_stats_of(predictions: "torch.Tensor | HiddenStates", tokens: torch.Tensor, *, top_k: int,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> "TokenStats":
    """TokenStats from logits [B,T,V] (temperature applied) or from HiddenStates."""
    if isinstance(predictions, HiddenStates):
        return predictions.stats(tokens, top_k=top_k, chunk_size=chunk_size)
    return compute_token_stats(predictions, tokens, top_k=top_k, chunk_size=chunk_size)


def _work_dtype(logits: torch.Tensor) -> torch.dtype:
    """bf16/fp16 logits are reduced in float32; float64 stays float64 (gradcheck)."""
    return torch.promote_types(logits.dtype, torch.float32)


def _chunk_stats(chunk: torch.Tensor, tokens: torch.Tensor, top_k: int):
    """One chunk of logits [c,V] (work dtype, left unchanged) -> (lse [c], entropy [c], idx [c,1+K],
    gathered [c,1+K]): idx[:,0] is the sampled token, idx[:,1:] the top-K candidates, gathered their
    log-probs. At most one [c,V] temporary besides the chunk."""
    lse = torch.logsumexp(chunk, dim=-1)
    probs = (chunk - lse[:, None]).exp_()
    # H = lse - sum_v p_v z_v. Where z_v = -inf (a masked vocabulary entry) p_v z_v = 0 * -inf = NaN:
    # nansum drops exactly those terms. A NaN logit still shows, through lse.
    entropy = lse - probs.mul_(chunk).nansum(dim=-1)
    del probs
    idx = torch.cat([tokens[:, None], torch.topk(chunk, top_k, dim=-1).indices], dim=1)
    gathered = chunk.gather(1, idx) - lse[:, None]
    return lse, entropy, idx, gathered


def _chunk_grad(chunk: torch.Tensor, lse: torch.Tensor, entropy: torch.Tensor, idx: torch.Tensor,
                grad_gathered: torch.Tensor, grad_entropy: torch.Tensor | None, *, reuse: bool) -> torch.Tensor:
    """d/dlogits [c,V] of sum(g * gathered) + sum(g_H * H) for one chunk (work dtype):
    scatter(g) - softmax * sum(g), plus -p (log p + H) g_H when the entropy carries a gradient.
    reuse=True lets it overwrite `chunk` (a recomputed chunk nobody else holds): at real vocabulary
    sizes each [c,V] temporary is hundreds of MB, so the hidden-state path keeps two."""
    log_probs = chunk.sub_(lse[:, None]) if reuse else chunk - lse[:, None]
    grad = log_probs.exp()  # the softmax, soon the gradient
    if grad_entropy is not None:
        term = log_probs.add_(entropy[:, None]).mul_(grad).neg_()  # -p (log p + H)
        term.masked_fill_(grad == 0, 0.0)  # p = 0 (a -inf logit): 0, not 0 * -inf
        term.mul_(grad_entropy[:, None])
    grad.mul_(-grad_gathered.sum(dim=-1, keepdim=True))
    grad.scatter_add_(1, idx, grad_gathered)
    if grad_entropy is not None:
        grad.add_(term)
    return grad


class _GatherLogProbs(torch.autograd.Function):
    """log_softmax(logits)[rows, idx] for a small index set per row, chunked, with entropy.

    forward: logits [N,V], tokens [N] -> (gathered [N,1+K], topk_ids [N,K], entropy [N]), float32 or wider
    where gathered[:,0] is the sampled token and gathered[:,1:] the top-K candidates.
    backward: per chunk, _chunk_grad; the entropy term only when the entropy is used with its
    gradient (an entropy bonus).
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
            lse[rows], entropy[rows], idx[rows], gathered[rows] = _chunk_stats(logits[rows].to(work), tokens[rows], top_k)
        ctx.save_for_backward(logits, lse, idx, entropy)
        ctx.chunk_size = chunk_size
        ctx.set_materialize_grads(False)  # unused outputs get None: no entropy term unless asked for
        topk_ids = idx[:, 1:].clone()
        ctx.mark_non_differentiable(topk_ids)
        return gathered, topk_ids, entropy

    @staticmethod
    def backward(ctx, grad_gathered, _grad_ids, grad_entropy):
        logits, lse, idx, entropy = ctx.saved_tensors
        work = _work_dtype(logits)
        grad_gathered = _or_zeros(grad_gathered, idx.shape, work, logits.device)
        grad_logits = torch.empty_like(logits)
        for start in range(0, logits.shape[0], ctx.chunk_size):
            rows = slice(start, min(start + ctx.chunk_size, logits.shape[0]))
            g_h = None if grad_entropy is None else grad_entropy[rows].to(work)
            grad_logits[rows] = _chunk_grad(logits[rows].to(work), lse[rows], entropy[rows], idx[rows],
                                            grad_gathered[rows], g_h, reuse=False).to(logits.dtype)
        return grad_logits, None, None, None


class _HiddenGather(torch.autograd.Function):
    """The same statistics from the last hidden states and the lm_head weight, never holding more
    than one chunk of logits: forward computes each chunk's logits, keeps its statistics and drops
    it; backward recomputes the chunk's logits, turns their gradient into the gradients of the
    hidden states and of the weight (and bias), and drops it again. No [N,V] tensor ever exists.

    forward: hidden [N,H], weight [V,H], bias [V] or None, tokens [N], inv_temperature -> as above.
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, tokens: torch.Tensor,
                inv_temperature: float, top_k: int, chunk_size: int):
        n_rows = hidden.shape[0]
        work = torch.promote_types(hidden.dtype, torch.float32)
        lse = torch.empty(n_rows, dtype=work, device=hidden.device)
        entropy = torch.empty(n_rows, dtype=work, device=hidden.device)
        idx = torch.empty(n_rows, 1 + top_k, dtype=torch.long, device=hidden.device)
        gathered = torch.empty(n_rows, 1 + top_k, dtype=work, device=hidden.device)
        for start in range(0, n_rows, chunk_size):
            rows = slice(start, min(start + chunk_size, n_rows))
            chunk = _chunk_logits(hidden[rows], weight, bias, inv_temperature, work)
            lse[rows], entropy[rows], idx[rows], gathered[rows] = _chunk_stats(chunk, tokens[rows], top_k)
            del chunk
        ctx.save_for_backward(hidden, weight, bias, lse, idx, entropy)
        ctx.inv_temperature, ctx.chunk_size = inv_temperature, chunk_size
        ctx.set_materialize_grads(False)
        topk_ids = idx[:, 1:].clone()
        ctx.mark_non_differentiable(topk_ids)
        return gathered, topk_ids, entropy

    @staticmethod
    def backward(ctx, grad_gathered, _grad_ids, grad_entropy):
        hidden, weight, bias, lse, idx, entropy = ctx.saved_tensors
        work = lse.dtype
        grad_gathered = _or_zeros(grad_gathered, idx.shape, work, hidden.device)
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden) if need_h else None
        grad_weight = torch.zeros_like(weight) if need_w else None
        grad_bias = torch.zeros_like(bias) if need_b and bias is not None else None
        for start in range(0, hidden.shape[0], ctx.chunk_size):
            rows = slice(start, min(start + ctx.chunk_size, hidden.shape[0]))
            chunk = _chunk_logits(hidden[rows], weight, bias, ctx.inv_temperature, work)
            g_h = None if grad_entropy is None else grad_entropy[rows].to(work)
            # logits = (h W^T + b) / T: the chain rule carries 1/T to every input.
            grad = _chunk_grad(chunk, lse[rows], entropy[rows], idx[rows], grad_gathered[rows], g_h, reuse=True)
            del chunk
            grad = grad.mul_(ctx.inv_temperature).to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[rows] = grad @ weight
            if grad_weight is not None:
                grad_weight.addmm_(grad.t(), hidden[rows].to(weight.dtype))
            if grad_bias is not None:
                grad_bias += grad.sum(dim=0).to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, inv_temperature: float,
                  work: torch.dtype) -> torch.Tensor:
    """(h W^T + b) in the weights' dtype (as the model's lm_head does), then the work dtype, / T."""
    logits = hidden.to(weight.dtype) @ weight.t()
    if bias is not None:
        logits += bias
    logits = logits.to(work)  # a new tensor only for bf16/fp16 weights
    return logits.mul_(inv_temperature) if inv_temperature != 1.0 else logits


def _or_zeros(grad: torch.Tensor | None, shape, dtype: torch.dtype, device) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype, device=device) if grad is None else grad.to(dtype)


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
    return _stats(gathered, topk_ids, entropy, tokens, batch, length, top_k)


def compute_token_stats_from_hidden(hidden: torch.Tensor, weight: torch.Tensor, tokens: torch.Tensor, *,
                                    bias: torch.Tensor | None = None, temperature: float = 1.0, top_k: int = 3,
                                    chunk_size: int = DEFAULT_CHUNK_SIZE) -> TokenStats:
    """hidden [B,T,H] (the last hidden states, after the final norm), weight [V,H] (lm_head; the
    embedding when tied), tokens [B,T] -> TokenStats of logits = (hidden W^T + bias) / temperature,
    equal to compute_token_stats on those logits, in O(chunk x V) memory for values and gradients."""
    if hidden.dim() != 3 or tokens.shape != hidden.shape[:2]:
        raise ValueError(f"expected hidden [B,T,H] and tokens [B,T]; got {tuple(hidden.shape)} and {tuple(tokens.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight must be [V, H={hidden.shape[-1]}], got {tuple(weight.shape)}")
    _check_top_k(top_k, weight.shape[0])
    if chunk_size < 1 or not temperature > 0:
        raise ValueError(f"chunk_size must be >= 1 and temperature > 0, got {chunk_size}, {temperature}")
    batch, length, width = hidden.shape
    gathered, topk_ids, entropy = _HiddenGather.apply(hidden.reshape(batch * length, width), weight, bias,
                                                      tokens.reshape(-1).long(), 1.0 / temperature, top_k, chunk_size)
    return _stats(gathered, topk_ids, entropy, tokens, batch, length, top_k)


def _check_top_k(top_k: int, vocab: int) -> None:
    if not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in [1, V={vocab}], got {top_k}")


def _stats(gathered, topk_ids, entropy, tokens, batch: int, length: int, top_k: int) -> TokenStats:
    topk_ids = topk_ids.reshape(batch, length, top_k)
    entropy = entropy.reshape(batch, length)
    return TokenStats(logp=gathered[:, 0].reshape(batch, length), entropy=entropy.detach(), topk_ids=topk_ids,
                      topk_logp=gathered[:, 1:].reshape(batch, length, top_k), is_top1=topk_ids[..., 0] == tokens,
                      entropy_live=entropy)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """log pi(y_t) [B,T] only (e.g. recomputing old log-probs under no_grad)."""
    return compute_token_stats(logits, tokens, top_k=1, chunk_size=chunk_size).logp
