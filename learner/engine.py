"""The learner engine: a Hugging Face causal LM in DeepSpeed, updated with a registered policy loss.

`LearnerEngine.update(groups)` is the whole algorithm and reads top to bottom:
    filter groups + advantages -> mini-batch / micro-batch plan -> old log-probs (pre-update weights)
    -> for each PPO epoch and mini-batch: forward -> token stats + loss -> backward ... -> step.
It runs the same single-process, under torchrun / the deepspeed launcher, or inside Ray actors that
set RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; every rank receives the same full batch and
trains its own share of it (see batching.plan_mini_batch).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import deepspeed
import torch
from deepspeed.accelerator import get_accelerator
from transformers import AutoModelForCausalLM, AutoTokenizer

from learner.batching import MicroBatch, mini_batches, plan_mini_batch, prepare_batch
from learner.config import LearnerJob, LearnerSection
from learner.distributed import all_gather_1d, any_rank, init_process_group
from learner.hparams import CommonHparams
from learner.losses import make_hparams, policy_loss, zero_advantage_inert
from learner.masked import masked_quantile
from learner.metrics import StatsAccumulator
from learner.packing import honours_packing
from learner.state import LearnerState
from learner.threads import ThreadGovernor
from learner.token_stats import HiddenStates, token_stats_of
from services.wire.messages import ScoredGroup

log = logging.getLogger(__name__)


def pad_fraction(micro_batches: list[MicroBatch]) -> float:
    """Share of the positions the model ran on that were padding (packed rows, when packed)."""
    real = sum(int(mb.attention_mask.sum()) for mb in micro_batches)
    ran = sum((mb.packed.input_ids if mb.packed is not None else mb.input_ids).numel() for mb in micro_batches)
    return 1.0 - real / ran if ran else 0.0


@dataclass(frozen=True)
class StepResult:
    applied: bool
    loss: float  # this rank's share of the mini-batch loss (summed over ranks = the loss)
    grad_norm: float
    micro_batches: int = 0
    backward_skipped: int = 0  # micro-batches whose (exactly zero) gradient was not computed


class _Warmup:
    """LR multiplier: linear warm-up over `steps` optimizer steps, then constant. A class (not a
    lambda) so the scheduler's state_dict, saved in checkpoints, carries it."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __call__(self, step: int) -> float:
        return 1.0 if self.steps == 0 else min(1.0, (step + 1) / self.steps)


def deepspeed_config(cfg: LearnerSection, world_size: int) -> dict:
    return {
        # Batch sizes here only feed DeepSpeed's own bookkeeping: the learner sizes micro-batches by
        # tokens and owns the accumulation boundary (managed_gradient_accumulation=False: backward()
        # accumulates, step() is the boundary), so mini-batches may hold any number of micro-batches.
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "train_batch_size": world_size,
        "managed_gradient_accumulation": False,
        "gradient_clipping": cfg.grad_clip,
        "bf16": {"enabled": cfg.precision == "bf16"},
        "zero_optimization": {
            "stage": cfg.zero_stage,
            # Tiny models would otherwise keep every parameter whole under ZeRO-3 (docs/platform.md).
            "stage3_param_persistence_threshold": 0,
            "overlap_comm": False,
        },
        # torch AdamW as the client optimizer: no FusedAdam / CPUAdam compilation.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


class LearnerEngine:
    def __init__(self, job: LearnerJob, *, rollout_busy: Callable[[], bool] | None = None) -> None:
        """rollout_busy: whether a rollout worker on this machine is generating now (learner.actor
        builds it from services.wire.streams.GenerationMarks). With it and a thread cap
        (job.torch_threads), the learner uses its num_cpus threads whenever no worker generates
        (learner.threads)."""
        self.job = job
        self.cfg = cfg = job.learner
        self.threads: ThreadGovernor | None = None
        if job.torch_threads and rollout_busy is not None and job.torch_threads < cfg.full_threads:
            self.threads = ThreadGovernor(rollout_busy, capped=job.torch_threads, full=cfg.full_threads)
        elif job.torch_threads:
            torch.set_num_threads(job.torch_threads)
        self.rank, self.world_size = init_process_group(cfg.dist_backend)
        torch.manual_seed(job.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(job.model_path)
        model = AutoModelForCausalLM.from_pretrained(job.model_path, dtype=torch.float32)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.model_config = model.config
        self.vocab_size = model.config.vocab_size
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps,
                                      weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _Warmup(cfg.warmup_steps))
        self.ds, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                                config=deepspeed_config(cfg, self.world_size))
        self.ds.train()  # from_pretrained returns eval mode; gradient checkpointing needs train mode
        self.device = torch.device(get_accelerator().current_device_name())
        # Sequences packed end to end in the forward (learner/packing.py), if this model's attention
        # keeps them apart; the logits path (the reference) always runs padded. Checked before the
        # thread governor's hooks exist, so the check's forward leaves the thread count alone.
        self.pack = cfg.pack_sequences and cfg.token_stats == "hidden" and self._packing_honoured()
        if self.threads is not None:
            self.threads.install(list(getattr(model.base_model, "layers", [])))
        self.loss_name = job.algorithm.loss
        self.loss_hp = job.loss_hparams()  # validated once, when the JobSpec was parsed
        self.aggregation = self.loss_hp.aggregation
        # SimKO with tau_scope="batch": the quantile batch_hparams fixes over the whole batch.
        self.batch_tau_quantile = (self.loss_hp.tau_quantile
                                   if self.loss_name == "simko" and self.loss_hp.tau_scope == "batch" else None)
        # Zero-advantage rows get micro-batches of their own whose backward is skipped (their
        # gradient is exactly zero under GRPO / SimKO); a forward without autograd still gives
        # their diagnostics. One process only: with several ranks every rank would have to agree
        # on each skip (ZeRO's collectives run inside backward), and a non-finite loss on a
        # skipped micro-batch needs the NaN backward of the poisoned-step path.
        self.skip_inert_backward = self.world_size == 1 and zero_advantage_inert(self.loss_name, self.loss_hp)
        self.state = LearnerState()

    # ------------------------------------------------------------------ the update
    def update(self, groups: list[ScoredGroup]) -> dict:
        """Apply one batch of scored groups; return flat metrics. Never raises on bad data: empty
        batches, malformed or overlong groups and NaN losses are skipped and counted. Groups whose
        rewards are all equal train with advantage 0 (they count in the token-mean denominators,
        and the batch takes its batch_prompts / mini_batch_prompts optimizer steps, as the
        official code); only DAPO's dynamic sampling drops them."""
        started = time.perf_counter()
        fresh = [g for g in groups if g.group_id not in self.state.applied_group_ids]
        batch = prepare_batch(fresh, self.job, vocab_size=self.vocab_size)
        batch.counts["groups_duplicate"] = len(groups) - len(fresh)

        plans = [self.plan(rows) for rows in mini_batches(batch, self.cfg.mini_batch_prompts)]
        # Old log-probs under the pre-update weights, for every mini-batch, before the first step.
        # With one optimizer step per update (one mini-batch, one PPO epoch) the weights cannot
        # change before that step: the training forward's own log-probs are the old ones (ratio
        # 1, as TRL does with num_iterations=1), and the extra forward pass is skipped.
        old_started = time.perf_counter()
        if not self.on_policy_single_step(plans):
            plans = [[self.with_old_logprobs(mb) for mb in plan] for plan in plans]
        hparams = self.batch_hparams(plans)
        old_logprobs_s = time.perf_counter() - old_started

        stats = StatsAccumulator()
        steps = [self.train_mini_batch(plan, stats, hparams) for _ in range(self.cfg.ppo_epochs) for plan in plans]
        stats.merge_ranks()

        response_tokens = sum(r.response_len for rows in batch.rows for r in rows) * self.cfg.ppo_epochs
        self._record(batch, steps)
        metrics = self._metrics(batch, steps, stats, response_tokens, time.perf_counter() - started)
        metrics["perf/old_logprobs_s"] = old_logprobs_s
        metrics["perf/pad_frac"] = pad_fraction([mb for plan in plans for mb in plan])
        if self.threads is not None:
            metrics.update(self.threads.take_metrics())
        return metrics

    def plan(self, rows) -> list[MicroBatch]:
        return plan_mini_batch(rows, self.cfg, rank=self.rank, world_size=self.world_size,
                               pad_id=self.pad_id, aggregation=self.aggregation,
                               separate_zero_advantage=self.skip_inert_backward, pack=self.pack)

    def _packing_honoured(self) -> bool:
        """Checked once on the loaded model, in eval mode (no dropout), every rank alike."""
        self.ds.eval()
        try:
            ok = honours_packing(self.last_hidden, self.vocab_size, device=self.device,
                                 rtol=1e-2 if self.cfg.precision == "bf16" else 1e-4)
        finally:
            self.ds.train()
        if not ok:
            log.warning("learner.pack_sequences: this model's attention (%s) lets packed sequences see each "
                        "other; training on padded rows", getattr(self.model_config, "_attn_implementation", "?"))
        return ok

    def on_policy_single_step(self, plans: list[list[MicroBatch]]) -> bool:
        """One optimizer step per update: the old log-probs are the training forward's own. SimKO's
        batch-scope tau needs every token's entropy before the first micro-batch: not then."""
        return self.cfg.ppo_epochs == 1 and len(plans) <= 1 and self.batch_tau_quantile is None

    @torch.no_grad()
    def with_old_logprobs(self, mb: MicroBatch) -> MicroBatch:
        stats = token_stats_of(self.predictions(mb), mb.tokens.to(self.device), top_k=1,
                               chunk_size=self.cfg.logprob_chunk_size)
        return replace(mb, old_logprobs=stats.logp.float(), old_entropy=stats.entropy.float())

    def batch_hparams(self, plans: list[list[MicroBatch]]) -> CommonHparams:
        """The loss hparams for this update. SimKO with tau_scope="batch" gets its threshold fixed
        to the entropy quantile over every response token of the batch (all micro-batches, all
        ranks, pre-update weights): one micro-batch alone would give a different tau per packing."""
        hp = self.loss_hp
        if self.batch_tau_quantile is None:
            return hp
        local = [mb.old_entropy[mb.mask.to(mb.old_entropy.device)] for plan in plans for mb in plan if mb.weight > 0]
        entropy = all_gather_1d(torch.cat(local) if local else torch.zeros(0, device=self.device))
        if entropy.numel() == 0:
            return hp
        tau = masked_quantile(entropy, torch.ones_like(entropy, dtype=torch.bool), self.batch_tau_quantile)
        return replace(hp, tau_value=float(tau))

    def predictions(self, mb: MicroBatch) -> torch.Tensor | HiddenStates:
        """What the token statistics are computed from: the last hidden states and the lm_head
        (learner.token_stats = "hidden", the default: no [b,T,V] logits, nor their gradient, ever
        exist) or the logits themselves ("logits"). Position t predicts mb.tokens[:, t]."""
        if self.threads is not None:
            self.threads.check()
        if self.cfg.token_stats == "logits":
            return self.logits(mb)
        if mb.packed is None:
            hidden = self.last_hidden(mb.input_ids.to(self.device), attention_mask=mb.attention_mask.to(self.device))
        else:
            packed = mb.packed
            hidden = packed.unpack(self.last_hidden(packed.input_ids.to(self.device),
                                                    position_ids=packed.position_ids.to(self.device)))
        hidden = hidden[:, mb.start:-1]  # the positions logits_to_keep would project
        return HiddenStates.of(hidden, self.ds.module.get_output_embeddings(), self.job.temperature)

    def last_hidden(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                    position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """[b,S,H] last hidden states (after the final norm). The whole model's forward, through
        the DeepSpeed engine, so ZeRO-3's per-forward bookkeeping runs (calling the body alone
        skipped it and corrupted accumulated gradients); its lm_head projects one position only,
        and a hook takes the body's output."""
        captured: list = []
        handle = self.ds.module.base_model.register_forward_hook(
            lambda _module, _args, output: captured.append(output.last_hidden_state))
        try:
            self.ds(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                    logits_to_keep=1, use_cache=False)
        finally:
            handle.remove()
        return captured[-1]

    def logits(self, mb: MicroBatch) -> torch.Tensor:
        """[b, T, V] float32 logits divided by the sampling temperature; logits[:, t] predicts
        mb.tokens[:, t]. Only positions from the first response-predicting one are projected."""
        out = self.ds(input_ids=mb.input_ids.to(self.device), attention_mask=mb.attention_mask.to(self.device),
                      logits_to_keep=mb.logits_to_keep, use_cache=False)
        return out.logits[:, :-1].float() / self.job.temperature

    def policy_loss(self, logits: torch.Tensor | HiddenStates, mb: MicroBatch, loss: str | None = None,
                    hparams: CommonHparams | None = None):
        """(loss, stats), or (None, {}) when the loss would not be finite. `logits`: what
        predictions() returns. `loss` overrides the configured loss name with its default hparams
        (tests compare SimKO and GRPO through the same forward); `hparams` overrides the configured
        loss hparams (batch_hparams)."""
        features = logits.hidden if isinstance(logits, HiddenStates) else logits
        dev = features.device
        old = None if mb.old_logprobs is None else mb.old_logprobs.to(dev)  # None: this forward's own
        # One host sync: the loss library raises on non-finite inputs; here that is a skipped step.
        finite = torch.isfinite(features).all()
        if old is not None:
            finite = finite & (torch.isfinite(old) | ~mb.mask.to(dev)).all()
        if not bool(finite):
            return None, {}
        if loss is not None:
            name, hparams = loss, make_hparams(loss)
        else:
            name, hparams = self.loss_name, hparams or self.loss_hp
        value, stats = policy_loss(name, hparams, logits=logits, tokens=mb.tokens.to(dev), old_logprobs=old,
                                   advantages=mb.advantages.to(dev), mask=mb.mask.to(dev))
        if not bool(torch.isfinite(value)):
            return None, {}
        return value, stats

    def train_mini_batch(self, plan: list[MicroBatch], stats: StatsAccumulator,
                         hparams: CommonHparams | None = None) -> StepResult:
        """Accumulate gradients over this rank's micro-batches, then one optimizer step."""
        poisoned, loss_share, backward_ran, skipped = False, 0.0, False, 0
        for index, mb in enumerate(plan):
            # The last micro-batch runs backward if none did: the step then sees zero gradients
            # (AdamW's moments still move the weights), exactly as without the skip.
            if self.skip_inert_backward and mb.inert and (backward_ran or index < len(plan) - 1):
                with torch.no_grad():
                    loss, mb_stats = self.policy_loss(self.predictions(mb), mb, hparams=hparams)
                if loss is not None:
                    loss_share += float(loss) * mb.weight  # 0: every token's loss is 0 x ...
                    if mb.weight > 0:
                        stats.add(mb_stats, weight=float(mb.num_tokens))
                    skipped += 1
                    continue
                # Not finite: the gradient path below poisons the step.
            backward_ran = True
            predictions = self.predictions(mb)
            loss, mb_stats = self.policy_loss(predictions, mb, hparams=hparams)
            if loss is None:
                # Backward still runs so every rank executes the same ZeRO collectives; NaN gradients
                # make DeepSpeed's ZeRO optimizers discard the whole accumulated step (their overflow
                # path). Stage 0 has no such path: _step drops the gradients itself. The NaN goes
                # through the lm_head too, so every parameter gets a gradient (and its reduction).
                poisoned = True
                objective = token_stats_of(predictions, mb.tokens.to(self.device), top_k=1).logp.sum() * float("nan")
            else:
                objective = loss * mb.weight
                loss_share += float(loss.detach()) * mb.weight / self.world_size
                if mb.weight > 0:
                    stats.add(mb_stats, weight=float(mb.num_tokens))
            self.ds.backward(objective, scale_wrt_gas=False)
        return replace(self._step(poisoned, loss_share), micro_batches=len(plan), backward_skipped=skipped)

    def _step(self, poisoned: bool, loss_share: float) -> StepResult:
        if self.threads is not None:
            self.threads.check()
        if self.cfg.zero_stage == 0:
            if any_rank(poisoned):
                self.ds.zero_grad()  # stage 0 reduces inside step(): nothing left the ranks yet
                return StepResult(applied=False, loss=math.nan, grad_norm=math.nan)
            # DeepSpeed does not report the norm at stage 0; before step() it is this rank's
            # (pre-all-reduce) norm, exact for one process.
            grads = [p.grad for p in self.ds.module.parameters() if p.grad is not None]
            grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
            self.ds.step()
        else:
            self.ds.step()
            norm = self.ds.get_global_grad_norm()
            grad_norm = float(norm) if norm is not None else math.nan
        applied = self.ds.was_step_applied()
        if poisoned and applied:
            raise RuntimeError("DeepSpeed applied an optimizer step with NaN gradients; weights are corrupt")
        return StepResult(applied=applied, loss=loss_share if applied else math.nan, grad_norm=grad_norm)

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, batch, steps: list[StepResult]) -> None:
        applied = sum(s.applied for s in steps)
        self.state.step += 1
        self.state.optimizer_steps += applied
        if applied:
            self.state.weight_version += 1
        self.state.applied_group_ids.update(batch.seen_group_ids)
        self.state.counters.update({f"batch/{k}": v for k, v in batch.counts.items()})
        self.state.counters["learner/steps_skipped"] += len(steps) - applied

    def _metrics(self, batch, steps: list[StepResult], stats: StatsAccumulator, response_tokens: int,
                 elapsed: float) -> dict:
        applied = [s for s in steps if s.applied]
        losses = _sum_over_ranks([s.loss for s in applied])
        metrics = {
            "learner/step": self.state.step,
            "learner/weight_version": self.state.weight_version,
            "learner/optimizer_steps": len(applied),
            "learner/steps_skipped": len(steps) - len(applied),
            "learner/lr": self.ds.get_lr()[0],
            "loss/policy": sum(losses) / len(losses) if losses else math.nan,
            "loss/grad_norm": sum(s.grad_norm for s in applied) / len(applied) if applied else math.nan,
            "perf/update_s": elapsed,
            "perf/learner_threads": torch.get_num_threads(),
            "perf/micro_batches": sum(s.micro_batches for s in steps),
            "perf/backward_skipped": sum(s.backward_skipped for s in steps),
            "perf/response_tokens": response_tokens,
            "perf/tokens_per_s": response_tokens / elapsed if elapsed > 0 else 0.0,
        }
        metrics.update({f"batch/{k}": v for k, v in sorted(batch.counts.items())})
        if batch.rewards:
            metrics["reward/mean"] = sum(batch.rewards) / len(batch.rewards)
        metrics.update(stats.result())
        return metrics

    # ------------------------------------------------------------------ weights
    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The full weights (CPU tensors) on rank 0, None on other ranks. Every rank must call it:
        under ZeRO-3 the parameters are gathered collectively."""
        module = self.ds.module
        if self.cfg.zero_stage == 3:
            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                return _cpu_copy(module) if self.rank == 0 else None
        return _cpu_copy(module) if self.rank == 0 else None


def _cpu_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the state dict under checkpoint names, a tied weight once (the name that
    save_pretrained keeps, e.g. model.embed_tokens.weight but not lm_head.weight): the rollout
    engine validates updates against the checkpoint's names."""
    aliases = ({name for name, _ in module.named_parameters(remove_duplicate=False)}
               - {name for name, _ in module.named_parameters()})
    return {name: value.detach().to("cpu", copy=True) for name, value in module.state_dict().items()
            if name not in aliases}


def _sum_over_ranks(values: list[float]) -> list[float]:
    """Element-wise sum over ranks of equally long lists (each rank holds its loss share)."""
    import torch.distributed as dist

    if not values or not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()
