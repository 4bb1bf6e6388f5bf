"""relearn_steps: steps of fine-tuning on a few forget samples until forget-test accuracy > 50 %."""

import copy

import torch

import lethe
from lethe.relearn import RelearnSettings, relearn_steps


def _samples(toy, cls, n=8):
    keep = toy.y == cls
    return toy.x[keep][:n], toy.y[keep][:n]


def test_zero_steps_when_class_is_still_known(toy):
    model = toy.fresh_model()
    assert relearn_steps(model, _samples(toy, 1), toy.loader([1], val=True)) == 0


def test_counts_steps_and_leaves_model_unchanged(toy):
    model = toy.fresh_model()
    with torch.no_grad():
        model[-1].bias[1] -= 20.0  # suppress class 1 at the output only
    before = copy.deepcopy(model.state_dict())
    steps = relearn_steps(model, _samples(toy, 1), toy.loader([1], val=True), settings=RelearnSettings(lr=0.5))
    assert 1 <= steps <= 50
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_budget_exhausted_reports_budget_plus_one(toy):
    model = toy.fresh_model()
    with torch.no_grad():
        model[-1].bias[1] -= 1e4
    settings = RelearnSettings(steps=3, lr=1e-6)
    assert relearn_steps(model, _samples(toy, 1), toy.loader([1], val=True), settings=settings) == 4


def test_unlearned_model_relearns_slower_than_output_suppression(toy):
    """A DELETE-unlearned model needs at least one step (the class is gone from the outputs)."""
    model, _ = lethe.unlearn(
        toy.fresh_model(),
        "delete",
        forget=toy.loader([1], shuffle=True),
        forget_classes=[1],
        overrides={"epochs": 5},
        engine=lethe.Engine(progress=False),
    )
    assert relearn_steps(model, _samples(toy, 1), toy.loader([1], val=True)) >= 1
