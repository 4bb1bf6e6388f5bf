"""Statistics of the LiRA-style attack (lethe_classification.lira_stats) on synthetic confidences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lethe_classification.lira_stats import (
    attack_table,
    auc,
    chance,
    fit_gaussians,
    fit_pair,
    leave_one_out_attack,
    likelihood_ratio,
    logit_confidence,
)


def test_logit_confidence_is_the_logit_of_the_true_class_probability():
    logits = torch.randn(50, 5, generator=torch.Generator().manual_seed(0)) * 3
    labels = torch.arange(50) % 5
    p = torch.softmax(logits.double(), 1).gather(1, labels.view(-1, 1)).squeeze(1)
    np.testing.assert_allclose(logit_confidence(logits, labels), torch.log(p / (1 - p)).numpy(), rtol=1e-6)
    sure = logit_confidence(torch.tensor([[60.0, 0.0], [0.0, 60.0]]), torch.tensor([0, 0]))
    assert sure[0] == pytest.approx(60.0) and sure[1] == pytest.approx(-60.0)  # no inf where p rounds to 1


def test_fit_gaussians_fixed_and_per_sample_variance():
    phi = np.array([[0.0, 10.0], [2.0, 10.0]])
    per_sample = fit_gaussians(phi, fixed_variance=False)
    np.testing.assert_allclose(per_sample.mean, [1.0, 10.0])
    np.testing.assert_allclose(per_sample.std, [math.sqrt(2.0), 1e-3])  # the floor, not 0
    fixed = fit_gaussians(phi, fixed_variance=True)
    np.testing.assert_allclose(fixed.std, [1.0, 1.0])  # sqrt of the mean variance (2 + 0) / 2
    with pytest.raises(ValueError, match="K >= 2"):
        fit_gaussians(phi[:1])


def test_likelihood_ratio_sign():
    unlearned, retrained = (
        fit_gaussians(np.array([[1.0, 1.0], [3.0, 3.0]])),
        fit_gaussians(-np.ones((2, 2)) * [[1], [3]]),
    )
    assert likelihood_ratio(np.array([2.0, 2.0]), unlearned, retrained) > 0
    assert likelihood_ratio(np.array([-2.0, -2.0]), unlearned, retrained) < 0
    assert likelihood_ratio(np.zeros(2), unlearned, retrained) == pytest.approx(0.0)


def test_auc():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0]), np.array([2.0])) == 0.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5


def synthetic(pairs: int, n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """phi of P models per hypothesis: per-sample means shared by both, the method's moved by ``shift``."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 3, n)
    return base + shift + rng.normal(0, 1, (pairs, n)), base + rng.normal(0, 1, (pairs, n))


def test_fit_pair_pools_the_variance_of_both_hypotheses_with_a_floor():
    unlearned = np.array([[0.0, 10.0, 5.0], [2.0, 10.0, 5.0]])
    retrained = np.array([[0.0, 0.0, 1.0], [4.0, 0.0, 3.0]])
    u, r = fit_pair(unlearned, retrained)
    np.testing.assert_allclose(u.mean, [1.0, 10.0, 5.0])
    np.testing.assert_allclose(r.mean, [2.0, 0.0, 2.0])
    # pooled variances (2 + 8) / 2 = 5, 0, (0 + 2) / 2 = 1; the 0 floored at 0.1 x the median (1)
    np.testing.assert_allclose(u.std, np.sqrt([5.0, 0.1, 1.0]))
    np.testing.assert_allclose(r.std, u.std)
    fixed_u, fixed_r = fit_pair(unlearned, retrained, "fixed")
    assert fixed_u.std[0] != fixed_r.std[0]
    with pytest.raises(ValueError, match="variance must be one of"):
        fit_pair(unlearned, retrained, "shared")


@pytest.mark.parametrize("variance", ["pooled", "fixed", "per_sample"])
def test_separable_distributions_are_told_apart(variance):
    method, oracle = synthetic(pairs=6, n=200, shift=1.0, seed=0)
    result = leave_one_out_attack(method, oracle, variance)
    assert result.accuracy == 100.0 and result.auc == 100.0 and result.pair_accuracy == 100.0


def test_identical_distributions_give_about_half():
    accuracies, aucs = [], []
    for seed in range(10):
        method, oracle = synthetic(pairs=8, n=100, shift=0.0, seed=seed)
        result = leave_one_out_attack(method, oracle)
        accuracies.append(result.accuracy)
        aucs.append(result.auc)
    assert 35.0 <= np.mean(accuracies) <= 65.0
    assert 35.0 <= np.mean(aucs) <= 65.0


def test_a_variance_mismatch_alone_moves_the_fixed_variance_score_not_the_pooled():
    """Two hypotheses with the same per-sample means whose shadows differ only in spread (a chance
    mismatch at small K): with one variance per hypothesis every sample of a model at the common
    means adds ``log(s_r / s_u)``, which summed over n samples decides its score; pooled variances
    give the same model a score of 0 (the log-ratio is linear in phi, 0 between equal means)."""
    mean = np.linspace(-12, -8, 1000)
    spread = np.array([[-1.0], [0.0], [1.0]])
    unlearned, retrained = mean + 1.2 * spread, mean + spread  # same means, std 1.2 against 1
    fixed = likelihood_ratio(mean, *fit_pair(unlearned, retrained, "fixed"))
    assert fixed == pytest.approx(np.log(1 / 1.2))  # mean per sample: log(s_r / s_u), n times in the sum
    assert likelihood_ratio(mean, *fit_pair(unlearned, retrained, "pooled")) == pytest.approx(0.0, abs=1e-12)


def test_chance_enumerates_every_within_pair_swap():
    method, oracle = synthetic(pairs=4, n=60, shift=0.0, seed=3)
    null = chance(method, oracle)
    assert null.metrics.shape == (16, 3)
    observed = leave_one_out_attack(method, oracle)
    np.testing.assert_allclose(null.metrics[0], [observed.accuracy, observed.auc, observed.pair_accuracy])
    assert 0.0 < null.p_value(observed) <= 1.0
    lo, hi = null.interval(1)
    assert lo <= 50.0 <= hi
    # swapping every pair maps the scores to minus the other role's: the AUC is unchanged
    assert null.metrics[-1, 1] == pytest.approx(observed.auc)
    # a clear difference: only the identity and the full swap reach the observed AUC
    method, oracle = synthetic(pairs=5, n=100, shift=2.0, seed=4)
    null = chance(method, oracle)
    assert null.p_value(leave_one_out_attack(method, oracle)) == pytest.approx(2 / 32)
    assert chance(method, oracle, max_swaps=10).metrics.shape == (10, 3)


def test_attack_table_attacks_every_role_against_the_oracle():
    method, oracle = synthetic(pairs=4, n=50, shift=2.0, seed=1)
    table = attack_table({"retrain": oracle, "m": method, "same": oracle + 0.0})
    assert set(table) == {"m", "same"}
    assert table["m"].auc == 100.0
    assert table["same"].accuracy == 50.0  # the oracle against itself: every score is 0
    with pytest.raises(ValueError, match="P >= 3"):
        leave_one_out_attack(method[:2], oracle[:2])
