"""FT: fine-tune on the retained data only, relying on catastrophic forgetting of the rest.

The standard baseline of Warnecke et al. (NDSS 2023, arXiv 2108.11577) and Golatkar et al. (CVPR 2020,
arXiv 1911.04933) as run by the l1-sparse code (Jia et al., "Model Sparsity Can Simplify Machine
Unlearning", NeurIPS 2023, arXiv 2304.04934; github.com/OPTML-Group/Unlearn-Sparse) and SalUn (Fan et
al., ICLR 2024, arXiv 2310.12508; github.com/OPTML-Group/Unlearn-Saliency). Defaults are their CIFAR-10
ResNet-18 command: 10 epochs, lr 0.01 (their grid 0.01-0.1), SGD momentum 0.9, weight decay 5e-4, a
constant learning rate (their step decay at epochs 91/136 never triggers in 10 epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lethe._registry import Settings, register_method, setting
from lethe.engine import sgd


@dataclass
class FinetuneSettings(Settings):
    """Defaults of the l1-sparse / SalUn FT baseline on CIFAR-10 ResNet-18: 10 epochs, lr 0.01,
    momentum 0.9, weight decay 5e-4, constant learning rate."""

    epochs: int = setting(10, ge=1)
    lr: float = setting(0.01, gt=0, meaning="learning rate")
    momentum: float = setting(0.9, ge=0, lt=1)
    weight_decay: float = setting(5e-4, ge=0)


PAPER = "FT baseline as in Jia et al., NeurIPS 2023 (arXiv 2304.04934)"


@register_method("finetune", FinetuneSettings, needs_retain=True, paper=PAPER)
def finetune(model: nn.Module, s: FinetuneSettings, ctx) -> tuple[list[dict], dict]:
    """Train ``model`` in place with cross-entropy on ``ctx.retain`` (the forget set is not used)."""

    def step(net: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        x, y = batch[0], batch[1]
        return nn.functional.cross_entropy(net(x).float(), y), {}

    optimizer = sgd(model, s.lr, s.momentum, s.weight_decay)
    log = ctx.engine.fit(model, ctx.retain, step, optimizer, s.epochs, desc="finetune")
    model.eval()
    return log, {}
