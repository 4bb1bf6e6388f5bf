"""The five SVC_MIA attacks (Jia et al., NeurIPS 2023) on hand-made outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lethe.metrics import (
    MIA_COLUMNS,
    MIA_FEATURES,
    Outputs,
    mia_attacks,
    mia_confidence,
    mia_correctness,
    mia_efficacy,
    mia_entropy,
    mia_m_entropy,
    mia_probability,
    svc_mia,
)


def prob_outputs(probs, labels) -> Outputs:
    """Outputs whose softmax is ``probs`` (rows) with true labels ``labels``."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    return Outputs(torch.log(p).float(), torch.as_tensor(labels))


def confidence_outputs(probabilities) -> Outputs:
    """Two-class outputs whose true-class (class 0) softmax probability is ``probabilities``."""
    p = torch.as_tensor(probabilities, dtype=torch.float64)
    return prob_outputs(torch.stack([p, 1 - p], dim=1), torch.zeros(len(p), dtype=torch.long))


def test_features_by_hand():
    out = prob_outputs([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]], [0, 2])
    assert mia_correctness(out).tolist() == [1.0, 0.0]
    np.testing.assert_allclose(mia_confidence(out), [0.7, 0.3], rtol=1e-6)
    np.testing.assert_allclose(
        mia_entropy(out),
        [
            -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
            -(0.2 * math.log(0.2) + 0.5 * math.log(0.5) + 0.3 * math.log(0.3)),
        ],
        rtol=1e-5,
    )
    # Song & Mittal: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)
    np.testing.assert_allclose(
        mia_m_entropy(out),
        [
            -(0.3 * math.log(0.7) + 0.2 * math.log(0.8) + 0.1 * math.log(0.9)),
            -(0.7 * math.log(0.3) + 0.2 * math.log(0.8) + 0.5 * math.log(0.5)),
        ],
        rtol=1e-5,
    )
    probs = mia_probability(out)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs, [[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]], rtol=1e-5)


def test_m_entropy_is_zero_for_a_sure_right_answer_and_large_for_a_sure_wrong_one():
    right, wrong = mia_m_entropy(prob_outputs([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [0, 0]))
    assert right == pytest.approx(0.0, abs=1e-6)
    assert wrong > 60  # log(1e-30) clamps both logs


@pytest.fixture
def attack_data():
    g = torch.Generator().manual_seed(0)
    members = confidence_outputs(0.95 + 0.04 * torch.rand(200, generator=g))  # [0.95, 0.99]
    nonmembers = confidence_outputs(0.2 + 0.25 * torch.rand(60, generator=g))  # [0.2, 0.45]
    return members, nonmembers, g


@pytest.mark.parametrize("attack", list(MIA_FEATURES))
def test_every_attack_separates_members_from_nonmembers(attack_data, attack):
    members, nonmembers, g = attack_data
    feature = MIA_FEATURES[attack]
    member_like = confidence_outputs(0.95 + 0.04 * torch.rand(30, generator=g))
    nonmember_like = confidence_outputs(0.2 + 0.25 * torch.rand(30, generator=g))
    assert svc_mia(members, nonmembers, member_like, feature) == 0.0
    assert svc_mia(members, nonmembers, nonmember_like, feature) == 100.0


def test_confidence_attack_is_mia_efficacy(attack_data):
    members, nonmembers, g = attack_data
    forget = confidence_outputs(0.3 + 0.69 * torch.rand(40, generator=g))
    expected = mia_efficacy(members, nonmembers, forget, seed=3, max_samples=50)
    assert svc_mia(members, nonmembers, forget, mia_confidence, seed=3, max_samples=50) == expected
    all_five = mia_attacks(members, nonmembers, forget, seed=3, max_samples=50)
    assert all_five["mia_efficacy"] == expected
    assert (
        set(all_five)
        == set(MIA_COLUMNS.values())
        == {"mia_correctness", "mia_efficacy", "mia_entropy", "mia_m_entropy", "mia_prob"}
    )


def test_probability_attack_balances_vector_features():
    g = torch.Generator().manual_seed(1)
    members = prob_outputs(torch.softmax(4 * torch.randn(30, 4, generator=g), 1), torch.zeros(30, dtype=torch.long))
    nonmembers = prob_outputs(torch.softmax(torch.randn(80, 4, generator=g), 1), torch.zeros(80, dtype=torch.long))
    forget = prob_outputs(torch.softmax(torch.randn(10, 4, generator=g), 1), torch.zeros(10, dtype=torch.long))
    score = svc_mia(members, nonmembers, forget, mia_probability)  # 30 a side, 4 features
    assert 0.0 <= score <= 100.0


def test_empty_forget_set_is_nan_and_unknown_attack_fails(attack_data):
    members, nonmembers, _ = attack_data
    empty = confidence_outputs(torch.empty(0))
    assert all(math.isnan(v) for v in mia_attacks(members, nonmembers, empty).values())
    with pytest.raises(ValueError, match="unknown MIA attacks"):
        mia_attacks(members, nonmembers, empty, ["loss"])
