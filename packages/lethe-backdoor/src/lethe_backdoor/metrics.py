"""Backdoor metrics with BackdoorBench's conventions (Wu et al., arXiv 2206.12654; methods.md s.3).

- ``clean_acc``: accuracy on the clean test set (every class).
- ``asr``: attack success rate, the share of trigger-stamped test images whose TRUE label is not
  the target that are predicted as the target.
- ``robust_acc``: the share of those same stamped images predicted as their true label.

All in percent. Stamped images of the target class are excluded from ``asr`` and ``robust_acc``
(predicting the target there is correct, not an attack success).
"""

from __future__ import annotations

import math

from torch import nn

from lethe.engine import Engine
from lethe.metrics import Outputs, accuracy, collect_outputs
from lethe_backdoor.poison import BackdoorSplits, stamped_test
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.pipeline import EVAL_BATCH, loader

METRICS = ("clean_acc", "asr", "robust_acc")


def attack_rates(stamped: Outputs, target: int) -> dict[str, float]:
    """``asr`` and ``robust_acc`` (percent) from outputs on stamped images with their TRUE labels;
    images whose true label is ``target`` are left out. NaN when none is left."""
    kept = stamped.subset(stamped.labels != target)
    if kept.labels.numel() == 0:
        return {"asr": float("nan"), "robust_acc": float("nan")}
    pred = kept.logits.argmax(1)
    return {
        "asr": 100.0 * (pred == target).float().mean().item(),
        "robust_acc": 100.0 * (pred == kept.labels).float().mean().item(),
    }


def backdoor_metrics(clean: Outputs, stamped: Outputs, target: int) -> dict[str, float]:
    """``clean_acc``, ``asr`` and ``robust_acc`` (percent) from collected outputs."""
    return {"clean_acc": accuracy(clean), **attack_rates(stamped, target)}


def outputs_on(model: nn.Module, data: ImageData, bundle: DatasetBundle, engine: Engine) -> Outputs:
    """Outputs of ``model`` (eval mode, no augmentation) on ``data``."""
    return collect_outputs(model, loader(engine, data, bundle, EVAL_BATCH, train=False), engine)


def metrics_on(
    model: nn.Module, clean: ImageData, stamped_true: ImageData, target: int, bundle: DatasetBundle, engine: Engine
) -> dict[str, float]:
    """The three metrics of ``model`` on ``clean`` images and ``stamped_true`` (stamped images with
    their TRUE labels)."""
    return backdoor_metrics(
        outputs_on(model, clean, bundle, engine), outputs_on(model, stamped_true, bundle, engine), target
    )


def evaluate_backdoor(
    model: nn.Module, splits: BackdoorSplits, engine: Engine, stamped: ImageData | None = None
) -> dict[str, float]:
    """The three metrics on the clean test set and its stamped non-target images.

    ``stamped`` (from ``poison.stamped_test``) can be passed to avoid stamping again.
    """
    stamped = stamped if stamped is not None else stamped_test(splits)
    return metrics_on(model, splits.test, stamped, splits.target, splits.bundle, engine)


def budget_score(
    model: nn.Module, clean: ImageData, stamped_true: ImageData, target: int, bundle: DatasetBundle, engine: Engine
) -> float:
    """``clean_acc * (1 - asr)`` (fractions) on the defender's own held-out images: the criterion
    SVD's alphas are tuned with (the Deep Unlearning score ``retain_acc * (1 - forget_acc)`` with
    the backdoor's two numbers; no test data is used)."""
    m = metrics_on(model, clean, stamped_true, target, bundle, engine)
    asr = 0.0 if math.isnan(m["asr"]) else m["asr"]
    return (m["clean_acc"] / 100.0) * (1.0 - asr / 100.0)
