"""Statistics of a LiRA-style attack that tells an unlearned model from the retrain oracle.

LiRA (Carlini et al., "Membership inference attacks from first principles", IEEE S&P 2022) models
the logit-scaled confidence ``phi = log(p / (1 - p))`` of each sample under two hypotheses as a
Gaussian fitted over shadow models and decides by the likelihood ratio. U-LiRA (Hayes et al.,
"Inexact unlearning needs more careful evaluations to avoid a false sense of privacy", SaTML 2025)
asks of unlearning: can an attacker tell a model unlearned by method M from one retrained without
the forget data? Here the two hypotheses are "unlearned by M" and "retrained", the per-sample
log-ratios are summed over the forget samples, and a score above 0 says "unlearned by M".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

#: Smallest standard deviation of a fitted Gaussian (logit units), so that identical shadows
#: do not give an infinite likelihood ratio.
MIN_STD = 1e-3


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


def likelihood_ratio(phi: np.ndarray, unlearned: Gaussians, retrained: Gaussians) -> float:
    """Summed per-sample log-likelihood ratio ``log p(phi | unlearned) - log p(phi | retrained)``
    of one model's ``phi`` ``[n]``; above 0: the model looks unlearned by the method."""
    return float(np.sum(unlearned.log_pdf(phi) - retrained.log_pdf(phi)))


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


def leave_one_out_attack(method_phi: np.ndarray, oracle_phi: np.ndarray, fixed_variance: bool = True) -> AttackResult:
    """The attack on each of P pairs in turn, fitted on the other P - 1 (the shadows): ``method_phi``
    and ``oracle_phi`` are ``[P, n]``, row j from pair j's unlearned model and its retrain oracle
    (pairs trained from different seeds and data halves, so a target never is its own shadow)."""
    method_phi, oracle_phi = np.asarray(method_phi, float), np.asarray(oracle_phi, float)
    if method_phi.shape != oracle_phi.shape or method_phi.shape[0] < 3:
        raise ValueError(f"need [P >= 3, n] values of the same shape, got {method_phi.shape} and {oracle_phi.shape}")
    pairs = method_phi.shape[0]
    s_method, s_oracle = np.empty(pairs), np.empty(pairs)
    for j in range(pairs):
        shadows = np.arange(pairs) != j
        unlearned = fit_gaussians(method_phi[shadows], fixed_variance)
        retrained = fit_gaussians(oracle_phi[shadows], fixed_variance)
        s_method[j] = likelihood_ratio(method_phi[j], unlearned, retrained)
        s_oracle[j] = likelihood_ratio(oracle_phi[j], unlearned, retrained)
    return AttackResult(s_method, s_oracle)


def attack_table(
    phi: Mapping[str, np.ndarray], oracle: str = "retrain", fixed_variance: bool = True
) -> dict[str, AttackResult]:
    """``leave_one_out_attack`` of every role of ``phi`` (role -> ``[P, n]``) against ``oracle``."""
    return {role: leave_one_out_attack(values, phi[oracle], fixed_variance)
            for role, values in phi.items() if role != oracle}  # fmt: skip
