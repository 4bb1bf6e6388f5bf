"""l1-sparse: sparsity-aware unlearning (Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu, "Model Sparsity Can
Simplify Machine Unlearning", NeurIPS 2023, arXiv 2304.04934).

Fine-tune on the retained data with ``CE + gamma_e * ||w||_1`` over all parameters, where the penalty
weight decays linearly per epoch, ``gamma_e = alpha * (1 - e / (epochs - no_l1_epochs))`` for epochs
``e = 0, 1, ...`` before the last ``no_l1_epochs`` (then 0): strong sparsification early, plain
fine-tuning at the end. This follows ``FT_iter(..., with_l1=True)`` of the official code
(github.com/OPTML-Group/Unlearn-Sparse, method ``FT_prune``). Defaults: their CIFAR-10 ResNet-18 command
(10 epochs, lr 0.01, SGD momentum 0.9, weight decay 5e-4, constant learning rate) and alpha 5e-4 (the
official commands leave ``--alpha`` to the user; runs of the code by others use 1e-4 to 5e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lethe._registry import Settings, register_method, setting
from lethe.engine import sgd
from lethe.errors import ConfigError
from lethe.methods._common import check_within_epochs


@dataclass
class L1SparseSettings(Settings):
    """Defaults of the official l1-sparse code on CIFAR-10 ResNet-18: 10 epochs, lr 0.01, momentum
    0.9, weight decay 5e-4, L1 weight alpha 5e-4 decaying linearly per epoch over all epochs
    (``no_l1_epochs`` 0)."""

    epochs: int = setting(10, ge=1)
    lr: float = setting(0.01, gt=0, meaning="learning rate")
    momentum: float = setting(0.9, ge=0, lt=1)
    weight_decay: float = setting(5e-4, ge=0)
    alpha: float = setting(5e-4, ge=0)
    no_l1_epochs: int = setting(0, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_within_epochs(self, "no_l1_epochs")


def l1_weight(s: L1SparseSettings, epoch: int) -> float:
    """Penalty weight in ``epoch`` (0-based), as in the official code (which keeps the full
    ``alpha`` throughout when ``no_l1_epochs == epochs``)."""
    decay_epochs = s.epochs - s.no_l1_epochs
    if decay_epochs == 0:
        return s.alpha
    if epoch < decay_epochs:
        return s.alpha * (1.0 - epoch / decay_epochs)
    return 0.0


def l1_norm(model: nn.Module) -> torch.Tensor:
    """Sum of absolute values of every trainable parameter (float32)."""
    return sum(p.float().abs().sum() for p in model.parameters() if p.requires_grad)


PAPER = "Jia et al., NeurIPS 2023 (arXiv 2304.04934)"


@register_method("l1_sparse", L1SparseSettings, needs_retain=True, paper=PAPER)
def l1_sparse(model: nn.Module, s: L1SparseSettings, ctx) -> tuple[list[dict], dict]:
    """Train ``model`` in place over ``ctx.retain`` with cross-entropy plus the decaying L1 penalty."""
    if s.alpha < 0:
        raise ConfigError(f"l1_sparse alpha must not be negative, got {s.alpha}")
    if not 0 <= s.no_l1_epochs <= s.epochs:
        raise ConfigError(f"l1_sparse no_l1_epochs must lie in [0, epochs], got {s.no_l1_epochs}")
    batches_per_epoch = len(ctx.retain)
    calls = 0

    def step(net: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        nonlocal calls
        weight = l1_weight(s, calls // batches_per_epoch)
        calls += 1
        x, y = batch[0], batch[1]
        ce = nn.functional.cross_entropy(net(x).float(), y)
        norm = l1_norm(net)
        parts = {"ce": ce.detach(), "l1_norm": norm.detach(), "l1_weight": torch.tensor(weight, device=ce.device)}
        return ce + weight * norm, parts

    optimizer = sgd(model, s.lr, s.momentum, s.weight_decay)
    log = ctx.engine.fit(model, ctx.retain, step, optimizer, s.epochs, desc="l1_sparse")
    model.eval()
    return log, {}
