"""l1-sparse: fine-tuning on retained data with a linearly decaying L1 penalty (Jia et al., 2023)."""

from __future__ import annotations

import pytest

import lethe
from lethe.checkpoint import state_equal
from lethe.methods.l1_sparse import L1SparseSettings, l1_norm, l1_weight

FORGET = [1]


def test_defaults_are_the_published_ones():
    s = lethe.method_settings("l1_sparse")
    assert (s.epochs, s.lr, s.momentum, s.weight_decay, s.alpha, s.no_l1_epochs) == (10, 0.01, 0.9, 5e-4, 5e-4, 0)
    assert lethe.get_method("l1_sparse").needs_retain


def test_penalty_weight_schedule():
    s = L1SparseSettings(epochs=4, alpha=1.0)
    assert [l1_weight(s, e) for e in range(4)] == [1.0, 0.75, 0.5, 0.25]
    s = L1SparseSettings(epochs=4, alpha=1.0, no_l1_epochs=2)
    assert [l1_weight(s, e) for e in range(4)] == [1.0, 0.5, 0.0, 0.0]
    s = L1SparseSettings(epochs=3, alpha=1.0, no_l1_epochs=3)  # the official code keeps alpha here
    assert [l1_weight(s, e) for e in range(3)] == [1.0, 1.0, 1.0]


def test_default_run_logs_the_decaying_penalty_and_keeps_retained(toy):
    snapshot = toy.fresh_model()
    model, record = toy.unlearn("l1_sparse", FORGET)
    after = toy.accuracies(model, FORGET)
    assert after["retain_train"] >= 95 and after["retain_test"] >= 95
    assert state_equal(toy.model, snapshot)
    assert not model.training
    assert len(record.log) == 10
    for e, row in enumerate(record.log):
        assert row["l1_weight"] == pytest.approx(5e-4 * (1 - e / 10))
        assert row["loss"] == pytest.approx(row["ce"] + row["l1_weight"] * row["l1_norm"], rel=1e-4)
    assert l1_norm(model).item() < l1_norm(toy.model).item()


def test_alpha_zero_is_plain_finetuning(toy):
    overrides = {"epochs": 3, "lr": 0.05}
    sparse, _ = toy.unlearn("l1_sparse", FORGET, overrides={**overrides, "alpha": 0.0})
    plain, _ = toy.unlearn("finetune", FORGET, overrides=overrides)
    assert state_equal(sparse, plain)


def test_penalty_sparsifies_and_forgets_more_than_finetuning(toy):
    """Same optimiser settings with and without the penalty. The toy net has ~350 weights, so its L1
    norm is tiny next to a ResNet-18's; alpha is raised to give the penalty comparable pull."""
    overrides = {"epochs": 10, "lr": 0.1}
    sparse, _ = toy.unlearn("l1_sparse", FORGET, overrides={**overrides, "alpha": 2e-3})
    plain, _ = toy.unlearn("finetune", FORGET, overrides=overrides)
    assert l1_norm(sparse).item() < 0.8 * l1_norm(plain).item()
    assert toy.forget_margin(sparse, FORGET[0]) < 0.75 * toy.forget_margin(plain, FORGET[0])
    after = toy.accuracies(sparse, FORGET)
    assert after["retain_train"] >= 95 and after["retain_test"] >= 95


@pytest.mark.parametrize("overrides", [{"alpha": -1e-4}, {"no_l1_epochs": 11}, {"no_l1_epochs": -1}])
def test_bad_settings_are_rejected(toy, overrides):
    with pytest.raises(lethe.ConfigError):
        toy.unlearn("l1_sparse", FORGET, overrides=overrides)


def test_missing_retain_data_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        toy.unlearn("l1_sparse", FORGET, retain=False)
