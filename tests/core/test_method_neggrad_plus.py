"""NegGrad+: alpha * CE(retain) - (1 - alpha) * CE(forget), over the retained data with forget cycled."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lethe
from lethe.checkpoint import state_equal

FORGET = [1]


def test_defaults_are_the_scrub_repository_ones():
    s = lethe.method_settings("neggrad_plus")
    assert (s.alpha, s.epochs, s.lr, s.momentum, s.weight_decay) == (0.95, 10, 0.01, 0.0, 0.0)
    assert lethe.get_method("neggrad_plus").needs_retain


def test_forgets_and_keeps_retained_accuracy(toy):
    snapshot = toy.fresh_model()
    before = toy.accuracies(toy.model, FORGET)
    assert before["forget_train"] > 90
    # The default alpha and epochs; momentum and a larger step make the toy move within 10 epochs.
    model, record = toy.unlearn("neggrad_plus", FORGET, overrides={"lr": 0.02, "momentum": 0.9})
    after = toy.accuracies(model, FORGET)
    assert after["forget_train"] <= 5 and after["forget_test"] <= 5
    assert after["retain_train"] >= 90 and after["retain_test"] >= 90
    assert state_equal(toy.model, snapshot)
    assert not model.training
    assert len(record.log) == 10
    for row in record.log:
        assert row["loss"] == pytest.approx(0.95 * row["retain_ce"] - 0.05 * row["forget_ce"], rel=1e-4, abs=1e-6)
    assert record.log[-1]["forget_ce"] > 10 * record.log[0]["forget_ce"]


def test_an_epoch_is_a_pass_over_retained_data_with_forget_cycled(toy):
    """A forget set of one batch is reused for each of the ten retained batches of an epoch."""
    tiny = DataLoader(TensorDataset(toy.x[toy.y == 1][:5], toy.y[toy.y == 1][:5]), batch_size=8)
    model, record = toy.unlearn("neggrad_plus", FORGET, forget_data=tiny, overrides={"epochs": 2})
    assert [row["epoch"] for row in record.log] == [1, 2]
    assert not state_equal(model, toy.model)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_alpha_one_ignores_the_forget_loss(toy):
    _, record = toy.unlearn("neggrad_plus", FORGET, overrides={"alpha": 1.0, "epochs": 1})
    assert record.log[0]["loss"] == pytest.approx(record.log[0]["retain_ce"])


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_unit_interval_is_rejected(toy, alpha):
    with pytest.raises(lethe.ConfigError, match="alpha"):
        toy.unlearn("neggrad_plus", FORGET, overrides={"alpha": alpha})


def test_missing_retain_data_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        toy.unlearn("neggrad_plus", FORGET, retain=False)
