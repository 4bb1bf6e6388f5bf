"""The poisoned dataset: rate, reproducibility, what is stamped and relabelled, the defender's pool."""

from __future__ import annotations

import pytest
import torch
from bd_helpers import colour_bundle

from lethe.errors import CheckpointError, ConfigError
from lethe_backdoor.attacks import build_attack
from lethe_backdoor.poison import (
    check_recorded,
    choose_poison,
    make_backdoor_splits,
    poison_count,
    poison_data,
    stamp_non_target,
    stamped_test,
)


@pytest.fixture(scope="module")
def bundle():
    return colour_bundle(train_per_class=25, test_per_class=6)


@pytest.mark.parametrize(
    "n,rate,expected", [(100, 0.1, 10), (100, 0.05, 5), (95, 0.1, 10), (7, 0.01, 1), (40, 1.0, 40)]
)
def test_poison_count(n, rate, expected):
    assert poison_count(n, rate) == expected
    assert len(choose_poison(n, rate, 0)) == expected


@pytest.mark.parametrize("rate", [0.0, 1.01, -1.0])
def test_poison_count_refuses_rates_outside_zero_one(rate):
    with pytest.raises(ConfigError, match="poisoning rate"):
        poison_count(10, rate)


def test_poisoned_samples_are_stamped_and_relabelled(bundle):
    attack = build_attack("badnets", {"target": 2})
    data, index, true = poison_data(bundle.train, attack, seed=0)
    assert len(index) == 10 and torch.equal(index, index.sort().values)
    assert (data.labels[index] == 2).all()
    assert torch.equal(true, bundle.train.labels[index])
    assert torch.equal(data.images[index], attack.stamp(bundle.train.images[index]))
    others = torch.ones(len(data), dtype=torch.bool)
    others[index] = False
    assert torch.equal(data.images[others], bundle.train.images[others])
    assert torch.equal(data.labels[others], bundle.train.labels[others])
    assert bundle.train.labels.sum() != data.labels.sum() or (true == 2).all()  # the input was not modified
    assert torch.equal(bundle.train.labels, colour_bundle(25, 6).train.labels)


def test_poisoning_is_reproducible_and_seeded(bundle):
    attack = build_attack("badnets", {"position": "random"})
    a = make_backdoor_splits(bundle, attack, 0.2, seed=3)
    b = make_backdoor_splits(bundle, attack, 0.2, seed=3)
    c = make_backdoor_splits(bundle, attack, 0.2, seed=4)
    assert torch.equal(a.poison_indices, b.poison_indices)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.train.labels, b.train.labels)
    assert torch.equal(a.pool.images, b.pool.images)
    assert not torch.equal(a.poison_indices, c.poison_indices)
    assert torch.equal(stamped_test(a).images, stamped_test(b).images)


def test_splits_pool_is_clean_and_held_out(bundle):
    splits = make_backdoor_splits(bundle, build_attack("blended"), 0.2, seed=0)
    assert len(splits.pool) == 20 and len(splits.train) == 80  # 5 of each class held out
    assert splits.num_poisoned == 8
    assert torch.equal(splits.clean_train.labels[splits.poison_indices], splits.poison_labels)
    # every pool image is an original training image, untouched
    flat = bundle.train.images.flatten(1)
    for image in splits.pool.images.flatten(1):
        assert (flat == image).all(dim=1).any()
    record = splits.record()
    assert (
        record["name"] == "blended"
        and record["poisoned"] == 8
        and record["poison_indices"] == splits.poison_indices.tolist()
    )


def test_stamped_test_excludes_the_target_and_keeps_true_labels(bundle):
    splits = make_backdoor_splits(bundle, build_attack("badnets", {"target": 1}), 0.2, seed=0)
    stamped = stamped_test(splits)
    assert len(stamped) == 18 and (stamped.labels != 1).all()
    clean = splits.test.of_classes([1], keep=False)
    assert torch.equal(stamped.labels, clean.labels)
    assert torch.equal(stamped.images, splits.attack.stamp(clean.images))


def test_attack_is_checked_against_the_dataset(bundle):
    with pytest.raises(ConfigError, match="target label 4 is out of range"):
        make_backdoor_splits(bundle, build_attack("badnets", {"target": 4}))
    with pytest.raises(ConfigError, match="trigger 17x17 is larger than the 16x16 image"):
        make_backdoor_splits(bundle, build_attack("badnets", {"size": 17}))


def test_a_changed_dataset_is_detected(bundle):
    splits = make_backdoor_splits(bundle, build_attack("badnets"), 0.2, seed=0)
    check_recorded(splits, splits.record(), "x")
    other = {**splits.record(), "poison_indices": [0, 1, 2]}
    with pytest.raises(CheckpointError, match="other samples"):
        check_recorded(splits, other, "x")


def test_stamp_non_target_stamps_other_classes_only(bundle):
    attack = build_attack("badnets", {"target": 2, "position": "random"})
    data = bundle.test
    a = stamp_non_target(data, attack, seed=5)
    assert torch.equal(a.labels, data.labels[data.labels != 2])  # true labels, target class left out
    assert torch.equal(a.images, stamp_non_target(data, attack, seed=5).images)  # seeded
    assert not torch.equal(a.images, stamp_non_target(data, attack, seed=6).images)  # random positions differ
