"""Retrain: the exact-unlearning oracle as a method (re-initialise, train from scratch on retained data).

The reference every approximate method is measured against (methods.md s.3). Settings follow the CIFAR
recipe of the l1-sparse code (Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023,
arXiv 2304.04934; github.com/OPTML-Group/Unlearn-Sparse) that SalUn (Fan et al., ICLR 2024, arXiv
2310.12508; github.com/OPTML-Group/Unlearn-Saliency) reuses: SGD, lr 0.1, momentum 0.9, weight decay
5e-4, 182 epochs (their ``arg_parser.py`` training defaults; their README runs the retrain baseline with
``--unlearn_epochs 160``). They decay the learning rate in steps (x0.1 at epochs 91 and 136); we use a
cosine decay over the whole run, as the project's own training recipe does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lethe._registry import Settings, register_method, setting
from lethe.engine import cosine_schedule, sgd
from lethe.methods._common import check_within_epochs, reset_parameters


@dataclass
class RetrainSettings(Settings):
    """Defaults: the l1-sparse / SalUn CIFAR-10 ResNet-18 training recipe (SGD lr 0.1, momentum 0.9,
    weight decay 5e-4, 182 epochs, no warm-up), with a per-batch cosine decay to zero over the run."""

    epochs: int = setting(182, ge=0)  # 0: re-initialise only (the oracle's starting point)
    lr: float = setting(0.1, gt=0, meaning="learning rate")
    momentum: float = setting(0.9, ge=0, lt=1)
    weight_decay: float = setting(5e-4, ge=0)
    warmup_epochs: int = setting(0, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_within_epochs(self, "warmup_epochs")


PAPER = "retrain oracle; recipe of Jia et al., NeurIPS 2023 (arXiv 2304.04934)"


@register_method("retrain", RetrainSettings, needs_retain=True, paper=PAPER)
def retrain(model: nn.Module, s: RetrainSettings, ctx) -> tuple[list[dict], dict]:
    """Re-initialise ``model`` in place and train it with cross-entropy on ``ctx.retain`` only.

    Initialisation draws from the global torch generator, so the caller's seed fixes it.
    """
    engine = ctx.engine
    reset_parameters(model)
    steps_per_epoch = len(ctx.retain)
    optimizer = sgd(model, s.lr, s.momentum, s.weight_decay)
    scheduler = cosine_schedule(optimizer, s.epochs * steps_per_epoch, s.warmup_epochs * steps_per_epoch)

    def step(net: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        x, y = batch[0], batch[1]
        return nn.functional.cross_entropy(net(x).float(), y), {}

    log = engine.fit(model, ctx.retain, step, optimizer, s.epochs, scheduler=scheduler, desc="retrain")
    model.eval()
    return log, {}
