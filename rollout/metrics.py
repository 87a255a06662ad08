"""Rollout worker metrics, reported under the `rollout/` and `perf/` namespaces of metrics.jsonl."""
from __future__ import annotations

from dataclasses import dataclass

from services.wire.messages import ScoredGroup


@dataclass
class RolloutMetrics:
    groups: int = 0
    samples: int = 0
    generated_tokens: int = 0
    truncated: int = 0
    reward_sum: float = 0.0
    correct: int = 0
    prompt_errors: int = 0  # groups refused per item (empty / too long)
    verifier_failures: int = 0  # batches left un-ACKed because the verifier was unreachable
    backpressure_waits: int = 0
    generate_s: float = 0.0
    verify_s: float = 0.0
    verify_calls: int = 0
    weight_updates: int = 0
    weight_update_s: float = 0.0
    weight_refusals: int = 0  # published versions the engine refused (bad names/shapes/dtypes)
    weight_failures: int = 0  # broadcast rounds that failed (retried at the next sync)
    busy_s: float = 0.0  # wall time inside run_once batches (not idle waits)

    def record_group(self, group: ScoredGroup) -> None:
        self.groups += 1
        for s in group.samples:
            self.samples += 1
            self.generated_tokens += len(s.token_ids)
            self.truncated += s.finish_reason == "length"
            self.reward_sum += s.reward
            self.correct += s.correct

    def snapshot(self) -> dict[str, float]:
        def ratio(a: float, b: float) -> float:
            return a / b if b else 0.0

        return {
            "rollout/groups": self.groups,
            "rollout/samples": self.samples,
            "rollout/response_length_mean": ratio(self.generated_tokens, self.samples),
            "rollout/truncation_rate": ratio(self.truncated, self.samples),
            "rollout/reward_mean": ratio(self.reward_sum, self.samples),
            "rollout/accuracy": ratio(self.correct, self.samples),
            "rollout/prompt_errors": self.prompt_errors,
            "rollout/verifier_failures": self.verifier_failures,
            "rollout/backpressure_waits": self.backpressure_waits,
            "rollout/weight_updates": self.weight_updates,
            "rollout/weight_refusals": self.weight_refusals,
            "rollout/weight_failures": self.weight_failures,
            "perf/rollout_generate_tokens_per_s": ratio(self.generated_tokens, self.generate_s),
            "perf/rollout_e2e_tokens_per_s": ratio(self.generated_tokens, self.busy_s),
            "perf/verifier_latency_s": ratio(self.verify_s, self.verify_calls),
            "perf/weight_update_s": ratio(self.weight_update_s, self.weight_updates),
            # running totals: the controller turns them into a per-step breakdown (its deltas)
            "perf/rollout_generate_s_total": self.generate_s,
            "perf/rollout_verify_s_total": self.verify_s,
            "perf/rollout_weight_load_s_total": self.weight_update_s,
            "perf/rollout_busy_s_total": self.busy_s,
        }
