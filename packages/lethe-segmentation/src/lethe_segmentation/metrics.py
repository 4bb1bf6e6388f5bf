"""Segmentation metrics from one confusion matrix ``m[true, predicted]`` (methods.md s.3).

All values are percentages. A class with no pixel in the ground truth and none predicted has an
undefined IoU (NaN) and is left out of means.

- ``iou``: per-class intersection over union, ``m[c,c] / (row_c + col_c - m[c,c])``.
- ``miou_retain``: mean IoU over the kept classes; ``iou_forget``: mean IoU of the forgotten ones.
- ``recall_forget``: share of forgotten-class pixels still predicted as their class.
- ``predicted_forget``: share of ALL valid pixels predicted as a forgotten class (the model should
  "stop labelling the class anywhere", false positives included).
- ``pixel_accuracy``: correct / valid pixels; ``pixel_accuracy_retain``: over kept-class pixels.
- ``forget_to``: where the forgotten pixels went, the distribution (percent, per class) of the
  classes they are now predicted as; ``forget_to_gap`` compares it with the retrain oracle's
  (total-variation distance in points: 0 = the same redistribution, 100 = disjoint).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The scalar metrics of ``segmentation_metrics``, in table order.
METRICS = (
    "miou_retain",
    "iou_forget",
    "recall_forget",
    "predicted_forget",
    "pixel_accuracy",
    "pixel_accuracy_retain",
    "miou",
)


def _ratio(num: float, den: float) -> float:
    return 100.0 * float(num) / float(den) if den > 0 else float("nan")


def per_class_iou(conf: np.ndarray) -> list[float]:
    """IoU of every class in percent (NaN where the class is neither present nor predicted)."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(axis=1) + conf.sum(axis=0) - tp
    return [_ratio(t, u) for t, u in zip(tp, union, strict=True)]


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def forget_distribution(conf: np.ndarray, forget_classes: Sequence[int]) -> list[float]:
    """Percent of the forgotten-class pixels predicted as each class (sums to 100, or NaNs)."""
    conf = np.asarray(conf, dtype=np.float64)
    rows = conf[list(forget_classes)].sum(axis=0)
    total = rows.sum()
    return [_ratio(v, total) for v in rows]


def distribution_gap(p: Sequence[float], q: Sequence[float]) -> float:
    """Total-variation distance between two percent distributions, in points (0..100)."""
    a, b = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    return float(0.5 * np.abs(a - b).sum())


def segmentation_metrics(conf: np.ndarray, forget_classes: Sequence[int] = ()) -> dict:
    """The scalar metrics (``METRICS``), ``iou`` per class and ``forget_to`` from one matrix."""
    conf = np.asarray(conf, dtype=np.float64)
    num_classes = conf.shape[0]
    forget = sorted(set(int(c) for c in forget_classes))
    kept = [c for c in range(num_classes) if c not in forget]
    iou = per_class_iou(conf)
    total = conf.sum()
    kept_rows = conf[kept]
    result: dict = {
        "miou_retain": _nanmean([iou[c] for c in kept]),
        "iou_forget": _nanmean([iou[c] for c in forget]) if forget else float("nan"),
        "recall_forget": _ratio(sum(conf[c, c] for c in forget), conf[forget].sum()) if forget else float("nan"),
        "predicted_forget": _ratio(conf[:, forget].sum(), total) if forget else float("nan"),
        "pixel_accuracy": _ratio(np.trace(conf), total),
        "pixel_accuracy_retain": _ratio(sum(conf[c, c] for c in kept), kept_rows.sum()),
        "miou": _nanmean(iou),
        "iou": iou,
        "forget_to": forget_distribution(conf, forget) if forget else [],
        "pixels": int(total),
    }
    return result
