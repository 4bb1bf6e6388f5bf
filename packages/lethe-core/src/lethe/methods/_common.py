"""Pieces shared by the gradient-based methods: cycling loaders, random labels, re-initialisation,
flagged samples for a loader over forget and retained data together, and a setting bounded by
``epochs``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lethe._registry import invalid_setting


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


class Flagged(Dataset):
    """``(input, label, flag)`` samples from a map-style dataset of ``(input, label, ...)``, every one
    with the same ``flag``: which part of a forget + retain union (``ConcatDataset``) it comes from."""

    def __init__(self, dataset: Dataset, flag: Any) -> None:
        self.dataset = dataset
        self.flag = flag

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any, Any]:
        item = self.dataset[index]
        return item[0], item[1], self.flag


def check_within_epochs(settings: Any, name: str) -> None:
    """Raise ``invalid_setting`` unless setting ``name`` (a number of epochs, at least 0 by its own
    bounds) is at most ``settings.epochs``; for a ``Settings.__post_init__``."""
    value = getattr(settings, name)
    if value > settings.epochs:
        raise invalid_setting(settings, name, value, f"in [0, epochs] = [0, {settings.epochs}]")
