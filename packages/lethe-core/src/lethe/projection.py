"""Scaled projectors and the weight update of SVD unlearning (Kodge et al., TMLR 2024, s.3).

From a Gram matrix ``G = R R^T = U diag(s^2) U^T``: ``lambda_i = s_i^2 / sum_j s_j^2``,
importance ``w_i = alpha lambda_i / ((alpha - 1) lambda_i + 1)``, ``M = U diag(w) U^T``.
The update removes the forget-only space: ``P = I - (M_f - M_f M_r)``, ``W <- W_flat P^T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Spectrum:
    """Eigen decomposition of a (batched) Gram matrix: normalised eigenvalues and vectors."""

    lam: torch.Tensor  # [g, d], sums to 1 per group (or 0 for an all-zero Gram)
    vectors: torch.Tensor  # [g, d, d]


def spectrum(gram: torch.Tensor) -> Spectrum:
    """``eigh`` of ``gram`` ``[g, d, d]`` (float64); eigenvalues are the squared singular values."""
    evals, evecs = torch.linalg.eigh(gram.double())
    evals = evals.clamp_min(0)
    total = evals.sum(dim=-1, keepdim=True)
    lam = torch.where(total > 0, evals / total.clamp_min(1e-300), torch.zeros_like(evals))
    return Spectrum(lam, evecs)


def importance(lam: torch.Tensor, alpha: float) -> torch.Tensor:
    """``w = alpha * lambda / ((alpha - 1) * lambda + 1)``."""
    return alpha * lam / ((alpha - 1.0) * lam + 1.0)


def scaled_projector(spec: Spectrum, alpha: float) -> torch.Tensor:
    """``M = U diag(w) U^T`` ``[g, d, d]``."""
    w = importance(spec.lam, alpha)
    return (spec.vectors * w.unsqueeze(-2)) @ spec.vectors.transpose(-1, -2)


def removal_projection(m_forget: torch.Tensor, m_retain: torch.Tensor) -> torch.Tensor:
    """``P = I - (M_f - M_f M_r)``."""
    eye = torch.eye(m_forget.shape[-1], dtype=m_forget.dtype, device=m_forget.device)
    return eye - (m_forget - m_forget @ m_retain)


def project_weight(weight: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``W <- W_flat P^T`` per group; ``weight`` is ``[out, ...]`` with ``d = prod(...)`` per group.

    For a grouped convolution the output channels of group ``j`` use ``projection[j]``.
    """
    groups, d, _ = projection.shape
    out = weight.shape[0]
    w = weight.detach().double().reshape(groups, out // groups, d)
    updated = w @ projection.transpose(-1, -2).to(w)
    return updated.reshape(weight.shape).to(weight.dtype)
