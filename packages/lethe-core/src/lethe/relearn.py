"""``relearn_steps``: how fast does fine-tuning on a handful of forget samples bring the class back?

methods.md s.3: fine-tune the unlearned model on a few forget samples and count the SGD steps
until forget-test accuracy passes 50 %; compare with the retrain oracle under the same budget.
A model that truly never learned the class should need about as many steps as the oracle.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from lethe._registry import Settings, setting
from lethe.engine import Engine, sgd
from lethe.metrics import accuracy, collect_outputs


@dataclass
class RelearnSettings(Settings):
    """Full-batch SGD on the handful of samples; accuracy checked after every step. The model
    stays in eval mode (BatchNorm statistics are not re-estimated from a handful of samples).
    ``threshold`` is a forget-test accuracy in percent."""

    steps: int = setting(50, ge=1)
    lr: float = setting(0.01, gt=0, meaning="learning rate")
    momentum: float = setting(0.9, ge=0, lt=1)
    threshold: float = setting(50.0, ge=0, lt=100)


def relearn_steps(
    model: nn.Module,
    samples: tuple[torch.Tensor, torch.Tensor],
    forget_test: DataLoader,
    engine: Engine | None = None,
    settings: RelearnSettings | None = None,
) -> int:
    """Steps until forget-test accuracy exceeds ``threshold`` (0 if it already does);
    ``settings.steps + 1`` means it did not within the budget. The model is not modified."""
    s = settings or RelearnSettings()
    engine = engine or Engine(progress=False)
    student = engine.prepare(copy.deepcopy(model))
    if accuracy(collect_outputs(student, forget_test, engine)) > s.threshold:
        return 0
    x, y = engine.to_device(samples)
    optimizer = sgd(student, s.lr, s.momentum)
    student.eval()
    for step in range(1, s.steps + 1):
        with engine.autocast():
            loss = nn.functional.cross_entropy(student(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if accuracy(collect_outputs(student, forget_test, engine)) > s.threshold:
            return step
    return s.steps + 1
