"""Reference SVD unlearning: the published procedure, written plainly (the yardstick, not the library).

Kodge, Saha, Roy, "Deep Unlearning: Fast and Efficient Training-free Approach to Class Forgetting",
TMLR 2024 (arXiv 2312.00761); methods.md s.2. What this file does, step by step:

1. Model in eval mode. ONE batch of retained samples and ONE batch of forget samples go through it
   in a single forward pass each; a forward pre-hook on every ``Conv2d`` and ``Linear`` records the
   layer's input as a ``d x n`` activation matrix ``R`` (float32, on the model's device).
2. ``Linear``: columns are the samples (or tokens). ``Conv2d``: the input is unfolded into patches
   with the layer's kernel size, stride, padding and dilation (``F.unfold``; ``d = C_in*k*k``). If
   there are more than ``max_patches`` (10,000) patch columns (``N * L`` of them: samples times
   output positions), a random ``max_patches`` of them are kept, drawn uniformly without replacement
   from all ``N * L`` by a seeded ``torch.randperm``. This is our reading of the published "one
   random window, at most 10,000 patches" rule: a bounded uniform random subsample. The selected
   columns are gathered chunk by chunk of samples, which gives exactly the columns a full unfold
   followed by the same selection gives, without materialising the full unfold (so the reference's
   memory is, if anything, flattered). The published code builds patches with Python loops; we use
   ``F.unfold``, which is faster, so every speed-up measured against this file is conservative.
3. Dense ``torch.linalg.svd(R, full_matrices=False)`` in float32; ``lambda_i = s_i^2 / sum_j s_j^2``;
   ``w_i = alpha lambda_i / ((alpha - 1) lambda_i + 1)``; ``M = U diag(w) U^T``.
4. ``P = I - (M_f - M_f M_r)`` and ``W <- W_flat P^T`` for every layer (biases and norm layers
   untouched). Both activation sets are recorded on the original model before any layer changes.

Only ungrouped convolutions are handled, as in the published code. No alpha tuning: the alphas are
given (CIFAR-10 defaults ``alpha_r=100``, ``alpha_f=3``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: Most patch columns kept per conv layer and batch (the published bound).
MAX_PATCHES = 10_000
#: Samples unfolded at once while gathering the selected patch columns.
UNFOLD_CHUNK = 256


@dataclass
class ReferenceSVDSettings:
    """Published CIFAR-10 settings; ``max_patches=None`` keeps every patch (for exactness tests)."""

    alpha_r: float = 100.0
    alpha_f: float = 3.0
    max_patches: int | None = MAX_PATCHES
    seed: int = 0


def _conv_patches(conv: nn.Conv2d, x: torch.Tensor, max_patches: int | None, gen: torch.Generator) -> torch.Tensor:
    """``d x n`` patch matrix of ``conv``'s input ``x``, randomly subsampled to ``max_patches`` columns."""
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise NotImplementedError("the published procedure handles ungrouped, zero-padded convolutions only")

    def unfold(part: torch.Tensor) -> torch.Tensor:  # [n, d, L] -> [d, n*L]
        cols = F.unfold(part, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
        return cols.permute(1, 0, 2).reshape(cols.shape[1], -1)

    n = x.shape[0]
    length = unfold(x[:1]).shape[1]
    if max_patches is None or n * length <= max_patches:
        return unfold(x)
    keep = torch.randperm(n * length, generator=gen)[:max_patches].sort().values.to(x.device)
    parts = []
    for start in range(0, n, UNFOLD_CHUNK):
        lo, hi = start * length, min(n, start + UNFOLD_CHUNK) * length
        sel = keep[(keep >= lo) & (keep < hi)] - lo
        if len(sel):
            parts.append(unfold(x[start : start + UNFOLD_CHUNK])[:, sel])
    return torch.cat(parts, dim=1)


def layers_of(model: nn.Module) -> dict[str, nn.Module]:
    """Every ``Conv2d`` and ``Linear`` the procedure updates, by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


@torch.no_grad()
def record_activations(
    model: nn.Module, batch: torch.Tensor, settings: ReferenceSVDSettings
) -> dict[str, torch.Tensor]:
    """One forward pass of ``batch``; returns name -> ``d x n`` float32 input activations."""
    gen = torch.Generator().manual_seed(settings.seed)
    acts: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def fn(module: nn.Module, args: tuple) -> None:
            x = args[0].detach().float()
            if isinstance(module, nn.Conv2d):
                acts[name] = _conv_patches(module, x, settings.max_patches, gen)
            else:
                acts[name] = x.reshape(-1, x.shape[-1]).t()

        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers_of(model).items()]
    model.eval()
    try:
        model(batch)
    finally:
        for h in handles:
            h.remove()
    return acts


def scaled_projector(activations: torch.Tensor, alpha: float) -> torch.Tensor:
    """``M = U diag(w) U^T`` from a dense SVD of the ``d x n`` activation matrix."""
    u, s, _ = torch.linalg.svd(activations, full_matrices=False)
    energy = s**2
    lam = energy / energy.sum().clamp_min(torch.finfo(energy.dtype).tiny)
    w = alpha * lam / ((alpha - 1.0) * lam + 1.0)
    return (u * w) @ u.t()


@torch.no_grad()
def svd_unlearn_reference(
    model: nn.Module, retain: torch.Tensor, forget: torch.Tensor, settings: ReferenceSVDSettings | None = None
) -> nn.Module:
    """Project every Conv2d / Linear weight of ``model`` in place; ``retain`` and ``forget`` are
    one input batch each (on the model's device). Returns ``model`` (in eval mode)."""
    s = settings or ReferenceSVDSettings()
    r_acts = record_activations(model, retain, s)
    f_acts = record_activations(model, forget, s)
    for name, module in layers_of(model).items():
        if name not in r_acts or name not in f_acts:
            continue
        m_r = scaled_projector(r_acts.pop(name), s.alpha_r)
        m_f = scaled_projector(f_acts.pop(name), s.alpha_f)
        eye = torch.eye(m_f.shape[0], dtype=m_f.dtype, device=m_f.device)
        projection = eye - (m_f - m_f @ m_r)
        w = module.weight
        w.copy_((w.reshape(w.shape[0], -1).float() @ projection.t()).reshape(w.shape).to(w.dtype))
    return model.eval()
