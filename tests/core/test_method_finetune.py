"""FT: fine-tuning on retained data only (forgetting comes from catastrophic forgetting, if at all)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import lethe
from lethe.checkpoint import state_equal

FORGET = [1]


class Unreadable(Dataset):
    """A forget set that fails if a method reads any sample of it."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i):
        raise AssertionError("finetune must not read the forget data")


def test_defaults_are_the_published_ones():
    s = lethe.method_settings("finetune")
    assert (s.epochs, s.lr, s.momentum, s.weight_decay) == (10, 0.01, 0.9, 5e-4)
    assert lethe.get_method("finetune").needs_retain


def test_default_run_trains_on_retained_data_only(toy):
    snapshot = toy.fresh_model()
    before = toy.accuracies(toy.model, FORGET)
    model, record = toy.unlearn("finetune", FORGET, forget_data=DataLoader(Unreadable(), batch_size=4))
    after = toy.accuracies(model, FORGET)
    assert after["retain_train"] >= before["retain_train"] - 2
    assert after["retain_test"] >= before["retain_test"] - 2
    assert not state_equal(model, toy.model)  # it did train
    assert state_equal(toy.model, snapshot)
    assert not model.training
    assert [row["epoch"] for row in record.log] == list(range(1, 11))
    assert all(row["lr"] == pytest.approx(0.01) for row in record.log)  # constant, as published


def test_published_step_leaves_a_well_fit_forget_class_in_place(toy):
    """FT has no forgetting signal of its own: it only drifts away from what the retained loss no longer
    supports. On this toy the forgotten class has its own input channel and the model already fits the
    retained data, so the published 10 epochs at lr 0.01 leave it recognised: FT's known weakness.
    (With lr 0.1 over 30 epochs the forgotten margin shrinks for some batch orders and not for others,
    so no forgetting level is asserted; l1-sparse's test compares the two methods instead.)"""
    model, _ = toy.unlearn("finetune", FORGET)
    after = toy.accuracies(model, FORGET)
    assert after["forget_train"] >= 90 and after["forget_test"] >= 90
    assert toy.forget_margin(model, FORGET[0]) > 0


def test_missing_retain_data_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        toy.unlearn("finetune", FORGET, retain=False)


def test_same_loaders_give_the_same_model(toy):
    a, _ = toy.unlearn("finetune", FORGET, overrides={"epochs": 2})
    b, _ = toy.unlearn("finetune", FORGET, overrides={"epochs": 2})
    assert state_equal(a, b)
    assert all(torch.isfinite(p).all() for p in a.parameters())
