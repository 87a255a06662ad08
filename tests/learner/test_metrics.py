"""The per-update reduction of the loss library's micro-batch stats."""
import pytest
import torch


def test_stats_accumulator_weights_lambda_by_responses_and_the_rest_by_tokens():
    from learner.metrics import StatsAccumulator

    acc = StatsAccumulator()
    t = torch.tensor
    # micro-batch 1: 2 responses, 10 tokens; micro-batch 2: 1 response, 30 tokens
    acc.add({"dist/lambda_1": t(-1.0), "dist/lambda_1_token": t(-1.0), "loss/x": t(1.0), "dist/responses": t(2.0)},
            weight=10)
    acc.add({"dist/lambda_1": t(-4.0), "dist/lambda_1_token": t(-4.0), "loss/x": t(3.0), "dist/responses": t(1.0)},
            weight=30)
    out = acc.result()
    assert out["dist/lambda_1"] == pytest.approx((2 * -1.0 + 1 * -4.0) / 3)  # every response once
    assert out["dist/lambda_1_token"] == pytest.approx((10 * -1.0 + 30 * -4.0) / 40)
    assert out["loss/x"] == pytest.approx((10 * 1.0 + 30 * 3.0) / 40) and "dist/responses" not in out
