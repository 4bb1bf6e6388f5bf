"""DELETE end to end on the toy problem and on a segmentation-shaped model (methods.md s.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lethe
from lethe.checkpoint import state_equal
from lethe.metrics import collect_outputs


def test_delete_forgets_one_class_and_keeps_the_rest(toy):
    before = toy.accuracies(toy.model, [1])
    snapshot = toy.fresh_model()
    model, record = toy.unlearn("delete", [1], retain=False, overrides={"stop_when_forgotten": False})
    after = toy.accuracies(model, [1])
    assert before["forget_train"] > 90
    toy.assert_forgets(before, after, forget_at_most=5, retain_drop=5)
    assert state_equal(toy.model, snapshot)  # inplace=False leaves the original alone
    assert not model.training

    # The published run: 20 epochs, every row with both loss terms.
    assert record.settings["epochs"] == 20
    assert [row["epoch"] for row in record.log] == list(range(1, 21))
    for row in record.log:
        assert {"loss", "forget_term", "retain_term", "lr"} <= row.keys()
        assert row["lr"] == pytest.approx(1e-3)
        # T = 1: the loss is exactly the sum of its two terms (up to float rounding).
        assert row["loss"] == pytest.approx(row["forget_term"] + row["retain_term"], rel=1e-4)
    # Forgetting: the -log(1 - qF) term falls over training.
    assert record.log[-1]["forget_term"] < 0.5 * record.log[0]["forget_term"]


def test_delete_forgets_two_classes(toy):
    forget = [1, 2]
    before = toy.accuracies(toy.model, forget)
    model, _ = toy.unlearn("delete", forget, retain=False)
    after = toy.accuracies(model, forget)
    assert after["forget_train"] <= 5
    assert after["retain_train"] >= before["retain_train"] - 5
    # Neither forgotten class is predicted for the other forgotten class either.
    pred = collect_outputs(model, toy.loader(forget)).logits.argmax(1)
    assert not torch.isin(pred, torch.tensor(forget)).any()


def test_epochs_override_sets_log_length(toy):
    _, record = toy.unlearn("delete", [1], retain=False, overrides={"epochs": 2, "lr": 1e-4})
    assert len(record.log) == 2
    assert record.settings["epochs"] == 2
    assert record.log[0]["lr"] == pytest.approx(1e-4)


def bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches_tracked" in k}


@pytest.mark.parametrize("freeze_bn", [True, False])
def test_freeze_bn_keeps_running_stats(toy, freeze_bn):
    before = bn_buffers(toy.model)
    model, _ = toy.unlearn("delete", [1], retain=False, overrides={"epochs": 2, "freeze_bn": freeze_bn})
    after = bn_buffers(model)
    assert before.keys() == after.keys() and before
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    assert unchanged is freeze_bn
    assert not torch.equal(model[0].weight, toy.model[0].weight)  # it did train


class PixelClassifier(nn.Module):
    """Segmentation-shaped: a 1x1 conv from C input channels to C class logits per pixel."""

    def __init__(self, classes: int):
        super().__init__()
        self.head = nn.Conv2d(classes, classes, 1)
        with torch.no_grad():
            self.head.weight.copy_(4.0 * torch.eye(classes).view(classes, classes, 1, 1))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(x)


def segmentation_data(classes=3, n=16, size=6, ignore=255):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, classes, (n, size, size), generator=g)
    x = nn.functional.one_hot(labels, classes).permute(0, 3, 1, 2).float()
    x = x + 0.3 * torch.randn(x.shape, generator=g)
    y = labels.clone()
    y[:, 0, :] = ignore  # a void border row
    return x, y


def unlearn_pixels(model, loader, **overrides):
    """DELETE of class 1 from a segmentation-shaped model, with a quiet engine."""
    return lethe.unlearn(
        model, "delete", forget=loader, forget_classes=[1], engine=lethe.Engine(progress=False), overrides=overrides
    )


def test_segmentation_with_ignore_index():
    x, y = segmentation_data()
    model = PixelClassifier(3)
    assert (model(x).argmax(1) == 1).float().mean() > 0.25
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True)
    new, record = unlearn_pixels(model, loader, epochs=10, lr=0.05, ignore_index=255)
    assert record.settings["ignore_index"] == 255
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in record.log)
    with torch.no_grad():
        pred = new(x).argmax(1)
    labels = x.argmax(1)
    assert (pred == 1).float().mean() < 0.02  # class 1 is no longer predicted anywhere
    keep = (labels != 1) & (y != 255)
    assert (pred[keep] == labels[keep]).float().mean() > 0.95


@pytest.mark.parametrize("ignore_index", [255, None])
def test_ignored_pixels_do_not_train(ignore_index):
    """With every pixel void, ignore_index makes the loss zero and the model does not move."""
    x, y = segmentation_data()
    y[:] = 255
    model = PixelClassifier(3)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    new, record = unlearn_pixels(model, loader, epochs=2, lr=0.05, ignore_index=ignore_index)
    if ignore_index is None:
        assert not state_equal(new, model)
        assert record.log[-1]["loss"] > 0
    else:
        assert state_equal(new, model)
        assert record.log[-1]["loss"] == 0.0


def test_forget_pixel_weight_changes_training():
    x, y = segmentation_data()
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    runs = []
    for weight in (1.0, 5.0):
        new, _ = unlearn_pixels(
            PixelClassifier(3), loader, epochs=1, lr=0.05, ignore_index=255, forget_pixel_weight=weight
        )
        runs.append(new.head.weight.detach().clone())
    assert not torch.equal(runs[0], runs[1])


def test_empty_forget_classes_raise(toy):
    with pytest.raises(lethe.ConfigError):
        lethe.unlearn(toy.model, "delete", forget=toy.loader([1]), forget_classes=[])


def test_delete_use_retain_adds_unmasked_distillation_on_retained_batches(toy):
    before = toy.accuracies(toy.model, [1])
    model, record = toy.unlearn("delete", [1], retain=True, overrides={"use_retain": True})
    toy.assert_forgets(before, toy.accuracies(model, [1]), forget_at_most=5, retain_drop=5)
    assert record.settings["use_retain"] is True
    for row in record.log:  # one retained batch per forget batch, its plain KL logged and added
        assert row["loss"] == pytest.approx(row["forget_term"] + row["retain_term"] + row["anchor_term"], rel=1e-4)
    with pytest.raises(lethe.DataError, match="needs retained data"):
        toy.unlearn("delete", [1], retain=False, overrides={"use_retain": True})
