"""Bad Teaching (incompetent teacher) on the toy problem (Chundawat et al., AAAI 2023)."""

from __future__ import annotations

import pytest
import torch

import lethe
from lethe.checkpoint import state_equal
from lethe.methods.bad_teacher import BadTeacherSettings, incompetent_teacher
from lethe.metrics import collect_outputs

FORGET = [1]
# The published 1 epoch at lr 1e-4 is 6 Adam steps on the toy; 5 epochs at 3e-3 let the student reach
# the incompetent teacher's (near uniform) outputs on the forget class.
TOY = {"lr": 3e-3, "epochs": 5}


def true_class_probability(model, toy):
    out = collect_outputs(model, toy.loader(FORGET, val=True))
    return out.true_class_probability().mean().item()


def test_bad_teacher_forgets_and_keeps_retained(toy):
    before = toy.accuracies(toy.model, FORGET)
    assert before["forget_train"] > 90 and before["retain_train"] > 90
    assert true_class_probability(toy.model, toy) > 0.9
    snapshot = toy.fresh_model()
    model, record = toy.unlearn("bad_teacher", FORGET, overrides=TOY)
    after = toy.accuracies(model, FORGET)
    # The student copies a random network on the forget class: about chance (25 %) accuracy, not 0.
    toy.assert_forgets(before, after, forget_at_most=40, retain_drop=5)
    assert true_class_probability(model, toy) < 0.4
    assert state_equal(toy.model, snapshot)  # the original is untouched
    assert not model.training

    assert [row["epoch"] for row in record.log] == [1, 2, 3, 4, 5]
    for row in record.log:
        # The two parts split the loss by sample kind.
        assert row["loss"] == pytest.approx(row["forget_kl"] + row["retain_kl"], rel=1e-4, abs=1e-7)
        assert row["lr"] == pytest.approx(3e-3)
    assert record.log[-1]["forget_kl"] < 0.5 * record.log[0]["forget_kl"]
    # On retained samples the student stays with the competent teacher, and stays confident.
    assert all(row["retain_kl"] < 0.01 for row in record.log)
    kept = collect_outputs(model, toy.loader(toy.retain_classes(FORGET), val=True))
    assert kept.true_class_probability().mean() > 0.9


def test_union_of_forget_and_retained_subset(toy):
    """One epoch sees the 100 forget samples and a random 30 % (90) of the 300 retained ones, mixed."""
    _, record = toy.unlearn("bad_teacher", FORGET, overrides={"lr": 1e-4})
    assert record.extra == {"forget_samples": 100, "retain_samples": 90}
    assert len(record.log) == 1
    # forget_share is a mean over 6 batches (5 of 32, one of 30); over the epoch it is 100/190.
    assert 0.4 < record.log[0]["forget_share"] < 0.65
    _, record = toy.unlearn("bad_teacher", FORGET, overrides={"lr": 1e-4, "retain_fraction": 1.0})
    assert record.extra["retain_samples"] == 300
    assert record.log[0]["forget_share"] == pytest.approx(0.25, abs=0.05)


def test_incompetent_teacher_is_seeded_and_random(toy):
    state = torch.get_rng_state()
    a, b, c = (incompetent_teacher(toy.model, s) for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert state_equal(a, b)
    assert not state_equal(a, c)
    assert not state_equal(a, toy.model)
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    x = toy.x[:64]
    assert (a(x).argmax(1) == toy.y[:64]).float().mean() < 0.6  # incompetent, unlike the original


def test_published_defaults():
    assert lethe.method_settings("bad_teacher") == BadTeacherSettings(
        epochs=1, lr=1e-4, temperature=1.0, retain_fraction=0.3
    )
    entry = lethe.get_method("bad_teacher")
    assert entry.needs_retain and not entry.training_free


def test_missing_retain_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        toy.unlearn("bad_teacher", FORGET, retain=False)


def test_bad_settings_raise(toy):
    with pytest.raises(lethe.ConfigError):
        toy.unlearn("bad_teacher", FORGET, overrides={"retain_fraction": 1.5})
