"""SCRUB (Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning",
NeurIPS 2023, arXiv 2302.09880).

A student initialised from the model and a frozen teacher copy of it. Each epoch the student first
takes "max-steps" on the forget data (maximise ``KL(teacher || student)`` at temperature ``T``, i.e.
minimise its negative), during the first ``msteps`` epochs only, then "min-steps" on the retained
data (minimise ``alpha * KL + gamma * CE``). One SGD optimizer (momentum state included) serves both
phases, as in the authors' code.

Defaults: the SCRUB repository's CIFAR-10 class-forgetting settings (``large_scale_unlearning.ipynb``
of github.com/meghdadk/SCRUB): SGD, lr 5e-4, momentum 0.9, weight decay 5e-4, 3 epochs
(``sgda_epochs``), ``msteps=2``, ``kd_T=4``, ``alpha=0.001`` (KL weight), ``gamma=0.99`` (CE weight),
lr decayed by 0.1 after epochs 3, 5 and 9 (no decay within the 3 default epochs). The KL term is the
repository's ``DistillKL``: ``KL(softmax(t/T) || softmax(s/T)) * T^2``, batch mean. Batch sizes are
the loaders' (the notebook uses 512 forget and 256 retained samples per batch).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lethe._registry import Settings, register_method, setting
from lethe.engine import sgd
from lethe.errors import ConfigError


@dataclass
class SCRUBSettings(Settings):
    """Published defaults: the SCRUB repository's CIFAR-10 class-forgetting run (SGD lr 5e-4,
    momentum 0.9, weight decay 5e-4, 3 epochs, max-steps in the first 2, kd_T 4, alpha 0.001,
    gamma 0.99, lr x0.1 after epochs 3, 5, 9)."""

    epochs: int = setting(3, ge=1)
    msteps: int = setting(2, ge=0)
    lr: float = setting(5e-4, gt=0, meaning="learning rate")
    momentum: float = setting(0.9, ge=0, lt=1)
    weight_decay: float = setting(5e-4, ge=0)
    alpha: float = setting(0.001, ge=0)
    gamma: float = setting(0.99, ge=0)
    kd_T: float = setting(4.0, gt=0)
    lr_decay_epochs: tuple[int, ...] = setting((3, 5, 9), ge=0)
    lr_decay_rate: float = setting(0.1, gt=0, le=1)


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``KL(softmax(t/T) || softmax(s/T)) * T^2``, averaged over the batch (SCRUB's ``DistillKL``)."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=1)
    p = F.softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_q, p, reduction="batchmean") * temperature**2


def epoch_lr(s: SCRUBSettings, epoch: int) -> float:
    """Learning rate of 1-based ``epoch``: ``lr * rate ** #(decay epochs < epoch)`` (the repository's rule)."""
    return s.lr * s.lr_decay_rate ** sum(epoch > d for d in s.lr_decay_epochs)


@register_method("scrub", SCRUBSettings, needs_retain=True, paper="Kurmanji et al., NeurIPS 2023 (arXiv 2302.09880)")
def scrub(model: nn.Module, s: SCRUBSettings, ctx) -> tuple[list[dict], dict]:
    """Alternate max-steps on ``ctx.forget`` and min-steps on ``ctx.retain``, updating ``model`` in place.

    Log rows carry ``phase`` ("max" or "min") and the 1-based SCRUB ``epoch``.
    """
    if s.epochs < 1 or s.msteps < 0:
        raise ConfigError(f"scrub needs epochs >= 1 and msteps >= 0, got epochs={s.epochs}, msteps={s.msteps}")
    if not s.kd_T > 0:
        raise ConfigError(f"scrub needs a positive temperature kd_T, got {s.kd_T}")
    engine = ctx.engine
    teacher = copy.deepcopy(model).eval().requires_grad_(False)

    def max_step(student: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        x = batch[0]
        with torch.no_grad():
            t = teacher(x)
        kl = distill_kl(student(x), t, s.kd_T)
        return -kl, {"forget_kl": kl.detach()}

    def min_step(student: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        x, y = batch[0], batch[1]
        with torch.no_grad():
            t = teacher(x)
        out = student(x)
        kl = distill_kl(out, t, s.kd_T)
        ce = F.cross_entropy(out.float(), y)
        return s.alpha * kl + s.gamma * ce, {"retain_kl": kl.detach(), "retain_ce": ce.detach()}

    optimizer = sgd(model, s.lr, s.momentum, s.weight_decay)
    log: list[dict] = []
    for epoch in range(1, s.epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr(s, epoch)
        phases = [("max", ctx.forget, max_step)] if epoch <= s.msteps else []
        phases.append(("min", ctx.retain, min_step))
        for phase, loader, step in phases:
            rows = engine.fit(model, loader, step, optimizer, 1, desc=f"scrub {phase} {epoch}/{s.epochs}")
            for row in rows:
                row.update(epoch=epoch, phase=phase)
            log.extend(rows)
    model.eval()
    return log, {"max_epochs": min(s.msteps, s.epochs)}
