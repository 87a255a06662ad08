"""The token profile a base model is checked with (entropy, mass on ranks 2-3, Lambda^(k)), on
hand-derived distributions."""
import math

import pytest
import torch

from services.embedded.token_profile import profile_from_logits


def test_profile_of_hand_made_distributions():
    # response 0: 4 tokens; three are certain, one is uniform over 4 candidates (a forking token)
    # response 1: 2 tokens, both uniform over 4; a padded third position that must not count
    certain = torch.tensor([20.0, 0.0, 0.0, 0.0])
    uniform = torch.zeros(4)
    logits = torch.stack([torch.stack([certain, uniform, certain, certain]),
                          torch.stack([uniform, uniform, certain, certain])])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    p = profile_from_logits(logits, mask)
    assert p["tokens"] == 6 and p["responses"] == 2
    assert p["entropy_mean"] == pytest.approx(3 * math.log(4) / 6, abs=1e-6)
    assert p["rank2_3_mass_mean"] == pytest.approx(3 * 0.5 / 6, abs=1e-6)
    # forking = above the response's 80th percentile: response 0's uniform token only (response 1's
    # tokens tie at its quantile, so none is above it)
    assert p["entropy_forking"] == pytest.approx(math.log(4), abs=1e-6)
    assert p["rank2_3_mass_forking"] == pytest.approx(0.5, abs=1e-6)
    # eq. 2: per response mean of the rank-k log-prob, then the mean over responses
    top1_0 = (3 * 0.0 + math.log(0.25)) / 4
    assert p["lambda_1"] == pytest.approx((top1_0 + math.log(0.25)) / 2, abs=1e-4)
    # rank 2 of a certain token: log(e^0 / (e^20 + 3)) ~ -20; of a uniform one: log 0.25
    rank2_0 = (3 * -20.0 + math.log(0.25)) / 4
    assert p["lambda_2"] == pytest.approx((rank2_0 + math.log(0.25)) / 2, abs=1e-4)
    assert p["lambda_3"] == pytest.approx(p["lambda_2"], abs=1e-4)
