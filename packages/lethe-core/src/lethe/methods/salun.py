"""SalUn: saliency unlearning (Fan, Liu, Zhang, Wong, Wei, Liu, "SalUn: Empowering Machine Unlearning
via Gradient-based Weight Saliency in Both Image Classification and Generation", ICLR 2024,
arXiv 2310.12508).

1. Saliency: the gradient of the forget loss (cross-entropy summed over the forget set, model in
   eval mode) with respect to every trainable weight. The mask keeps the top ``threshold`` share of
   ALL weights by gradient magnitude, one global ranking across layers (as the official
   ``Classification/generate_mask.py`` does; exactly ``int(threshold * total)`` weights).
2. Random-label fine-tuning as in ``random_label`` (each epoch one shuffled pass over the forget
   samples, labelled with random other classes, mixed with the retained samples) in which only
   salient weights move: a hook on every parameter multiplies its gradient by the mask. Weight
   decay is applied inside the mask only (folded into the same hook), so weights outside the mask
   stay exactly at their original values and their momentum buffers stay zero; the current official
   ``unlearn/RL.py`` reaches the same end by restoring masked-out weights and momentum after each
   step. BatchNorm running statistics are buffers, not weights, and are updated as in any training.

Defaults: the repository's ResNet-18 CIFAR-10 command (``Classification/README.md``: ``main_random.py
--unlearn RL --unlearn_epochs 10 --unlearn_lr 0.013 --mask_path mask/with_0.5.pt``; published for
10 % random-data forgetting, the class-wise runs use the same scripts with ``--class_to_replace``)
with its ``arg_parser.py`` defaults (SGD momentum 0.9, weight decay 5e-4, constant rate).

Our differences from the official code: the fine-tuning loop and random labels of ``random_label``
(mixed batches, other classes only), the saliency gradient is that of the SUM of the forget
cross-entropy at the original weights (the code sums per-batch means, which ranks weights the same
up to the last batch's weight; an older version also stepped an optimiser while accumulating), and
under ``torchrun`` the saliency gradients are summed across processes so every process uses one
mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from lethe._registry import Settings, register_method, setting
from lethe.errors import ConfigError, DataError
from lethe.methods.random_label import fit_random_labels


@dataclass
class SalUnSettings(Settings):
    """Published defaults: the SalUn repository's ResNet-18 CIFAR-10 run (mask of the top 50 % of
    weights by forget-loss gradient magnitude; 10 epochs of masked random-label fine-tuning, SGD
    lr 0.013, momentum 0.9, weight decay 5e-4, constant rate). ``use_retain`` as in ``random_label``."""

    epochs: int = setting(10, ge=1)
    lr: float = setting(0.013, gt=0, meaning="learning rate")
    momentum: float = setting(0.9, ge=0, lt=1)
    weight_decay: float = setting(5e-4, ge=0)
    threshold: float = setting(0.5, gt=0, le=1)
    use_retain: bool = True


def saliency_mask(model: nn.Module, loader: DataLoader, threshold: float, engine) -> dict[str, torch.Tensor]:
    """``{parameter name: 0/1 mask}`` keeping the top ``threshold`` share of all trainable weights by
    ``|d sum_forget CE / d w|`` (one global ranking; model in eval mode, float32, no autocast)."""
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"saliency threshold must be in (0, 1], got {threshold}")
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ConfigError("the model has no trainable parameters")
    was_training = model.training
    model.eval()
    grads = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    seen = 0
    try:
        for batch in loader:
            batch = engine.to_device(batch)
            x, y = batch[0], batch[1]
            loss = nn.functional.cross_entropy(model(x).float(), y, reduction="sum")
            found = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for name, g in zip(params, found, strict=True):
                if g is not None:
                    grads[name] += g.float()
            seen += len(y)
    finally:
        model.train(was_training)
    if seen == 0:
        raise DataError("the forget set gave no samples for the saliency mask")
    for g in grads.values():
        engine.all_reduce_(g)
    flat = torch.cat([g.abs().flatten() for g in grads.values()])
    keep = int(threshold * flat.numel())
    if keep == 0:
        raise ConfigError(f"saliency threshold {threshold} keeps no weight of {flat.numel()}")
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    chosen[torch.topk(flat, keep, sorted=False).indices] = True
    masks, start = {}, 0
    for name, p in params.items():
        n = p.numel()
        masks[name] = chosen[start : start + n].view(p.shape).to(p.dtype)
        start += n
    return masks


def _masked_gradient(param: torch.Tensor, mask: torch.Tensor, weight_decay: float):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        if weight_decay:
            grad = grad + weight_decay * param.detach()
        return grad * mask

    return hook


@register_method("salun", SalUnSettings, needs_retain=True, paper="Fan et al., ICLR 2024 (arXiv 2310.12508)")
def salun(model: nn.Module, s: SalUnSettings, ctx) -> tuple[list[dict], dict]:
    """Random-label fine-tuning of the salient weights only, in place."""
    if s.weight_decay < 0:
        raise ConfigError(f"weight decay must not be negative, got {s.weight_decay}")
    masks = saliency_mask(model, ctx.forget, s.threshold, ctx.engine)
    params = dict(model.named_parameters())
    handles = [params[n].register_hook(_masked_gradient(params[n], m, s.weight_decay)) for n, m in masks.items()]
    try:
        log = fit_random_labels(model, ctx, s, "salun", weight_decay=0.0)  # decay: inside the mask, by the hooks
    finally:
        for handle in handles:
            handle.remove()
    model.eval()
    salient = int(sum(m.sum().item() for m in masks.values()))
    total = sum(m.numel() for m in masks.values())
    extra = {
        "salient_weights": salient,
        "total_weights": total,
        "mask_share": salient / total,
        "layer_share": {n: float(m.mean().item()) for n, m in masks.items()},
    }
    return log, extra
