"""Random labelling (RL) end to end on the toy problem."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import lethe
from lethe.checkpoint import state_equal
from lethe.methods.random_label import mixed_loader
from lethe.metrics import collect_outputs, split_accuracies


def engine() -> lethe.Engine:
    return lethe.Engine(progress=False)


def accuracies(model, toy, forget):
    return split_accuracies(collect_outputs(model, toy.loader()), collect_outputs(model, toy.loader(val=True)), forget)


def run(toy, forget, retain="default", **kwargs):
    if retain == "default":
        retain = toy.loader(toy.retain_classes(forget), shuffle=True)
    return lethe.unlearn(
        toy.model,
        "random_label",
        forget=toy.loader(forget, shuffle=True),
        forget_classes=forget,
        retain=retain,
        engine=engine(),
        **kwargs,
    )


def test_published_defaults():
    s = lethe.method_settings("random_label")
    assert (s.epochs, s.lr, s.momentum, s.weight_decay, s.use_retain) == (10, 0.01, 0.9, 5e-4, True)
    entry = lethe.get_method("random_label")
    assert entry.needs_retain is True
    assert entry.training_free is False


def test_forgets_one_class_and_keeps_the_rest(toy):
    before = accuracies(toy.model, toy, [1])
    snapshot = toy.fresh_model()
    model, record = run(toy, [1])
    after = accuracies(model, toy, [1])
    assert before["forget_train"] > 90 and before["forget_test"] > 90
    assert after["forget_train"] <= 5
    assert after["forget_test"] <= 5
    assert after["retain_train"] >= before["retain_train"] - 5
    assert after["retain_test"] >= before["retain_test"] - 5
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
        run(toy, [1], retain=None)


class Exploding(Dataset):
    """A dataset that fails when read: proves a loader is never used."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        raise AssertionError("the retain loader was read")


def test_without_retain_data_trains_on_forget_set_only(toy):
    model, record = run(toy, [1], retain=DataLoader(Exploding(), batch_size=4), overrides={"use_retain": False})
    assert accuracies(model, toy, [1])["forget_train"] <= 5
    assert all(row["retain_loss"] == 0.0 for row in record.log)
    # With use_retain on (the default), the same loader is read.
    with pytest.raises(AssertionError, match="retain loader was read"):
        run(toy, [1], retain=DataLoader(Exploding(), batch_size=4), overrides={"epochs": 1})


def test_mixed_loader_tags_every_sample_once(toy):
    forget, retain = toy.loader([1], batch_size=8), toy.loader(toy.retain_classes([1]), batch_size=16)
    batches = list(mixed_loader(forget, retain, engine()))
    assert all(len(b[0]) <= 16 for b in batches)  # the retain loader's batch size
    labels = torch.cat([b[1] for b in batches])
    tags = torch.cat([b[2] for b in batches])
    assert tags.dtype == torch.bool
    assert len(labels) == len(toy.loader().dataset)
    assert torch.equal(tags, labels == 1)  # forget samples, and only they, are tagged
    assert not torch.equal(labels, toy.loader().dataset.tensors[1])  # shuffled


def test_overrides_and_seeded_repeatability(toy):
    a, rec = run(toy, [1], overrides={"epochs": 2, "lr": 0.05})
    b, _ = run(toy, [1], overrides={"epochs": 2, "lr": 0.05})
    assert len(rec.log) == 2
    assert rec.log[0]["lr"] == pytest.approx(0.05)
    assert state_equal(a, b)  # same engine seed: same shuffles and random labels
