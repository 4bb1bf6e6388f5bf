"""Scaled projectors and the weight update of SVD unlearning (methods.md s.2, steps 3-5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lethe.projection import (
    LayerUpdate,
    importance,
    project_weight,
    removal_projection,
    scaled_projector,
    spectrum,
    thin_spectrum,
)


def dense_svd_projector(r: torch.Tensor, alpha: float) -> torch.Tensor:
    """The paper's recipe on an explicit activation matrix R (d x n), via a dense SVD."""
    u, s, _ = torch.linalg.svd(r.double(), full_matrices=False)
    lam = s**2 / (s**2).sum()
    w = alpha * lam / ((alpha - 1) * lam + 1)
    return u @ torch.diag(w) @ u.T


@pytest.mark.parametrize("d,n", [(6, 40), (10, 10), (12, 4)], ids=["n>d", "n=d", "n<d"])
@pytest.mark.parametrize("alpha", [1.0, 3.0, 100.0, 1000.0])
def test_scaled_projector_matches_dense_svd(d, n, alpha):
    # Unequal column scales give a spread spectrum, as real activations have.
    r = torch.randn(d, n, dtype=torch.float64) * torch.logspace(0, -2, d, dtype=torch.float64)[:, None]
    expected = dense_svd_projector(r, alpha)
    got = scaled_projector(spectrum((r @ r.T)[None]), alpha)
    assert got.shape == (1, d, d)
    torch.testing.assert_close(got[0], expected, rtol=1e-7, atol=1e-9)


def test_scaled_projector_per_group():
    rs = [torch.randn(5, 9, dtype=torch.float64) for _ in range(3)]
    grams = torch.stack([r @ r.T for r in rs])
    got = scaled_projector(spectrum(grams), 30.0)
    for g, r in enumerate(rs):
        torch.testing.assert_close(got[g], dense_svd_projector(r, 30.0))


def test_spectrum_normalised_and_accepts_float32():
    r = torch.randn(7, 3)
    spec = spectrum((r @ r.T)[None])
    assert spec.lam.dtype == torch.float64
    torch.testing.assert_close(spec.lam.sum(dim=-1), torch.ones(1, dtype=torch.float64))
    assert (spec.lam >= 0).all()
    # Rank 3: only three eigenvalues are non-negligible.
    assert (spec.lam > 1e-5).sum().item() == 3


def test_zero_gram_gives_zero_projector():
    spec = spectrum(torch.zeros(2, 4, 4, dtype=torch.float64))
    assert torch.equal(spec.lam, torch.zeros(2, 4, dtype=torch.float64))
    assert torch.equal(scaled_projector(spec, 100.0), torch.zeros(2, 4, 4, dtype=torch.float64))


def test_importance_formula_and_limits():
    lam = torch.tensor([0.0, 0.01, 0.5, 1.0], dtype=torch.float64)
    expected = torch.tensor([0.0, 3 * 0.01 / (2 * 0.01 + 1), 1.5 / 2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(importance(lam, 3.0), expected)
    torch.testing.assert_close(importance(lam, 1.0), lam)  # alpha = 1: w = lambda
    assert (importance(lam, 1e9)[1:] > 0.999).all()  # large alpha: every used direction -> 1


def test_removal_projection_formula():
    a = torch.randn(2, 5, 5, dtype=torch.float64)
    b = torch.randn(2, 5, 5, dtype=torch.float64)
    m_f, m_r = a @ a.transpose(1, 2), b @ b.transpose(1, 2)
    p = removal_projection(m_f, m_r)
    for g in range(2):
        expected = torch.eye(5, dtype=torch.float64) - (m_f[g] - m_f[g] @ m_r[g])
        torch.testing.assert_close(p[g], expected)


def test_removal_projection_removes_forget_only_direction():
    """Forget space span(e0, e1), retain space span(e1, e2): only e0 is removed."""
    e = torch.eye(4, dtype=torch.float64)
    m_f = (e[:, [0, 1]] @ e[:, [0, 1]].T)[None]
    m_r = (e[:, [1, 2]] @ e[:, [1, 2]].T)[None]
    p = removal_projection(m_f, m_r)[0]
    torch.testing.assert_close(p @ e[:, 0], torch.zeros(4, dtype=torch.float64))
    for k in (1, 2, 3):
        torch.testing.assert_close(p @ e[:, k], e[:, k])


def test_project_weight_linear():
    layer = nn.Linear(6, 4)
    p = torch.randn(1, 6, 6, dtype=torch.float64)
    got = project_weight(layer.weight, p)
    expected = layer.weight.detach().double() @ p[0].T
    assert got.dtype == layer.weight.dtype and got.shape == layer.weight.shape
    torch.testing.assert_close(got, expected.float())
    # (W P^T) x = W (P^T x): the layer now sees its input mapped by P^T.
    x = torch.randn(3, 6)
    torch.testing.assert_close(x @ got.T, ((x.double() @ p[0]) @ layer.weight.double().T).float())


@pytest.mark.parametrize("groups", [1, 3, 6], ids=["dense", "grouped", "depthwise"])
def test_project_weight_grouped_conv(groups):
    conv = nn.Conv2d(6, 12, 3, groups=groups, bias=False)
    d = (6 // groups) * 9
    p = torch.randn(groups, d, d, dtype=torch.float64)
    got = project_weight(conv.weight, p)
    assert got.shape == conv.weight.shape
    w = conv.weight.detach().double()
    per_group = 12 // groups
    for j in range(groups):
        block = w[j * per_group : (j + 1) * per_group].reshape(per_group, d)
        expected = (block @ p[j].T).reshape(per_group, 6 // groups, 3, 3)
        torch.testing.assert_close(got[j * per_group : (j + 1) * per_group], expected.float())


def test_project_weight_identity_is_noop():
    conv = nn.Conv2d(4, 8, 3, groups=2)
    eye = torch.eye(18, dtype=torch.float64).expand(2, 18, 18)
    torch.testing.assert_close(project_weight(conv.weight, eye), conv.weight.detach())


@pytest.mark.parametrize(
    ("layer", "groups"),
    [(nn.Linear(24, 5), 1), (nn.Linear(4, 40), 1), (nn.Conv2d(6, 4, 3), 1), (nn.Conv2d(6, 6, 3, groups=3), 3)],
)
def test_layer_update_equals_forming_the_projection(layer, groups):
    """The factored update (narrow layers) and its fallback (wide ones) give ``W_flat P^T``."""
    torch.manual_seed(0)
    d = layer.weight[0].numel()  # per group: in_features, or C_in / groups * k * k
    r_f, r_r = torch.randn(groups, d, 3 * d, dtype=torch.float64), torch.randn(groups, d, 5 * d, dtype=torch.float64)
    r_f[..., 0, :] *= 10  # a dominant forget direction
    f, r = spectrum(r_f @ r_f.transpose(1, 2)), spectrum(r_r @ r_r.transpose(1, 2))
    update = LayerUpdate(layer.weight, f, r)
    assert update.factored == (layer.weight.shape[0] // groups < 1.5 * d)
    for alpha_r, alpha_f in ((100.0, 3.0), (10.0, 30.0)):
        p = removal_projection(scaled_projector(f, alpha_f), scaled_projector(r, alpha_r))
        want = project_weight(layer.weight, p)
        got = update(alpha_r, alpha_f)
        assert got.shape == layer.weight.shape and got.dtype == layer.weight.dtype
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_layer_update_keeps_the_original_weight_when_the_layer_is_overwritten():
    """SVD's grid search copies each candidate into the layer; a float64 layer must not feed the
    next candidate its own output."""
    torch.manual_seed(0)
    layer = nn.Linear(6, 3).double()
    grams = [(lambda r: r @ r.T)(torch.randn(6, 20, dtype=torch.float64))[None] for _ in range(2)]
    update = LayerUpdate(layer.weight, spectrum(grams[0]), spectrum(grams[1]))
    first = update(100.0, 3.0)
    with torch.no_grad():
        layer.weight.copy_(first)
    torch.testing.assert_close(update(100.0, 3.0), first)


@pytest.mark.parametrize("groups", [1, 2])
def test_thin_spectrum_gives_the_projectors_and_update_of_the_full_one(groups):
    """n < d: the thin SVD of R has n vectors, eigh of R R^T has d; every projector and the layer
    update agree (the missing eigenvalues are zero)."""
    g = torch.Generator().manual_seed(3)
    d, n = 12, 5
    r_f = torch.randn(groups, d, n, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, n, dtype=torch.float64)
    r_r = torch.randn(groups, d, n + 2, generator=g, dtype=torch.float64)
    thin_f, full_f = thin_spectrum(r_f), spectrum(r_f @ r_f.transpose(1, 2))
    assert thin_f.vectors.shape == (groups, d, n) and full_f.vectors.shape == (groups, d, d)
    for alpha in (1.0, 30.0, 1000.0):
        torch.testing.assert_close(scaled_projector(thin_f, alpha), scaled_projector(full_f, alpha))
    layer = nn.Conv2d(2 * groups, 4, kernel_size=(2, 3), groups=groups, bias=False)  # d = 2*2*3 = 12 per group
    thin = LayerUpdate(layer.weight, thin_f, thin_spectrum(r_r))
    full = LayerUpdate(layer.weight, full_f, spectrum(r_r @ r_r.transpose(1, 2)))
    torch.testing.assert_close(thin(100.0, 3.0), full(100.0, 3.0))
