"""SCRUB end to end on the toy problem (Kurmanji et al., NeurIPS 2023)."""

from __future__ import annotations

import pytest

import lethe
from lethe.checkpoint import state_equal
from lethe.methods.scrub import SCRUBSettings

FORGET = [1]
# The published lr (5e-4) moves the toy net too little in its 3 short epochs (4 forget batches);
# 3e-3 is inside the band (2e-3 .. 5e-3) where the toy forgets and keeps the rest.
TOY_LR = 3e-3


def test_scrub_forgets_and_keeps_retained(toy):
    before = toy.accuracies(toy.model, FORGET)
    assert before["forget_train"] > 90 and before["retain_train"] > 90
    snapshot = toy.fresh_model()
    model, record = toy.unlearn("scrub", FORGET, overrides={"lr": TOY_LR})
    after = toy.accuracies(model, FORGET)
    toy.assert_forgets(before, after, forget_at_most=10, retain_drop=5)
    assert state_equal(toy.model, snapshot)  # the original is untouched
    assert not model.training

    # Max-steps in epochs 1..msteps, then a min-step every epoch, in that order.
    assert [(row["epoch"], row["phase"]) for row in record.log] == [
        (1, "max"),
        (1, "min"),
        (2, "max"),
        (2, "min"),
        (3, "min"),
    ]
    max_rows = [row for row in record.log if row["phase"] == "max"]
    min_rows = [row for row in record.log if row["phase"] == "min"]
    for row in max_rows:
        assert row["loss"] == pytest.approx(-row["forget_kl"])  # the max-step minimises -KL
    # The max-steps drive the student away from the teacher on the forget data.
    assert max_rows[1]["forget_kl"] > max_rows[0]["forget_kl"] > 0
    for row in min_rows:
        assert row["loss"] == pytest.approx(0.001 * row["retain_kl"] + 0.99 * row["retain_ce"], rel=1e-4)
    assert all(row["lr"] == pytest.approx(TOY_LR) for row in record.log)
    assert record.extra["max_epochs"] == 2


def test_without_max_steps_nothing_is_forgotten(toy):
    """msteps=0 leaves only the min-steps (distil + CE on retained data): the max-steps do the forgetting."""
    model, record = toy.unlearn("scrub", FORGET, overrides={"lr": TOY_LR, "msteps": 0})
    assert {row["phase"] for row in record.log} == {"min"}
    assert toy.accuracies(model, FORGET)["forget_train"] >= 90


def test_lr_decays_after_the_listed_epochs(toy):
    _, record = toy.unlearn(
        "scrub",
        FORGET,
        overrides={"epochs": 4, "msteps": 1, "lr": 1e-4, "lr_decay_epochs": (1, 3), "lr_decay_rate": 0.5},
    )
    lrs = {(row["epoch"], row["phase"]): row["lr"] for row in record.log}
    assert lrs == pytest.approx(
        {(1, "max"): 1e-4, (1, "min"): 1e-4, (2, "min"): 5e-5, (3, "min"): 5e-5, (4, "min"): 2.5e-5}
    )


def test_published_defaults():
    s = lethe.method_settings("scrub")
    assert s == SCRUBSettings(
        epochs=3,
        msteps=2,
        lr=5e-4,
        momentum=0.9,
        weight_decay=5e-4,
        alpha=0.001,
        gamma=0.99,
        kd_T=4.0,
        lr_decay_epochs=(3, 5, 9),
        lr_decay_rate=0.1,
    )
    assert lethe.get_method("scrub").needs_retain
    assert not lethe.get_method("scrub").training_free


def test_missing_retain_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        toy.unlearn("scrub", FORGET, retain=False)


def test_bad_settings_raise(toy):
    with pytest.raises(lethe.ConfigError):
        toy.unlearn("scrub", FORGET, overrides={"kd_T": 0.0})
