"""Confusion-matrix metrics on hand-made predictions: ignore pixels excluded, per-class IoU,
``miou_retain``, ``iou_forget``, ``recall_forget`` and where the forgotten pixels went."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lethe.errors import DataError
from lethe_segmentation.confusion import confusion_matrix
from lethe_segmentation.datasets import IGNORE_INDEX
from lethe_segmentation.metrics import distribution_gap, per_class_iou, segmentation_metrics

I = IGNORE_INDEX  # noqa: E741

# Three classes; class 2 is the one to forget. 12 pixels, 2 of them ignored.
TARGET = torch.tensor([[0, 0, 0, 1, 1, 1], [2, 2, 2, 2, I, I]])
PRED = torch.tensor([[0, 0, 1, 1, 1, 2], [2, 0, 1, 1, 2, 0]])


def test_confusion_counts_valid_pixels_only():
    conf = confusion_matrix(PRED, TARGET, 3)
    expected = [[2, 1, 0], [0, 2, 1], [1, 2, 1]]
    assert conf.tolist() == expected
    assert int(conf.sum()) == 10  # the two ignored pixels are not counted, whatever was predicted


def test_confusion_accepts_logits():
    logits = torch.nn.functional.one_hot(PRED, 3).permute(2, 0, 1).unsqueeze(0).float()
    assert torch.equal(confusion_matrix(logits, TARGET.unsqueeze(0), 3), confusion_matrix(PRED, TARGET, 3))


def test_confusion_rejects_out_of_range_targets():
    with pytest.raises(DataError, match="out of range"):
        confusion_matrix(PRED, torch.full_like(TARGET, 3), 3)


def test_per_class_iou_and_summaries():
    conf = confusion_matrix(PRED, TARGET, 3).numpy()
    iou = per_class_iou(conf)
    # IoU = tp / (row + col - tp): class 0: 2/(3+3-2); class 1: 2/(3+5-2); class 2: 1/(4+2-1)
    assert iou == pytest.approx([50.0, 100 / 3, 20.0])
    m = segmentation_metrics(conf, [2])
    assert m["miou_retain"] == pytest.approx((50.0 + 100 / 3) / 2)
    assert m["iou_forget"] == pytest.approx(20.0)
    assert m["recall_forget"] == pytest.approx(25.0)  # 1 of the 4 class-2 pixels is still class 2
    assert m["predicted_forget"] == pytest.approx(20.0)  # 2 of 10 valid pixels are labelled class 2
    assert m["pixel_accuracy"] == pytest.approx(50.0)
    assert m["pixel_accuracy_retain"] == pytest.approx(100 * 4 / 6)
    assert m["miou"] == pytest.approx((50.0 + 100 / 3 + 20.0) / 3)
    assert m["pixels"] == 10


def test_where_the_forgotten_pixels_went():
    conf = confusion_matrix(PRED, TARGET, 3).numpy()
    went = segmentation_metrics(conf, [2])["forget_to"]
    assert went == pytest.approx([25.0, 50.0, 25.0])
    assert sum(went) == pytest.approx(100.0)
    oracle = [50.0, 50.0, 0.0]
    assert distribution_gap(went, oracle) == pytest.approx(25.0)  # total variation, points
    assert distribution_gap(oracle, oracle) == 0.0


def test_absent_class_is_nan_and_left_out_of_means():
    conf = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 0]])
    m = segmentation_metrics(conf, [2])
    assert math.isnan(m["iou"][2]) and math.isnan(m["iou_forget"]) and math.isnan(m["recall_forget"])
    assert m["miou_retain"] == 100.0 and m["miou"] == 100.0
    assert m["predicted_forget"] == 0.0
    assert all(math.isnan(v) for v in m["forget_to"])


def test_multi_class_forgetting_pools_forgotten_rows():
    conf = np.array([[4, 0, 0], [1, 2, 1], [0, 3, 1]])
    m = segmentation_metrics(conf, [1, 2])
    assert m["recall_forget"] == pytest.approx(100 * 3 / 8)  # (2 + 1) of 8 forgotten pixels kept their class
    assert m["forget_to"] == pytest.approx([12.5, 62.5, 25.0])
    assert m["miou_retain"] == pytest.approx(80.0)
