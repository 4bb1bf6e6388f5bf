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

    lam: torch.Tensor  # [g, k], sums to 1 per group (or 0 for an all-zero Gram)
    vectors: torch.Tensor  # [g, d, k]: k = d from eigh, k = n <= d from a thin SVD


def _normalised(evals: torch.Tensor, vectors: torch.Tensor) -> Spectrum:
    evals = evals.clamp_min(0)
    total = evals.sum(dim=-1, keepdim=True)
    lam = torch.where(total > 0, evals / total.clamp_min(1e-300), torch.zeros_like(evals))
    return Spectrum(lam, vectors)


def _eigh(matrix: torch.Tensor, precision: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``eigh`` of symmetric ``matrix`` ``[g, d, d]`` in ``precision``, results in float64. Each
    matrix is scaled by its largest diagonal entry first (float32's range); where the float32
    solver does not converge (ill-conditioned, many repeated eigenvalues) it is redone in float64."""
    matrix = matrix.double()
    scale = matrix.diagonal(dim1=-2, dim2=-1).amax(dim=-1).clamp_min(torch.finfo(torch.float64).tiny)
    scaled = matrix / scale[..., None, None]
    try:
        evals, evecs = torch.linalg.eigh(scaled.to(precision))
    except torch.linalg.LinAlgError:
        if precision == torch.float64:
            raise
        evals, evecs = torch.linalg.eigh(scaled)
    return evals.double() * scale[..., None], evecs.double()


def spectrum(gram: torch.Tensor, precision: torch.dtype = torch.float64) -> Spectrum:
    """``eigh`` of ``gram`` ``[g, d, d]`` in ``precision`` (float32 is about 2x faster on CPU; float64
    where it fails to converge), the result in float64; eigenvalues are the squared singular values."""
    if precision == torch.float64:  # the exact path, bit for bit as before
        evals, evecs = torch.linalg.eigh(gram.double())
        return _normalised(evals, evecs)
    return _normalised(*_eigh(gram, precision))


def thin_spectrum(rows: torch.Tensor) -> Spectrum:
    """The spectrum of ``R R^T`` from ``R`` itself (``[g, d, n]``, float64) by a thin SVD: ``n``
    vectors instead of ``d``. The missing eigenvalues are zero and give zero importance, so every
    projector equals the one from ``spectrum(R R^T)``; the cost is ``O(d n^2)``, not ``O(d^3)``."""
    u, s, _ = torch.linalg.svd(rows.double(), full_matrices=False)
    return _normalised(s.square(), u)


def dual_spectrum(rows: torch.Tensor, precision: torch.dtype = torch.float32) -> Spectrum:
    """The spectrum of ``R R^T`` from the smaller Gram ``R^T R`` (``rows``: ``[g, d, n]``, n <= d):
    ``R^T R = V diag(s^2) V^T`` and ``U = R V / s`` in ``precision`` (float64 afterwards). Cheaper
    than ``thin_spectrum`` when ``n`` nears ``d`` (an ``n x n`` ``eigh``, not a thin SVD). Directions
    whose eigenvalue is under ``n * eps(precision)`` of the largest are dropped (zero importance and vector): their
    vectors are noise at that precision, and their importance at most ``alpha`` times that share."""
    r = rows.to(precision)
    evals, v = _eigh(r.transpose(-1, -2) @ r, precision)
    evals, v = evals.to(precision).clamp_min(0), v.to(precision)
    floor = evals.amax(dim=-1, keepdim=True) * rows.shape[-1] * torch.finfo(precision).eps
    kept = evals > floor
    evals = torch.where(kept, evals, torch.zeros_like(evals))
    scale = torch.where(kept, evals.clamp_min(torch.finfo(precision).tiny).rsqrt(), torch.zeros_like(evals))
    return _normalised(evals.double(), ((r @ v) * scale.unsqueeze(-2)).double())


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


class LayerUpdate:
    """The update ``W <- W_flat P^T`` of one layer for any ``(alpha_r, alpha_f)``, computed without
    forming ``P``.

    With symmetric ``M``: ``W P^T = W - W (I - M_r) M_f``. Each ``M`` is applied through its eigen
    basis (``X M = ((X U) * w) U^T``), so one update costs ``3 out d^2`` instead of the ``3 d^3``
    of forming ``M_f``, ``M_r`` and their product. ``W U_r`` does not depend on the alphas and is
    computed once, for SVD's grid search. When ``out >= 1.5 d`` (wide layers, where forming ``P``
    is cheaper) it falls back to ``project_weight(W, removal_projection(...))``.
    """

    def __init__(self, weight: torch.Tensor, forget: Spectrum, retain: Spectrum) -> None:
        groups, d = forget.vectors.shape[0], forget.vectors.shape[-2]
        self.shape, self.dtype = weight.shape, weight.dtype
        self.forget, self.retain = forget, retain
        # A copy (``.double()`` would alias a float64 weight, which the caller overwrites in place).
        self.weight = weight.detach().to(torch.float64, copy=True).reshape(groups, weight.shape[0] // groups, d)
        self.factored = self.weight.shape[1] < 1.5 * d
        self._w_ur = self.weight @ retain.vectors if self.factored else None

    def __call__(self, alpha_r: float, alpha_f: float) -> torch.Tensor:
        """The updated weight, in the layer's shape and dtype."""
        if not self.factored:
            p = removal_projection(scaled_projector(self.forget, alpha_f), scaled_projector(self.retain, alpha_r))
            return project_weight(self.weight.reshape(self.shape), p).to(self.dtype)
        u_r, u_f = self.retain.vectors, self.forget.vectors
        kept = self.weight - (self._w_ur * importance(self.retain.lam, alpha_r).unsqueeze(-2)) @ u_r.transpose(-1, -2)
        removed = ((kept @ u_f) * importance(self.forget.lam, alpha_f).unsqueeze(-2)) @ u_f.transpose(-1, -2)
        return (self.weight - removed).reshape(self.shape).to(self.dtype)
