"""Pieces shared by the gradient-based methods: cycling loaders, random labels, re-initialisation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader


def cycle(loader: DataLoader, engine) -> Iterator[Any]:
    """Endless device batches from ``loader`` (a new epoch each time it runs out)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield engine.to_device(batch)
        if empty:
            raise ValueError("cannot cycle an empty loader")


def random_other_labels(
    labels: torch.Tensor, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A uniformly random label different from each true label (class-wise forgetting's RL)."""
    offset = torch.randint(1, num_classes, labels.shape, device="cpu", generator=generator).to(labels.device)
    return (labels + offset) % num_classes


def reset_parameters(model: nn.Module) -> nn.Module:
    """Re-initialise every submodule that has ``reset_parameters`` (and norm running stats)."""
    for module in model.modules():
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model
