"""One confusion matrix per evaluation (methods.md s.3): rows are true classes, columns predicted
classes, counted over valid pixels only (``IGNORE_INDEX`` pixels are excluded)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lethe.engine import Engine
from lethe.errors import DataError
from lethe_segmentation.datasets import IGNORE_INDEX


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """``[C, C]`` int64 counts ``m[true, predicted]`` over pixels whose target is not ``ignore_index``.

    ``pred`` holds class indices (same shape as ``target``) or logits ``[N, C, ...]``.
    """
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape")
    valid = target != ignore_index
    t = target[valid].long()
    p = pred[valid].long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise DataError(f"target class {int(t.max())} is out of range for {num_classes} classes")
    index = t * num_classes + p
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@torch.inference_mode()
def collect_confusion(model: nn.Module, loader: DataLoader, engine: Engine, num_classes: int) -> np.ndarray:
    """Run ``model`` (eval mode) over ``loader`` of ``(images, labels)``; the summed confusion matrix."""
    model = engine.prepare(model)
    was_training = model.training
    model.eval()
    total = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=engine.device)
    try:
        for batch in engine.progress_bar(loader, "evaluate"):
            x, y = engine.to_device(batch)[:2]
            with engine.autocast():
                out = model(x)
            total += confusion_matrix(out.float().argmax(1), y, num_classes)
    finally:
        model.train(was_training)
    engine.all_reduce_(total)
    return total.cpu().numpy()


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, engine: Engine) -> np.ndarray:
    """Predicted class maps ``[N, H, W]`` (uint8) for a batch of normalised images."""
    model = engine.prepare(model)
    was_training = model.training
    model.eval()
    try:
        with engine.autocast():
            out = model(engine.to_device(images))
    finally:
        model.train(was_training)
    return out.float().argmax(1).to(torch.uint8).cpu().numpy()
