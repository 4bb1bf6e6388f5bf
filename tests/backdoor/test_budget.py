"""The defender's budget: parsing, sources, what it holds, nesting, and budgets too large."""

from __future__ import annotations

import pytest
import torch
from bd_helpers import colour_bundle

from lethe.errors import ConfigError
from lethe_backdoor.attacks import build_attack
from lethe_backdoor.budget import available, make_budget, parse_budget, parse_budgets, unused_pool
from lethe_backdoor.poison import make_backdoor_splits


@pytest.fixture(scope="module")
def splits():
    """100 training images (80 trained on, 20 in the defender's pool); 8 poisoned."""
    return make_backdoor_splits(colour_bundle(25, 6), build_attack("badnets", {"target": 1}), 0.2, seed=0)


@pytest.mark.parametrize(
    "text,fraction,count",
    [
        ("0.01", 0.01, None),
        ("1e-2", 0.01, None),
        ("500", None, 500),
        ("1", None, 1),
        (" 0.5 ", 0.5, None),
        ("1.0", 1.0, None),
    ],
)
def test_parse_budget(text, fraction, count):
    spec = parse_budget(text)
    assert (spec.fraction, spec.count) == (fraction, count)


@pytest.mark.parametrize("text", ["0", "0.0", "-0.1", "1.5", "nan", "inf", "lots", "", "-5"])
def test_bad_budgets(text):
    with pytest.raises(ConfigError, match="budget"):
        parse_budget(text)


def test_parse_budgets_and_sizes():
    specs = parse_budgets("0.01, 0.005,200")
    assert [s.size(10000) for s in specs] == [100, 50, 200]
    assert parse_budget("0.001").size(100) == 1  # at least one image
    with pytest.raises(ConfigError, match="at least one budget"):
        parse_budgets(" , ")


def test_stamp_source(splits):
    budget = make_budget(splits, "0.1", "stamp")  # 8 stamped samples
    assert budget.size == 8 and len(budget.clean) == 8
    assert (budget.stamped.labels == 1).all()  # labelled with the target
    assert (budget.stamped_true != 1).all()  # no target-class image in the budget
    truth = budget.stamped_true_data()
    assert torch.equal(truth.images, budget.stamped.images) and torch.equal(truth.labels, budget.stamped_true)
    # the stamped images are pool images with the trigger
    pool = splits.pool
    for image, label in zip(budget.stamped.images, budget.stamped_true, strict=True):
        clean = pool.images[pool.labels == label]
        assert (splits.attack.stamp(clean) == image).flatten(1).all(1).any()
    assert budget.describe() == {"budget": "0.1", "source": "stamp", "stamped": 8, "clean": 8}


def test_budgets_are_nested_and_seeded(splits):
    small, large = make_budget(splits, "3"), make_budget(splits, "12")
    assert torch.equal(small.stamped.images, large.stamped.images[:3])
    assert torch.equal(small.clean.images, large.clean.images[:3])
    assert torch.equal(make_budget(splits, "12").stamped.images, large.stamped.images)


def test_poisoned_source_uses_poisoned_training_samples(splits):
    budget = make_budget(splits, "3", "poisoned")
    keep = splits.poison_labels != 1
    poisoned = splits.train.images[splits.poison_indices[keep]]
    for image in budget.stamped.images:
        assert (poisoned == image).flatten(1).all(1).any()
    assert (budget.stamped.labels == 1).all() and (budget.stamped_true != 1).all()
    assert budget.source == "poisoned" and len(budget.clean) == 3


def test_available(splits):
    assert available(splits, "stamp") == 15  # 20 pool images, 5 of the target class
    assert available(splits, "poisoned") == int((splits.poison_labels != 1).sum())


@pytest.mark.parametrize("source,text", [("stamp", "16"), ("stamp", "0.5"), ("poisoned", "9"), ("stamp", "1.0")])
def test_budget_larger_than_available(splits, source, text):
    with pytest.raises(ConfigError, match="larger than available"):
        make_budget(splits, text, source)


def test_unknown_source(splits):
    with pytest.raises(ConfigError, match="unknown budget source 'guess'"):
        make_budget(splits, "2", "guess")


def test_split_holds_out_clean_and_stamped_images(splits):
    budget = make_budget(splits, "10")
    fit, held = budget.split(0.2, seed=0)
    assert (fit.size, held.size, len(fit.clean), len(held.clean)) == (8, 2, 8, 2)
    both = torch.cat([fit.stamped.images, held.stamped.images]).flatten(1)
    assert both.unique(dim=0).shape[0] == budget.stamped.images.flatten(1).unique(dim=0).shape[0]
    with pytest.raises(ConfigError, match="too small"):
        make_budget(splits, "1").split(0.2, seed=0)


@pytest.mark.parametrize("source", ["stamp", "poisoned"])
def test_unused_pool_is_the_rest_of_the_pool(splits, source):
    budget = make_budget(splits, "3", source)
    rest = unused_pool(splits, "3", source)
    pool = splits.pool.images.flatten(1)

    def rows(images: torch.Tensor) -> set[int]:
        return {int(torch.nonzero((pool == im.flatten()).all(1))[0]) for im in images}

    used = rows(budget.clean.images)
    if source == "stamp":  # the clean originals of the stamped images are used too
        stamped_from = {
            int(i)
            for im, label in zip(budget.stamped.images, budget.stamped_true, strict=True)
            for i in torch.nonzero((splits.attack.stamp(splits.pool.images) == im).flatten(1).all(1)).view(-1)
            if splits.pool.labels[i] == label
        }
        used |= stamped_from
    assert rows(rest.images).isdisjoint(used)
    assert len(rest) == len(splits.pool) - len(used)
