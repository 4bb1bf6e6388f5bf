"""GA / NegGrad: gradient ascent on the cross-entropy of the forget data.

Baseline of Thudi et al. ("Unrolling SGD", EuroS&P 2022, arXiv 2109.13398) and Graves et al. (AAAI 2021,
arXiv 2010.10981), as run by the l1-sparse code (Jia et al., "Model Sparsity Can Simplify Machine
Unlearning", NeurIPS 2023, arXiv 2304.04934; github.com/OPTML-Group/Unlearn-Sparse) and SalUn (Fan et
al., ICLR 2024, arXiv 2310.12508; github.com/OPTML-Group/Unlearn-Saliency). Defaults are their CIFAR-10
ResNet-18 command: 5 epochs over the forget set, lr 1e-4 (their grid 1e-5 to 1e-3), SGD momentum 0.9,
weight decay 5e-4, constant learning rate. Only the forget data is used; the loss is unbounded, so too
large a learning rate ends in a non-finite loss (an error) or a model that predicts one class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lethe._registry import Settings, register_method, setting
from lethe.engine import sgd


@dataclass
class GradientAscentSettings(Settings):
    """Defaults of the l1-sparse / SalUn GA baseline on CIFAR-10 ResNet-18: 5 epochs, lr 1e-4,
    momentum 0.9, weight decay 5e-4, constant learning rate."""

    epochs: int = setting(5, ge=1)
    lr: float = setting(1e-4, gt=0, meaning="learning rate")
    momentum: float = setting(0.9, ge=0, lt=1)
    weight_decay: float = setting(5e-4, ge=0)


PAPER = "GA / NegGrad as in Jia et al., NeurIPS 2023 (arXiv 2304.04934)"


@register_method("gradient_ascent", GradientAscentSettings, paper=PAPER)
def gradient_ascent(model: nn.Module, s: GradientAscentSettings, ctx) -> tuple[list[dict], dict]:
    """Train ``model`` in place to maximise cross-entropy on ``ctx.forget`` (minimise its negative)."""

    def step(net: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        x, y = batch[0], batch[1]
        forget_ce = nn.functional.cross_entropy(net(x).float(), y)
        return -forget_ce, {"forget_ce": forget_ce.detach()}

    optimizer = sgd(model, s.lr, s.momentum, s.weight_decay)
    log = ctx.engine.fit(model, ctx.forget, step, optimizer, s.epochs, desc="gradient_ascent")
    model.eval()
    return log, {}
