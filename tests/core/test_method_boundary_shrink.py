"""Boundary Shrink end to end on the toy problem, and its FGSM neighbour search."""

from __future__ import annotations

import pytest
import torch

import lethe
from lethe.checkpoint import state_equal
from lethe.methods.boundary_shrink import BoundaryShrinkSettings, PixelSpace, fgsm_perturb, nearest_labels
from lethe.metrics import collect_outputs


def test_published_defaults():
    s = lethe.method_settings("boundary_shrink")
    assert (s.epochs, s.lr, s.momentum, s.weight_decay, s.bound) == (10, 1e-5, 0.9, 0.0, 0.1)
    assert s.pixel_mean == () and s.pixel_std == ()
    assert s.wrong_label_only is True
    assert lethe.get_method("boundary_shrink").needs_retain is False


def test_default_run_needs_no_retain_data(toy):
    snapshot = toy.fresh_model()
    model, record = toy.unlearn("boundary_shrink", [1], retain=False)  # no retained data
    assert record.settings["lr"] == 1e-5
    assert [row["epoch"] for row in record.log] == list(range(1, 11))
    assert {"loss", "flip_rate", "forget_acc"} <= record.log[0].keys()
    assert state_equal(toy.model, snapshot)  # the original (and so the frozen copy) is untouched
    assert not state_equal(model, toy.model)
    assert not model.training


def test_forgets_one_class_and_keeps_the_rest(toy):
    before = toy.accuracies(toy.model, [1])
    model, record = toy.unlearn("boundary_shrink", [1], retain=False, overrides={"lr": 0.01, "epochs": 5})
    after = toy.accuracies(model, [1])
    assert before["forget_train"] > 90 and before["forget_test"] > 90
    toy.assert_forgets(before, after, forget_at_most=5, retain_drop=10)
    # No forget sample is predicted as its own class any more.
    pred = collect_outputs(model, toy.loader([1])).logits.argmax(1)
    assert not (pred == 1).any()


def test_failed_attacks_would_teach_the_true_label(toy):
    """bound 0.1 in input units rarely flips the toy's confident predictions (flip_rate ~ 0): the
    released code's argmax then is the true label and nothing is forgotten; the paper's nearest
    INCORRECT class (wrong_label_only, our default) forgets."""
    common = {"lr": 0.01, "epochs": 5}
    code, record = toy.unlearn("boundary_shrink", [1], retain=False, overrides={**common, "wrong_label_only": False})
    assert record.log[0]["flip_rate"] < 0.1
    assert toy.accuracies(code, [1])["forget_train"] > 90
    paper, _ = toy.unlearn("boundary_shrink", [1], retain=False, overrides={**common, "wrong_label_only": True})
    assert toy.accuracies(paper, [1])["forget_train"] <= 5


def test_fgsm_step_is_bounded_and_works_without_grad_mode(toy):
    model = toy.fresh_model().eval()
    x, y = toy.x[toy.y == 1][:32], toy.y[toy.y == 1][:32]
    with torch.no_grad():  # as a caller might; the attack still needs input gradients
        x_adv = fgsm_perturb(model, x, y, 0.1)
    assert torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.1))
    assert not any(p.grad is not None for p in model.parameters())
    # A large enough step crosses the boundary: the attack ascends the true-class loss.
    far = fgsm_perturb(model, x, y, 3.0)
    labels, flipped = nearest_labels(model, far, y, wrong_only=False)
    assert flipped.float().mean() > 0.5
    assert torch.equal(labels != y, flipped)
    labels, _ = nearest_labels(model, x_adv, y, wrong_only=True)
    assert not (labels == y).any()


def test_pixel_space_bound_clamps_and_rounds():
    mean, std = (0.5, 0.4), (0.25, 0.2)
    pixels = PixelSpace.from_settings(BoundaryShrinkSettings(pixel_mean=mean, pixel_std=std))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    raw = torch.rand(4, 2, 5, 5)
    raw[0] = 1.0  # saturated pixels cannot go above 1
    m, s = torch.tensor(mean).view(1, 2, 1, 1), torch.tensor(std).view(1, 2, 1, 1)
    x = (raw - m) / s
    y = torch.tensor([0, 1, 2, 0])
    x_adv = fgsm_perturb(model, x, y, 0.1, pixels)
    adv_raw = x_adv * s + m
    assert adv_raw.min() >= -1e-6 and adv_raw.max() <= 1 + 1e-6
    assert torch.allclose(adv_raw * 255, torch.round(adv_raw * 255), atol=1e-3)  # on the 1/255 grid
    assert (adv_raw - raw).abs().max() <= 0.1 + 1 / 255 + 1e-6  # the bound is in pixel units


def test_bad_settings_raise(toy):
    with pytest.raises(lethe.ConfigError, match="pixel_mean"):
        toy.unlearn("boundary_shrink", [1], retain=False, overrides={"pixel_mean": "0.5,0.5", "pixel_std": "0.2"})
    with pytest.raises(lethe.ConfigError, match="bound"):
        toy.unlearn("boundary_shrink", [1], retain=False, overrides={"bound": 0.0})
    with pytest.raises(lethe.ConfigError, match="learning rate"):
        toy.unlearn("boundary_shrink", [1], retain=False, overrides={"lr": 0.0})
