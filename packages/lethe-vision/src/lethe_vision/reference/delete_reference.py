"""Reference DELETE: the published per-batch loop, written plainly (the yardstick, not the library).

Zhou et al., "Decoupled Distillation to Erase", CVPR 2025 (arXiv 2503.23751); methods.md s.1.
The teacher is a frozen copy of the original model in eval mode, the student a copy that trains.
Per batch of forget samples: teacher logits with every forgotten class set to -1e10,
``p = softmax(z_masked / T)``, loss ``KL(p || softmax(student / T))`` with batch mean (no ``T^2``,
as published; ``T = 1``), SGD lr 1e-3, momentum 0.9, no weight decay, 20 epochs, float32, no
channels_last, no autocast, a plain ``DataLoader`` loop (the caller passes the loader, training
augmentation on).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MASK_VALUE = -1e10


@dataclass
class ReferenceDeleteSettings:
    """Published CIFAR-10 ResNet-18 settings (the authors' run script)."""

    epochs: int = 20
    lr: float = 1e-3
    momentum: float = 0.9
    temperature: float = 1.0


def reference_delete_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, forget_classes: Sequence[int], temperature: float = 1.0
) -> torch.Tensor:
    """``KL(softmax(masked teacher / T) || softmax(student / T))``, batch mean, as published."""
    masked = teacher_logits.detach().clone()
    masked[:, list(forget_classes)] = MASK_VALUE
    p = F.softmax(masked / temperature, dim=1)
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), p, reduction="batchmean")


def delete_reference(
    model: nn.Module,
    loader: Iterable,
    forget_classes: Sequence[int],
    settings: ReferenceDeleteSettings | None = None,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
) -> list[float]:
    """Train ``model`` in place on ``loader`` of ``(x, y)`` forget batches; returns the mean loss of
    each epoch. ``stop()``, if given, is asked after every epoch and ends training when True."""
    s = settings or ReferenceDeleteSettings()
    model = model.to(device)
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=0.0)
    losses = []
    for _ in range(s.epochs):
        model.train()
        total, batches = 0.0, 0
        for x, _y in loader:
            x = x.to(device)
            with torch.no_grad():
                t = teacher(x)
            loss = reference_delete_loss(model(x), t, forget_classes, s.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        losses.append(total / max(1, batches))
        if stop is not None and stop():
            break
    return losses
