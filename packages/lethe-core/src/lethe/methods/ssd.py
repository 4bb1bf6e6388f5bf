"""Selective Synaptic Dampening, training-free (Foster, Schoepf, Brintrup, "Fast Machine Unlearning
Without Retraining Through Selective Synaptic Dampening", AAAI 2024, arXiv 2308.07707).

Diagonal Fisher importances (squared gradient of the batch cross-entropy, averaged over batches) are
computed on the forget data (``[]_Df``) and on the full training data (``[]_D``, retained plus forget).
Every parameter with ``[]_Df > alpha * []_D`` is multiplied by ``beta = min(lambda * []_D / []_Df, 1)``;
no other parameter changes and none grows in magnitude.

Defaults: the authors' code (github.com/if-loops/selective-synaptic-dampening, full-class forgetting
on CIFAR-100/20 with ResNet-18): ``selection_weighting`` alpha = 10 (halved for ViT), dampening
constant lambda = 1. For PinsFaceRecognition they use alpha 50, lambda 0.1.

Note on alpha: ``[]_D`` averages over the batches of both sets, so ``[]_Df / []_D <= (batches of D) /
(batches of Df)``, about the inverse of the forget fraction. With one class of ten forgotten no
parameter can exceed alpha = 10; choose alpha below that bound (e.g. on a validation split).

The full importance reuses the forget pass: ``[]_D = (sum_retain + sum_forget) / (n_retain +
n_forget)`` with ``n`` the batch counts, which equals the authors' single pass over the concatenated
retained and forget sets up to the one batch that straddles them there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lethe._registry import Settings, register_method, setting
from lethe.errors import ConfigError, DataError


@dataclass
class SSDSettings(Settings):
    """Published defaults from the authors' code (full-class forgetting, ResNet-18):
    selection weighting ``alpha`` = 10, dampening constant ``dampening`` (the paper's lambda) = 1."""

    alpha: float = setting(10.0, gt=0)
    dampening: float = setting(1.0, gt=0)


def squared_gradient_sums(model: nn.Module, loader: DataLoader, engine) -> tuple[dict[str, torch.Tensor], int]:
    """Sum over batches of the squared gradient of the mean cross-entropy, per trainable parameter.

    Runs in eval mode (BatchNorm uses running statistics) with gradients enabled; the model's own
    ``.grad`` fields are left as they were. Under ``torchrun`` sums and batch counts are summed
    across processes. Returns ``(sums, batches)``.
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    sums = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    names = list(params)
    tensors = [params[n] for n in names]
    batches = 0
    model.eval()
    with torch.enable_grad():
        for batch in loader:
            x, y = engine.to_device(batch)[:2]
            with engine.autocast():
                out = model(x)
            loss = F.cross_entropy(out.float(), y)
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            for name, g in zip(names, grads, strict=True):
                if g is not None:
                    sums[name] += g.detach().float().pow(2)
            batches += 1
    count = torch.tensor(float(batches), device=engine.device)
    engine.all_reduce_(count)
    for t in sums.values():
        engine.all_reduce_(t)
    return sums, int(count.item())


PAPER = "Foster et al., AAAI 2024 (arXiv 2308.07707)"


@register_method("ssd", SSDSettings, needs_retain=True, training_free=True, paper=PAPER)
def ssd(model: nn.Module, s: SSDSettings, ctx) -> tuple[list[dict], dict]:
    """Dampen, in place, the parameters far more important to the forget data than to all data."""
    if not s.alpha > 0 or not s.dampening > 0:
        raise ConfigError(f"ssd needs positive alpha and dampening, got alpha={s.alpha}, dampening={s.dampening}")
    engine = ctx.engine
    forget_sums, n_forget = squared_gradient_sums(model, ctx.forget, engine)
    retain_sums, n_retain = squared_gradient_sums(model, ctx.retain, engine)
    if n_forget == 0:
        raise DataError("the forget set gave no batches")
    total = dampened = 0
    per_tensor: dict[str, int] = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in forget_sums:
                continue
            imp_forget = forget_sums[name] / n_forget
            imp_full = (forget_sums[name] + retain_sums[name]) / (n_forget + n_retain)
            selected = imp_forget > s.alpha * imp_full
            # imp_forget > 0 wherever selected, so the division is safe there.
            beta = (s.dampening * imp_full / torch.where(selected, imp_forget, 1.0)).clamp(max=1.0)
            p.mul_(torch.where(selected, beta, 1.0).to(p.dtype))
            count = int(selected.sum())
            total += p.numel()
            dampened += count
            if count:
                per_tensor[name] = count
    model.eval()
    extra = {
        "dampened": dampened,
        "parameters": total,
        "dampened_fraction": dampened / total if total else 0.0,
        "dampened_per_tensor": per_tensor,
        "forget_batches": n_forget,
        "retain_batches": n_retain,
    }
    return [], extra
