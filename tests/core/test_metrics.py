"""Evaluation metrics (methods.md s.3) on hand-made outputs."""

from __future__ import annotations

import math

import pytest
import torch

from lethe.metrics import (
    GAP_METRICS,
    Outputs,
    accuracy,
    avg_gap,
    class_accuracy_score,
    collect_outputs,
    mia_efficacy,
    per_class_accuracy,
    split_accuracies,
)


def outputs_from_predictions(pred, labels, num_classes=3) -> Outputs:
    """Logits whose argmax is ``pred``."""
    logits = torch.zeros(len(pred), num_classes)
    logits[torch.arange(len(pred)), torch.tensor(pred)] = 5.0
    return Outputs(logits, torch.tensor(labels))


def test_split_accuracies_exact():
    # train: class 1 is forgotten; 2 forget samples (1 right), 4 retained (3 right)
    train = outputs_from_predictions([1, 0, 0, 2, 2, 1], [1, 1, 0, 2, 0, 0])
    # test: 4 forget samples (1 right), 1 retained (1 right)
    test = outputs_from_predictions([1, 2, 0, 0, 2], [1, 1, 1, 1, 2])
    acc = split_accuracies(train, test, [1])
    assert acc == pytest.approx({"forget_train": 50.0, "retain_train": 50.0, "forget_test": 25.0, "retain_test": 100.0})


def test_split_accuracies_multi_class_and_empty_split():
    train = outputs_from_predictions([0, 1, 2, 2], [0, 1, 2, 1])
    test = outputs_from_predictions([0, 0], [0, 0])
    acc = split_accuracies(train, test, [1, 2])
    assert acc["forget_train"] == pytest.approx(200 / 3)
    assert acc["retain_train"] == 100.0
    assert math.isnan(acc["forget_test"])  # no forget sample in this split
    assert acc["retain_test"] == 100.0


def test_per_class_accuracy():
    out = outputs_from_predictions([0, 0, 1, 2, 1, 1], [0, 0, 0, 2, 2, 1], num_classes=4)
    acc = per_class_accuracy(out, 4)
    assert acc[:3] == pytest.approx([200 / 3, 100.0, 50.0])
    assert math.isnan(acc[3])
    assert accuracy(out) == pytest.approx(400 / 6)


def test_avg_gap_exact():
    row = {
        "forget_train": 10.0,
        "retain_train": 90.0,
        "forget_test": 5.0,
        "retain_test": 80.0,
        "mia_efficacy": 70.0,
        "seconds": 1.0,
    }
    oracle = {
        "forget_train": 0.0,
        "retain_train": 100.0,
        "forget_test": 0.0,
        "retain_test": 90.0,
        "mia_efficacy": 100.0,
        "seconds": 500.0,
    }
    # |10| + |-10| + |5| + |-10| + |-30| = 65 over 5 metrics; seconds is not part of it
    assert avg_gap(row, oracle) == pytest.approx(13.0)
    assert set(GAP_METRICS) == {
        "forget_train",
        "retain_train",
        "forget_test",
        "retain_test",
        "mia_efficacy",
    }


def confidence_outputs(probabilities) -> Outputs:
    """Two-class outputs whose true-class (class 0) softmax probability is ``probabilities``."""
    p = torch.as_tensor(probabilities, dtype=torch.float64)
    logits = torch.stack([torch.log(p), torch.log1p(-p)], dim=1).float()
    return Outputs(logits, torch.zeros(len(p), dtype=torch.long))


def test_true_class_probability():
    out = confidence_outputs([0.9, 0.25])
    torch.testing.assert_close(out.true_class_probability(), torch.tensor([0.9, 0.25]))


@pytest.fixture
def attack_data():
    g = torch.Generator().manual_seed(0)
    members = confidence_outputs(0.95 + 0.04 * torch.rand(200, generator=g))  # [0.95, 0.99]
    nonmembers = confidence_outputs(0.2 + 0.3 * torch.rand(60, generator=g))  # [0.2, 0.5]
    return members, nonmembers, g


def test_mia_member_like_forget_samples_score_low(attack_data):
    members, nonmembers, g = attack_data
    forget = confidence_outputs(0.95 + 0.04 * torch.rand(30, generator=g))
    assert mia_efficacy(members, nonmembers, forget) == 0.0


def test_mia_nonmember_like_forget_samples_score_high(attack_data):
    members, nonmembers, g = attack_data
    forget = confidence_outputs(0.2 + 0.3 * torch.rand(30, generator=g))
    assert mia_efficacy(members, nonmembers, forget) == 100.0


def test_mia_mixed_forget_set(attack_data):
    members, nonmembers, _ = attack_data
    forget = confidence_outputs([0.97] * 3 + [0.3])
    assert mia_efficacy(members, nonmembers, forget) == 25.0
    assert mia_efficacy(members, nonmembers, forget, max_samples=20) == 25.0


def test_mia_empty_split_is_nan(attack_data):
    members, nonmembers, _ = attack_data
    assert math.isnan(mia_efficacy(members, nonmembers, confidence_outputs([])))


def test_class_accuracy_score():
    # retained: 3 of 4 right (0.75); forgotten class 2: 1 of 4 right (0.25)
    out = outputs_from_predictions([0, 1, 0, 0, 2, 0, 1, 1], [0, 1, 1, 0, 2, 2, 2, 2])
    assert class_accuracy_score(out, [2]) == pytest.approx(0.75 * (1 - 0.25))
    perfect_forget = outputs_from_predictions([0, 1, 0], [0, 1, 2])
    assert class_accuracy_score(perfect_forget, [2]) == pytest.approx(1.0)


def test_collect_outputs_restores_mode():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.9))
    model.train()
    x = torch.randn(10, 3)
    y = torch.arange(10) % 2
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    out = collect_outputs(model, loader)
    assert model.training
    torch.testing.assert_close(out.logits, model[0](x).detach())  # eval mode: no dropout
    assert torch.equal(out.labels, y)


def test_mia_balances_few_members_against_many_nonmembers():
    """Fewer retained training samples than test samples: both sides are cut to the same size, so
    member-like forget samples still read as members (an unbalanced SVC says non-member to all)."""
    g = torch.Generator().manual_seed(1)
    members = confidence_outputs(0.6 + 0.39 * torch.rand(40, generator=g))  # [0.6, 0.99]
    nonmembers = confidence_outputs(0.3 + 0.6 * torch.rand(400, generator=g))  # [0.3, 0.9], overlapping
    forget = confidence_outputs([0.98] * 10)
    assert mia_efficacy(members, nonmembers, forget) == 0.0
