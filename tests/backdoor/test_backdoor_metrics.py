"""clean_acc, asr and robust_acc on hand-made outputs (BackdoorBench conventions)."""

from __future__ import annotations

import math

import torch

from lethe.metrics import Outputs
from lethe_backdoor.metrics import attack_rates, backdoor_metrics


def outputs(predictions: list[int], labels: list[int], classes: int = 4) -> Outputs:
    logits = torch.nn.functional.one_hot(torch.tensor(predictions), classes).float()
    return Outputs(logits, torch.tensor(labels))


def test_asr_excludes_target_class_images():
    # target 0: the two images of class 0 predicted as 0 must not count as attack successes
    stamped = outputs([0, 0, 0, 2, 3, 1], [0, 0, 1, 2, 3, 3])
    rates = attack_rates(stamped, target=0)
    assert rates["asr"] == 25.0  # 1 of the 4 non-target images (class 1 -> 0)
    assert rates["robust_acc"] == 50.0  # classes 2 and 3 predicted right; the last one is wrong


def test_all_three_metrics():
    clean = outputs([0, 1, 2, 2], [0, 1, 2, 3])
    stamped = outputs([1, 1, 1], [1, 2, 3])
    metrics = backdoor_metrics(clean, stamped, target=1)
    assert metrics == {"clean_acc": 75.0, "asr": 100.0, "robust_acc": 0.0}


def test_asr_and_robust_acc_need_not_sum_to_100():
    rates = attack_rates(outputs([3, 2, 0], [1, 2, 3]), target=0)
    assert math.isclose(rates["asr"], 100 / 3, rel_tol=1e-6)
    assert math.isclose(rates["robust_acc"], 100 / 3, rel_tol=1e-6)


def test_no_non_target_image_gives_nan():
    rates = attack_rates(outputs([0, 1], [2, 2]), target=2)
    assert math.isnan(rates["asr"]) and math.isnan(rates["robust_acc"])
