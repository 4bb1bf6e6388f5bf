"""DELETE's ``stop_when_forgotten``: training ends once the forgotten classes are forgotten (issue 20)."""

from __future__ import annotations

import pytest
import torch
from test_delete_method import PixelClassifier, bn_buffers, segmentation_data, unlearn_pixels
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import lethe
from lethe.checkpoint import state_equal
from lethe.methods._early_stop import (
    HOLDOUT_MAX,
    HOLDOUT_MIN,
    RecentBatches,
    forgotten_hits,
    holdout_size,
    split_holdout,
)

PUBLISHED = {"stop_when_forgotten": False}
STOP = {"stop_when_forgotten": True}  # off by default (measured: docs/methods.md s.1)


def test_stops_early_on_an_easy_problem_and_records_why(toy):
    before = toy.accuracies(toy.model, [1])
    model, record = toy.unlearn("delete", [1], retain=False, overrides=STOP)
    toy.assert_forgets(before, toy.accuracies(model, [1]), forget_at_most=5, retain_drop=5)
    stop = record.extra["stop"]
    assert stop["stopped_early"] is True and stop["epochs_run"] == len(record.log) < 20
    assert "forgotten" in stop["reason"]
    assert stop["checked_on"] == "latest training batches"  # 100 forget samples: a 10 % slice is too small
    assert all("forget_check" in row for row in record.log)
    assert record.log[-1]["forget_check"] <= 1.0
    assert len(record.log) >= 2  # the default min_epochs


def test_does_not_stop_before_min_epochs(toy):
    _, record = toy.unlearn("delete", [1], retain=False, overrides={**STOP, "min_epochs": 6})
    checks = [row["forget_check"] for row in record.log]
    assert min(checks[:5]) <= 1.0  # forgotten before epoch 6 ...
    assert len(record.log) == 6  # ... and still run until then
    assert record.extra["stop"]["epochs_run"] == 6


def test_patience_needs_consecutive_checks(toy):
    _, once = toy.unlearn("delete", [1], retain=False, overrides={**STOP, "min_epochs": 1})
    _, thrice = toy.unlearn("delete", [1], retain=False, overrides={**STOP, "min_epochs": 1, "stop_patience": 3})
    assert len(thrice.log) == len(once.log) + 2
    assert all(row["forget_check"] <= 1.0 for row in thrice.log[-3:])


def test_min_improvement_also_waits_for_the_loss_to_level_off(toy):
    _, forgotten = toy.unlearn("delete", [1], retain=False, overrides=STOP)
    _, levelled = toy.unlearn("delete", [1], retain=False, overrides={**STOP, "stop_min_improvement": 0.05})
    assert len(levelled.log) > len(forgotten.log)  # the loss still falls by more than 5 % when forgotten
    losses = [row["loss"] for row in levelled.log]
    assert losses[-2] - losses[-1] < 0.05 * losses[-2]
    earlier = losses[len(forgotten.log) - 1 : -1]  # from the epoch the check alone stopped at
    assert all(b - a >= 0.05 * b for b, a in zip(earlier[:-1], earlier[1:], strict=True))
    assert "the loss falling by under 0.05" in levelled.extra["stop"]["reason"]


def test_stop_rule_needs_a_levelled_loss_and_a_forgotten_check():
    from lethe.methods._early_stop import StopWhenForgotten

    stop = StopWhenForgotten(lambda: 0.0, target=1.0, patience=1, min_epochs=1, min_improvement=0.1)
    assert [stop(e, {"loss": loss}) for e, loss in enumerate((1.0, 0.5, 0.46, 0.3), 1)] == [False, False, True, False]
    missing = StopWhenForgotten(lambda: 0.0, target=1.0, patience=1, min_epochs=1, min_improvement=0.1)
    assert not missing(1, {}) and not missing(2, {})  # no loss logged: never levelled
    remembered = StopWhenForgotten(lambda: 50.0, target=1.0, patience=1, min_epochs=1, min_improvement=0.1)
    assert not any(remembered(e, {"loss": 1.0}) for e in (1, 2, 3))


def test_off_is_the_default_and_the_published_run(toy):
    assert lethe.method_settings("delete").stop_when_forgotten is False
    model, record = toy.unlearn("delete", [1], retain=False)
    assert [row["epoch"] for row in record.log] == list(range(1, 21))
    assert not any("forget_check" in row for row in record.log)
    assert record.extra == {}
    # The check (eval mode, on the training batches here) changes nothing: checked every epoch
    # but never stopping, the run gives the published run's weights and BatchNorm statistics.
    for freeze_bn in (True, False):
        off, _ = toy.unlearn("delete", [1], retain=False, overrides={**PUBLISHED, "freeze_bn": freeze_bn})
        on, rec = toy.unlearn("delete", [1], retain=False, overrides={**STOP, "min_epochs": 20, "freeze_bn": freeze_bn})
        assert len(rec.log) == 20 and rec.extra["stop"]["stopped_early"] is False
        assert state_equal(on, off)
        assert all(torch.equal(a, b) for a, b in zip(bn_buffers(on).values(), bn_buffers(off).values(), strict=True))


def test_holdout_is_never_trained_on(toy):
    forget = toy.loader([1], shuffle=True)
    _, held = split_holdout(forget, 0.3, seed=0)  # the engine's seed is 0
    x, y = forget.dataset.tensors
    poisoned = x.clone()
    poisoned[held.dataset.indices] = float("nan")  # a held-out sample trained on would make the loss NaN
    assert len(held.dataset) == 30
    data = DataLoader(
        TensorDataset(poisoned, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1)
    )
    _, record = toy.unlearn("delete", [1], retain=False, forget_data=data, overrides={**STOP, "holdout_fraction": 0.3})
    assert record.extra["stop"]["checked_on"] == "held out (30 forget samples, not trained on)"
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in record.log)


def test_holdout_on_clean_data_stops(toy):
    before = toy.accuracies(toy.model, [1])
    model, record = toy.unlearn("delete", [1], retain=False, overrides={**STOP, "holdout_fraction": 0.3})
    assert record.extra["stop"]["stopped_early"] is True
    assert record.log[-1]["forget_check"] <= 1.0
    toy.assert_forgets(before, toy.accuracies(model, [1]), forget_at_most=5, retain_drop=5)


def test_split_holdout_sizes_and_disjointness():
    data = TensorDataset(torch.randn(1000, 2), torch.zeros(1000, dtype=torch.long))
    loader = DataLoader(data, batch_size=64, shuffle=True)
    train, held = split_holdout(loader, 0.1, seed=0)
    kept, out = set(train.dataset.indices), set(held.dataset.indices)
    assert len(out) == 100 and len(kept) == 900 and not kept & out
    assert train.batch_size == held.batch_size == 64
    assert isinstance(train.sampler, torch.utils.data.RandomSampler)
    assert isinstance(held.sampler, torch.utils.data.SequentialSampler)
    assert split_holdout(loader, 0.1, seed=0)[1].dataset.indices == held.dataset.indices  # seeded
    assert holdout_size(100_000, 0.1) == HOLDOUT_MAX
    assert holdout_size(10 * HOLDOUT_MIN - 10, 0.1) == 0
    assert split_holdout(loader, 0.0, seed=0) == (loader, None)
    assert split_holdout([(data.tensors[0], data.tensors[1])], 0.1, seed=0)[1] is None  # not a DataLoader


def test_split_holdout_keeps_a_distributed_sampler():
    data = TensorDataset(torch.randn(1000, 2), torch.zeros(1000, dtype=torch.long))
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=5)
    train, held = split_holdout(DataLoader(data, batch_size=32, sampler=sampler), 0.1, seed=0)
    assert isinstance(train.sampler, DistributedSampler)
    assert (train.sampler.num_replicas, train.sampler.rank, train.sampler.seed) == (2, 1, 5)
    assert len(train.sampler) == 450  # this rank's half of the 900 kept samples
    assert len(held.sampler) == 100  # every rank checks the whole slice


def test_recent_batches_keep_at_most_the_limit():
    recent = RecentBatches(limit=10)
    for k in range(5):
        recent.add(torch.full((4, 1), float(k)), torch.zeros(4))
    kept = [int(x[0, 0]) for x, _ in recent]
    assert kept == [2, 3, 4] and recent.samples == 12  # the oldest dropped while 10 remain without it


def test_forgotten_hits_dense_respects_ignore_index():
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, [1, 1, 2, 0], 0, [0, 1, 2, 3]] = 1.0  # predictions 1, 1, 2, 0
    y = torch.tensor([[[1, 2, 1, 255]]])
    forgotten = torch.tensor([1, 2])
    # pixels of a forgotten class: 0, 1, 2; predicted as a forgotten class: all three
    assert forgotten_hits(logits, y, forgotten, 255).tolist() == [3.0, 3.0]
    assert forgotten_hits(logits, y, torch.tensor([1]), 255).tolist() == [1.0, 2.0]  # pixel 2 predicts 2
    flat = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert forgotten_hits(flat, torch.tensor([1, 1]), forgotten).tolist() == [1.0, 2.0]  # top-1, not "any forgotten"


def test_dense_outputs_stop_when_forgotten():
    x, y = segmentation_data(n=64)
    model = PixelClassifier(3)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    new, record = unlearn_pixels(model, loader, epochs=30, lr=0.05, ignore_index=255, holdout_fraction=0.4, **STOP)
    stop = record.extra["stop"]
    assert stop["checked_on"].startswith("held out (26 ")
    assert stop["stopped_early"] and len(record.log) < 30
    assert record.log[0]["forget_check"] > record.log[-1]["forget_check"]
    assert record.log[-1]["forget_check"] <= 1.0
    with torch.no_grad():
        pred = new(x).argmax(1)
    keep = (x.argmax(1) != 1) & (y != 255)
    assert (pred[keep] == x.argmax(1)[keep]).float().mean() > 0.95


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("stop_accuracy", -1.0),
        ("stop_accuracy", 100.0),
        ("stop_accuracy", float("nan")),
        ("stop_patience", 0),
        ("min_epochs", 0),
        ("holdout_fraction", -0.1),
        ("holdout_fraction", 0.6),
        ("stop_min_improvement", 0.0),
        ("stop_min_improvement", 1.0),
        ("stop_when_forgotten", "maybe"),
    ],
)
def test_bad_settings_raise(name, value):
    with pytest.raises(lethe.ConfigError, match=name):
        lethe.method_settings("delete", {name: value})
