"""SVD's fast default (issue 20: sampled patches, float32 products and eigen decompositions)
against the exact path (``exact=True``, the previous default)."""

from __future__ import annotations

import pytest
import torch

import lethe
from lethe.activations import weight_of
from lethe.methods.svd import accumulate_grams
from lethe.projection import LayerUpdate, dual_spectrum, scaled_projector, thin_spectrum

FORGET = [1]
#: the settings of the exact path, spelled out (the defaults before issue 20)
OLD_DEFAULTS = {
    "max_patches": None,
    "positions_per_sample": None,
    "gram_precision": "float64",
    "eigh_precision": "float64",
}
FIXED = {"tune": False, "alpha_r": 30.0, "alpha_f": 10.0, "retain_per_class": 5, "num_forget": 20}


def run_svd(toy, overrides: dict, **kwargs):
    return toy.unlearn("svd", FORGET, shuffle=False, overrides=overrides, **kwargs)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.endswith("weight")}


def test_defaults_are_the_fast_path():
    s = lethe.method_settings("svd", {})
    assert (s.exact, s.max_patches, s.gram_precision, s.eigh_precision) == (False, 20_000, "float32", "float32")


def test_exact_is_the_old_defaults_bit_for_bit(toy):
    exact, _ = run_svd(toy, {**FIXED, "exact": True})
    spelled, _ = run_svd(toy, {**FIXED, **OLD_DEFAULTS})
    fast_ignored, _ = run_svd(toy, {**FIXED, "exact": True, "max_patches": 7, "gram_precision": "float32"})
    for key, value in exact.state_dict().items():
        assert torch.equal(value, spelled.state_dict()[key]), key
        assert torch.equal(value, fast_ignored.state_dict()[key]), key


def test_exact_equals_the_float64_pipeline_by_hand(toy):
    """``exact=True``: every patch in float64, float64 spectra (thin SVD of kept rows), LayerUpdate."""
    exact, _ = run_svd(toy, {**FIXED, "exact": True})
    model = toy.fresh_model().eval()
    loaders = {"retain": toy.loader(classes=[0, 2, 3]), "forget": toy.loader(classes=FORGET)}
    retain = accumulate_grams(model, loaders["retain"], toy.engine(), per_class=5, num_classes=3)
    forget = accumulate_grams(model, loaders["forget"], toy.engine(), max_samples=20)
    for name in forget.ran():
        update = LayerUpdate(
            weight_of(forget.stats[name]), forget.stats[name].spectrum(), retain.stats[name].spectrum()
        )
        assert torch.equal(update(30.0, 10.0), exact.state_dict()[f"{name}.weight"]), name


def test_fast_default_weights_are_close_to_exact(toy):
    """The toy has fewer patches than max_patches, so the default differs only by float32."""
    exact, record = run_svd(toy, {**FIXED, "exact": True})
    fast, _ = run_svd(toy, FIXED)
    original = weights(toy.model)
    for key in (f"{name}.weight" for name in record.extra["layers"]):
        value = weights(exact)[key]
        assert not torch.equal(value, original[key]), key
        assert (weights(fast)[key] - value).norm() <= 1e-4 * (value - original[key]).norm(), key


def test_fast_default_chooses_the_exact_alphas_on_the_grid(toy):
    grid = {"grid_r": (10.0, 100.0, 1000.0), "grid_f": (1.0, 10.0, 100.0)}
    _, exact = run_svd(toy, {**grid, "exact": True}, validation=True)
    _, fast = run_svd(toy, grid, validation=True)
    assert (fast.extra["alpha_r"], fast.extra["alpha_f"]) == (exact.extra["alpha_r"], exact.extra["alpha_f"])
    for a, b in zip(fast.extra["grid"], exact.extra["grid"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1.0)


@pytest.mark.parametrize("rank", [40, 7], ids=["full-rank", "rank-deficient"])
def test_dual_spectrum_gives_the_thin_svd_projectors(rank):
    g = torch.Generator().manual_seed(0)
    rows = (
        torch.randn(2, 64, rank, generator=g, dtype=torch.float64)
        @ torch.randn(2, rank, 40, generator=g, dtype=torch.float64)
    ) * torch.logspace(0, -3, 40, dtype=torch.float64)
    dual, thin = dual_spectrum(rows), thin_spectrum(rows)
    assert torch.isfinite(dual.vectors).all() and dual.vectors.dtype == torch.float64
    for alpha in (1.0, 30.0, 1000.0):
        got, want = scaled_projector(dual, alpha), scaled_projector(thin, alpha)
        assert (got - want).norm() <= 1e-3 * want.norm()


def test_float32_eigh_that_fails_is_redone_in_float64(monkeypatch):
    """A float32 ``eigh`` that does not converge (seen on a torchrun CamVid toy) falls back to float64."""
    from lethe import projection

    real = torch.linalg.eigh

    def fails_in_float32(matrix):
        if matrix.dtype == torch.float32:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return real(matrix)

    gram = torch.randn(2, 6, 9, dtype=torch.float64)
    gram = gram @ gram.transpose(-1, -2)
    expected = projection.spectrum(gram)
    monkeypatch.setattr(torch.linalg, "eigh", fails_in_float32)
    got = projection.spectrum(gram, torch.float32)
    assert torch.allclose(got.lam, expected.lam, atol=1e-12)
    assert torch.allclose(got.vectors.abs(), expected.vectors.abs(), atol=1e-9)
