"""Statistics of a LiRA-style attack that tells an unlearned model from the retrain oracle.

LiRA (Carlini et al., "Membership inference attacks from first principles", IEEE S&P 2022) models
the logit-scaled confidence ``phi = log(p / (1 - p))`` of each sample under two hypotheses as a
Gaussian fitted over shadow models and decides by the likelihood ratio. U-LiRA (Hayes et al.,
"Inexact unlearning needs more careful evaluations to avoid a false sense of privacy", SaTML 2025)
asks of unlearning: can an attacker tell a model unlearned by method M from one retrained without
the forget data? Here the two hypotheses are "unlearned by M" and "retrained", the per-sample
log-ratios are averaged over the forget samples, and a score above 0 says "unlearned by M".

Variance. With few shadows (K = P - 1) and many samples (n), the ratio must not rest on how the two
hypotheses' fitted variances differ: with one variance per hypothesis (``"fixed"``) the score of
every model carries ``n * (log(s_r / s_u) + q / 2 * (1 / s_r**2 - 1 / s_u**2))`` (q: the model's
mean squared distance from the fitted means), so a small chance mismatch of s_u and s_r, summed
over n samples, outweighs the mean differences and pushes all targets the same way. ``"pooled"``
(the default) fits one variance per sample from both hypotheses' shadows together (2K - 2 degrees
of freedom, floored at ``VAR_FLOOR`` times the median): the log-ratio is then linear in ``phi``
(a diagonal linear discriminant between the two fitted means). ``chance`` gives the spread the
leave-one-out metrics take when the two roles are exchangeable: every swap of the two models
within a subset of pairs (all 2**P of them up to ``max_swaps``), the exact permutation null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

#: Smallest standard deviation of a fitted Gaussian (logit units), so that identical shadows
#: do not give an infinite likelihood ratio.
MIN_STD = 1e-3
#: ``"pooled"`` variances are floored at this share of their median over the samples, so that a
#: sample the shadows happen to agree on does not dominate the sum.
VAR_FLOOR = 0.1
#: Ways of fitting the variance (module docstring).
VARIANCES = ("pooled", "fixed", "per_sample")


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """``phi = log(p_y / (1 - p_y))`` of each sample, computed stably as the true-class logit minus
    the log-sum-exp of the other logits (Carlini et al. 2022, s.4.2)."""
    logits = logits.double()
    true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf"))
    return (true - torch.logsumexp(others, dim=1)).numpy()


@dataclass
class Gaussians:
    """Per-sample means ``[n]`` and standard deviations ``[n]`` of ``phi`` under one hypothesis."""

    mean: np.ndarray
    std: np.ndarray

    def log_pdf(self, phi: np.ndarray) -> np.ndarray:
        z = (phi - self.mean) / self.std
        return -0.5 * z**2 - np.log(self.std) - 0.5 * np.log(2 * np.pi)


def fit_gaussians(shadow_phi: np.ndarray, fixed_variance: bool = True) -> Gaussians:
    """Fit ``phi`` of ``[K, n]`` shadow models: a mean per sample and, with ``fixed_variance``, one
    standard deviation shared by all samples (LiRA's choice for few shadow models), otherwise one
    per sample. Needs K >= 2."""
    shadow_phi = np.asarray(shadow_phi, dtype=np.float64)
    if shadow_phi.ndim != 2 or shadow_phi.shape[0] < 2:
        raise ValueError(f"fit_gaussians needs [K >= 2, n] shadow values, got shape {shadow_phi.shape}")
    mean = shadow_phi.mean(0)
    var = shadow_phi.var(0, ddof=1)
    std = np.full_like(mean, np.sqrt(var.mean())) if fixed_variance else np.sqrt(var)
    return Gaussians(mean, np.maximum(std, MIN_STD))


def fit_pair(
    unlearned_phi: np.ndarray, retrained_phi: np.ndarray, variance: str = "pooled"
) -> tuple[Gaussians, Gaussians]:
    """The two hypotheses' Gaussians from ``[K, n]`` shadows each; ``variance`` one of ``VARIANCES``."""
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    if variance != "pooled":
        fixed = variance == "fixed"
        return fit_gaussians(unlearned_phi, fixed), fit_gaussians(retrained_phi, fixed)
    u, r = fit_gaussians(unlearned_phi, False), fit_gaussians(retrained_phi, False)
    k_u, k_r = len(unlearned_phi), len(retrained_phi)
    sq = np.var(unlearned_phi, 0, ddof=1) * (k_u - 1) + np.var(retrained_phi, 0, ddof=1) * (k_r - 1)
    var = sq / (k_u + k_r - 2)
    var = np.maximum(var, VAR_FLOOR * float(np.median(var)))
    std = np.maximum(np.sqrt(var), MIN_STD)
    return Gaussians(u.mean, std), Gaussians(r.mean, std)


def likelihood_ratio(phi: np.ndarray, unlearned: Gaussians, retrained: Gaussians) -> float:
    """Mean per-sample log-likelihood ratio ``log p(phi | unlearned) - log p(phi | retrained)``
    of one model's ``phi`` ``[n]`` (the sum over n, divided by n: the same sign, a readable
    scale); above 0: the model looks unlearned by the method."""
    return float(np.mean(unlearned.log_pdf(phi) - retrained.log_pdf(phi)))


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: probability that a positive scores above a negative (ties 1/2)."""
    pos, neg = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


@dataclass
class AttackResult:
    """Leave-one-out scores of method outputs (``scores_method``) and of oracles (``scores_oracle``)."""

    scores_method: np.ndarray
    scores_oracle: np.ndarray

    @property
    def accuracy(self) -> float:
        """Percent of models labelled right by the sign of their score (50 %: indistinguishable)."""
        right = np.concatenate([self.scores_method > 0, self.scores_oracle <= 0])
        return 100.0 * float(right.mean())

    @property
    def auc(self) -> float:
        """ROC AUC in percent of the scores, method outputs positive (50 %: indistinguishable)."""
        return 100.0 * auc(self.scores_method, self.scores_oracle)

    @property
    def pair_accuracy(self) -> float:
        """Percent of pairs where the method's output scores above its own pair's oracle."""
        return 100.0 * float(np.mean(self.scores_method > self.scores_oracle))


def leave_one_out_attack(method_phi: np.ndarray, oracle_phi: np.ndarray, variance: str = "pooled") -> AttackResult:
    """The attack on each of P pairs in turn, fitted on the other P - 1 (the shadows): ``method_phi``
    and ``oracle_phi`` are ``[P, n]``, row j from pair j's unlearned model and its retrain oracle
    (pairs trained from different seeds and data halves, so a target never is its own shadow).
    The target models are drawn as their hypothesis' shadows are (U-LiRA), so the two roles must be
    trained alike: for the oracle-vs-oracle reference, from independent seeds of their own."""
    method_phi, oracle_phi = np.asarray(method_phi, float), np.asarray(oracle_phi, float)
    if method_phi.shape != oracle_phi.shape or method_phi.shape[0] < 3:
        raise ValueError(f"need [P >= 3, n] values of the same shape, got {method_phi.shape} and {oracle_phi.shape}")
    pairs = method_phi.shape[0]
    s_method, s_oracle = np.empty(pairs), np.empty(pairs)
    for j in range(pairs):
        shadows = np.arange(pairs) != j
        unlearned, retrained = fit_pair(method_phi[shadows], oracle_phi[shadows], variance)
        s_method[j] = likelihood_ratio(method_phi[j], unlearned, retrained)
        s_oracle[j] = likelihood_ratio(oracle_phi[j], unlearned, retrained)
    return AttackResult(s_method, s_oracle)


def attack_table(
    phi: Mapping[str, np.ndarray], oracle: str = "retrain", variance: str = "pooled"
) -> dict[str, AttackResult]:
    """``leave_one_out_attack`` of every role of ``phi`` (role -> ``[P, n]``) against ``oracle``."""
    return {role: leave_one_out_attack(values, phi[oracle], variance) for role, values in phi.items() if role != oracle}


@dataclass
class Chance:
    """The metrics of ``leave_one_out_attack`` over within-pair role swaps (the exchangeable null):
    ``[S, 3]`` accuracy, AUC, pair accuracy (percent), S swaps, the first one the identity."""

    metrics: np.ndarray

    def interval(self, column: int, level: float = 95.0) -> tuple[float, float]:
        """Central ``level`` percent range of one metric under the null."""
        lo, hi = np.percentile(self.metrics[:, column], [(100 - level) / 2, (100 + level) / 2])
        return float(lo), float(hi)

    def p_value(self, observed: AttackResult) -> float:
        """One-sided permutation p-value of the observed AUC (share of swaps scoring at least as high)."""
        return float(np.mean(self.metrics[:, 1] >= observed.auc - 1e-9))


def chance(
    method_phi: np.ndarray, oracle_phi: np.ndarray, variance: str = "pooled", max_swaps: int = 4096, seed: int = 0
) -> Chance:
    """``leave_one_out_attack`` under every swap of the two roles within a subset of pairs: all
    2**P subsets while that is at most ``max_swaps``, else ``max_swaps`` random ones (the identity
    first). Where the roles are exchangeable (the oracle-vs-oracle reference) this is the exact
    distribution of the metrics under the null; for a method it asks whether its outputs could be
    oracles."""
    method_phi, oracle_phi = np.asarray(method_phi, float), np.asarray(oracle_phi, float)
    pairs = method_phi.shape[0]
    if 2**pairs <= max_swaps:
        masks = (np.arange(2**pairs)[:, None] >> np.arange(pairs)) & 1
    else:
        rng = np.random.default_rng(seed)
        masks = np.vstack([np.zeros(pairs, int), rng.integers(0, 2, (max_swaps - 1, pairs))])
    metrics = []
    for mask in masks.astype(bool):
        m = np.where(mask[:, None], oracle_phi, method_phi)
        o = np.where(mask[:, None], method_phi, oracle_phi)
        r = leave_one_out_attack(m, o, variance)
        metrics.append((r.accuracy, r.auc, r.pair_accuracy))
    return Chance(np.array(metrics))
