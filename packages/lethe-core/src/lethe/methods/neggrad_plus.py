"""NegGrad+: descend on retained data while ascending on forget data (Kurmanji, Triantafillou, Hayes,
Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023, arXiv 2302.09880).

Loss per step: ``alpha * CE(retain batch) - (1 - alpha) * CE(forget batch)``. As in the SCRUB repository
(github.com/meghdadk/SCRUB, ``train_negrad`` and the notebooks' ``run_neggrad_epoch``), an epoch is one
pass over the retained data with the (smaller) forget set cycled alongside: the retained loss keeps the
model useful at every step, and the forget set is revisited as often as needed. Defaults are the SCRUB
notebooks' NegGrad+ cell: alpha 0.95, 10 epochs, lr 0.01, plain SGD (no momentum, no weight decay).
Two departures: the notebooks add ``alpha * (wd / 2) * ||w - w_0||^2`` with the training run's weight
decay (it differs per dataset, so we leave it out), and run the model in eval mode there while their
``train_negrad`` loop uses train mode, which we follow.

Both batches go through the network in one forward pass (concatenated), so DistributedDataParallel
sees a single forward per backward; BatchNorm then sees their union in training mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lethe._registry import Settings, register_method, setting
from lethe.engine import sgd
from lethe.errors import ConfigError
from lethe.methods._common import cycle


@dataclass
class NegGradPlusSettings(Settings):
    """Defaults of the SCRUB repository's NegGrad+ runs: alpha 0.95 (weight of the retained loss),
    10 epochs over the retained data, lr 0.01, SGD without momentum or weight decay."""

    alpha: float = setting(0.95, ge=0, le=1)
    epochs: int = setting(10, ge=1)
    lr: float = setting(0.01, gt=0, meaning="learning rate")
    momentum: float = setting(0.0, ge=0, lt=1)
    weight_decay: float = setting(0.0, ge=0)


PAPER = "Kurmanji et al., NeurIPS 2023 (arXiv 2302.09880)"


@register_method("neggrad_plus", NegGradPlusSettings, needs_retain=True, paper=PAPER)
def neggrad_plus(model: nn.Module, s: NegGradPlusSettings, ctx) -> tuple[list[dict], dict]:
    """Train ``model`` in place over ``ctx.retain``, one cycled ``ctx.forget`` batch per retained batch."""
    if not 0.0 <= s.alpha <= 1.0:
        raise ConfigError(f"neggrad_plus alpha must lie in [0, 1], got {s.alpha}")
    forget_batches = cycle(ctx.forget, ctx.engine)

    def step(net: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        xr, yr = batch[0], batch[1]
        xf, yf = next(forget_batches)[:2]
        logits = net(torch.cat([xr, xf])).float()
        retain_ce = nn.functional.cross_entropy(logits[: len(xr)], yr)
        forget_ce = nn.functional.cross_entropy(logits[len(xr) :], yf)
        loss = s.alpha * retain_ce - (1.0 - s.alpha) * forget_ce
        return loss, {"retain_ce": retain_ce.detach(), "forget_ce": forget_ce.detach()}

    optimizer = sgd(model, s.lr, s.momentum, s.weight_decay)
    log = ctx.engine.fit(model, ctx.retain, step, optimizer, s.epochs, desc="neggrad_plus")
    model.eval()
    return log, {}
