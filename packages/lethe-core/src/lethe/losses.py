"""The DELETE loss: masked ("decoupled") distillation (Zhou et al., CVPR 2025, arXiv 2503.23751).

``KL(p || q)`` with ``p`` the teacher distribution after masking the forgotten classes and
``q`` the student's. With ``qF`` the student mass on masked classes and ``q~`` its
renormalised distribution over the rest, ``KL(p||q) = KL(p||q~) - log(1 - qF)``: the second
(forgetting) term pushes mass off the forgotten classes, the first (retention) term keeps the
teacher's knowledge of how the sample relates to the remaining classes. See methods.md s.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MASK_VALUE = -1e10


@dataclass
class DistillationLoss:
    """The loss to optimise plus its two diagnostic terms (detached, batch means)."""

    loss: torch.Tensor
    forget_term: torch.Tensor
    retain_term: torch.Tensor


def class_mask(
    classes: Sequence[int] | torch.Tensor, num_classes: int, device: torch.device | None = None
) -> torch.Tensor:
    """A boolean ``[num_classes]`` mask that is True on ``classes``.

    A boolean tensor is passed through (``[C]`` or per-row ``[rows, C]``).
    """
    if isinstance(classes, torch.Tensor) and classes.dtype == torch.bool:
        return classes.to(device)
    mask = torch.zeros(num_classes, dtype=torch.bool, device=device)
    index = torch.as_tensor(list(classes) if not isinstance(classes, torch.Tensor) else classes)
    if index.numel():
        if int(index.min()) < 0 or int(index.max()) >= num_classes:
            raise ValueError(f"class index out of range for {num_classes} classes: {index.tolist()}")
        mask[index.to(mask.device)] = True
    return mask


def _rows(logits: torch.Tensor) -> torch.Tensor:
    """``[N, C, *spatial]`` -> ``[N * prod(spatial), C]`` in float32."""
    if logits.dim() < 2:
        raise ValueError(f"logits must be [N, C, ...], got shape {tuple(logits.shape)}")
    return logits.float().movedim(1, -1).reshape(-1, logits.shape[1])


def masked_teacher_distribution(
    teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``softmax(z_masked / T)`` over rows ``[R, C]``; masked classes get (numerically) zero mass."""
    z = teacher_logits.masked_fill(mask, MASK_VALUE)
    return F.softmax(z / temperature, dim=-1)


def masked_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask_classes: Sequence[int] | torch.Tensor,
    *,
    temperature: float = 1.0,
    valid: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> DistillationLoss:
    """DELETE loss over logits ``[N, C, ...]`` (classification, face, backdoor, segmentation).

    Args:
        student_logits, teacher_logits: same shape ``[N, C, *spatial]``.
        mask_classes: classes to mask (every forgotten class), or a boolean ``[C]`` mask, or a
            per-row boolean ``[N * prod(spatial), C]`` mask.
        temperature: distillation temperature ``T``; the loss is multiplied by ``T**2``.
        valid: optional boolean ``[N, *spatial]``; rows where it is False (ignore pixels) are
            excluded from the mean.
        weight: optional float ``[N, *spatial]`` per-row weight (e.g. extra weight on pixels of
            the forgotten class); the mean is weighted.
    Returns:
        ``DistillationLoss``: ``loss = KL(p || q) * T^2`` averaged over valid rows, and the
        forgetting term ``-log(1 - qF)`` and retention term ``KL(p || q~)`` (each averaged).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} logits differ in shape"
        )
    s = _rows(student_logits) / temperature
    num_classes = s.shape[1]
    t = _rows(teacher_logits.detach())
    mask = class_mask(mask_classes, num_classes, s.device)
    mask = mask.expand_as(s) if mask.dim() == 1 else mask
    p = masked_teacher_distribution(t, mask, temperature)
    log_q = F.log_softmax(s, dim=-1)
    kl = (torch.xlogy(p, p) - p * log_q).sum(dim=-1)
    lse_all = torch.logsumexp(s, dim=-1)
    lse_keep = torch.logsumexp(s.masked_fill(mask, float("-inf")), dim=-1)
    forget_term = lse_all - lse_keep

    row_weight = torch.ones_like(kl)
    if weight is not None:
        row_weight = weight.reshape(-1).to(kl)
    if valid is not None:
        row_weight = row_weight * valid.reshape(-1).to(kl)
    denom = row_weight.sum().clamp_min(1e-12)
    loss = (kl * row_weight).sum() / denom * temperature**2
    with torch.no_grad():
        f = (forget_term * row_weight).sum() / denom
        k = ((kl - forget_term) * row_weight).sum() / denom
    return DistillationLoss(loss=loss, forget_term=f, retain_term=k)
