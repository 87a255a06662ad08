"""The per-step time breakdown from the rollout workers' running totals (pure)."""
import pytest

from services.control.breakdown import since_process_start, step_breakdown


def test_deltas_of_the_running_totals_and_each_sides_idle_time():
    before = {"perf/rollout_generate_s_total": 10.0, "perf/rollout_verify_s_total": 1.0,
              "perf/rollout_weight_load_s_total": 0.5, "perf/rollout_busy_s_total": 12.0}
    after = {"perf/rollout_generate_s_total": 11.5, "perf/rollout_verify_s_total": 1.25,
             "perf/rollout_weight_load_s_total": 0.55, "perf/rollout_busy_s_total": 13.9}
    out = step_breakdown(before, after, step_s=3.0, wait_for_batch_s=1.8)
    assert out["perf/step_generate_s"] == pytest.approx(1.5)
    assert out["perf/step_verify_s"] == pytest.approx(0.25)
    assert out["perf/step_weight_load_s"] == pytest.approx(0.05)
    assert out["perf/rollout_idle_s"] == pytest.approx(3.0 - 1.9)
    assert out["perf/learner_idle_s"] == 1.8


def test_a_replaced_worker_restarts_its_totals_and_the_first_step_counts_from_zero():
    out = step_breakdown({"perf/rollout_generate_s_total": 50.0}, {"perf/rollout_generate_s_total": 2.0},
                         step_s=4.0, wait_for_batch_s=0.0)
    assert out["perf/step_generate_s"] == 2.0  # not -48
    first = step_breakdown({}, {"perf/rollout_busy_s_total": 5.0}, step_s=4.0, wait_for_batch_s=3.0)
    assert first["perf/step_rollout_busy_s"] == 5.0 and first["perf/rollout_idle_s"] == 0.0


def test_process_age_is_positive():
    assert since_process_start() > 0
