"""Retrain oracle as a method: re-initialise and train from scratch on the retained data only."""

from __future__ import annotations

import pytest
import torch

import lethe
from lethe.checkpoint import state_equal
from lethe.metrics import collect_outputs

FORGET = [1]


def test_defaults_are_the_published_recipe():
    s = lethe.method_settings("retrain")
    assert (s.epochs, s.lr, s.momentum, s.weight_decay, s.warmup_epochs) == (182, 0.1, 0.9, 5e-4, 0)
    assert lethe.get_method("retrain").needs_retain


def test_retrained_model_never_predicts_the_forgotten_class(toy):
    snapshot = toy.fresh_model()
    before = toy.accuracies(toy.model, FORGET)
    assert before["forget_train"] > 90 and before["forget_test"] > 90
    torch.manual_seed(0)
    model, record = toy.unlearn("retrain", FORGET, overrides={"epochs": 15})
    after = toy.accuracies(model, FORGET)
    # The forgotten class never appears as a label, so no sample is ever assigned to it.
    assert after["forget_train"] == 0 and after["forget_test"] == 0
    assert after["retain_train"] >= 95 and after["retain_test"] >= 95
    pred = collect_outputs(model, toy.loader(val=True)).logits.argmax(1)
    assert not (pred == FORGET[0]).any()
    assert state_equal(toy.model, snapshot)  # the original is untouched
    assert not model.training
    # Cosine decay over the whole run, stepped per batch: falls every epoch and ends at zero.
    lrs = [row["lr"] for row in record.log]
    assert len(lrs) == 15
    assert 0.09 < lrs[0] < 0.1
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert record.log[-1]["loss"] < record.log[0]["loss"]


def test_zero_epochs_leave_a_fresh_initialisation(toy):
    """Without training the result is the re-initialised network: every weight and BN buffer reset."""
    torch.manual_seed(5)
    first, record = toy.unlearn("retrain", FORGET, overrides={"epochs": 0})
    torch.manual_seed(5)
    second, _ = toy.unlearn("retrain", FORGET, overrides={"epochs": 0})
    assert record.log == []
    assert state_equal(first, second)  # the caller's seed fixes the initialisation
    original = toy.model.state_dict()
    for key, value in first.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert value.item() == 0
        else:
            assert not torch.equal(value, original[key]), key
    bn = first[1]
    assert torch.equal(bn.running_mean, torch.zeros(8)) and torch.equal(bn.running_var, torch.ones(8))


def test_missing_retain_data_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        toy.unlearn("retrain", FORGET, retain=False)
