"""Random labelling (RL) end to end on the toy problem."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import lethe
from lethe.checkpoint import state_equal
from lethe.methods.random_label import mixed_loader


def test_published_defaults():
    s = lethe.method_settings("random_label")
    assert (s.epochs, s.lr, s.momentum, s.weight_decay, s.use_retain) == (10, 0.01, 0.9, 5e-4, True)
    entry = lethe.get_method("random_label")
    assert entry.needs_retain is True
    assert entry.training_free is False


def test_forgets_one_class_and_keeps_the_rest(toy):
    before = toy.accuracies(toy.model, [1])
    snapshot = toy.fresh_model()
    model, record = toy.unlearn("random_label", [1])
    after = toy.accuracies(model, [1])
    assert before["forget_train"] > 90 and before["forget_test"] > 90
    toy.assert_forgets(before, after, forget_at_most=5, retain_drop=5)
    assert state_equal(toy.model, snapshot)  # the original is untouched
    assert not model.training

    assert [row["epoch"] for row in record.log] == list(range(1, 11))
    for row in record.log:
        assert {"loss", "forget_loss", "retain_loss", "lr"} <= row.keys()
        assert row["lr"] == pytest.approx(0.01)
    # The logged parts are per-sample means: a quarter of the samples are forget samples, so the
    # overall loss is close to the share-weighted mix (batch means weigh samples slightly unevenly).
    last = record.log[-1]
    assert last["loss"] == pytest.approx(0.25 * last["forget_loss"] + 0.75 * last["retain_loss"], rel=0.15)
    # Random other labels among 3 classes: the forget loss falls towards log(3) from far above.
    assert record.log[0]["forget_loss"] > 2.0
    assert last["forget_loss"] == pytest.approx(torch.log(torch.tensor(3.0)).item(), abs=0.3)
    assert last["retain_loss"] < 0.1


def test_missing_retain_data_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        toy.unlearn("random_label", [1], retain=False)


class Exploding(Dataset):
    """A dataset that fails when read: proves a loader is never used."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        raise AssertionError("the retain loader was read")


def test_without_retain_data_trains_on_forget_set_only(toy):
    model, record = toy.unlearn(
        "random_label", [1], retain=DataLoader(Exploding(), batch_size=4), overrides={"use_retain": False}
    )
    assert toy.accuracies(model, [1])["forget_train"] <= 5
    assert all(row["retain_loss"] == 0.0 for row in record.log)
    # With use_retain on (the default), the same loader is read.
    with pytest.raises(AssertionError, match="retain loader was read"):
        toy.unlearn("random_label", [1], retain=DataLoader(Exploding(), batch_size=4), overrides={"epochs": 1})


def test_mixed_loader_tags_every_sample_once(toy):
    forget, retain = toy.loader([1], batch_size=8), toy.loader(toy.retain_classes([1]), batch_size=16)
    batches = list(mixed_loader(forget, retain, toy.engine()))
    assert all(len(b[0]) <= 16 for b in batches)  # the retain loader's batch size
    labels = torch.cat([b[1] for b in batches])
    tags = torch.cat([b[2] for b in batches])
    assert tags.dtype == torch.bool
    assert len(labels) == len(toy.loader().dataset)
    assert torch.equal(tags, labels == 1)  # forget samples, and only they, are tagged
    assert not torch.equal(labels, toy.loader().dataset.tensors[1])  # shuffled


def test_overrides_and_seeded_repeatability(toy):
    a, rec = toy.unlearn("random_label", [1], overrides={"epochs": 2, "lr": 0.05})
    b, _ = toy.unlearn("random_label", [1], overrides={"epochs": 2, "lr": 0.05})
    assert len(rec.log) == 2
    assert rec.log[0]["lr"] == pytest.approx(0.05)
    assert state_equal(a, b)  # same engine seed: same shuffles and random labels


def test_use_retain_false_needs_no_retain_loader(toy):
    model, _ = lethe.unlearn(
        toy.fresh_model(),
        "random_label",
        forget=toy.loader([1], shuffle=True),
        forget_classes=[1],
        overrides={"use_retain": False, "epochs": 1},
        engine=lethe.Engine(progress=False),
    )
    assert not state_equal(model, toy.model)
