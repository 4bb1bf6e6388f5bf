"""Segmentation checkpoints: safetensors weights plus the JSON build spec (``lethe.checkpoint``).

The spec holds the model (``ModelSpec``), dataset, class names, resolution and split settings,
so ``unlearn`` and ``evaluate`` need only the checkpoint path. Loading never unpickles objects,
and rebuilds the model offline (``encoder_weights=None``; the weights come from the file).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from lethe.checkpoint import load_weights, read_spec, save_checkpoint
from lethe.errors import CheckpointError, ConfigError
from lethe_segmentation.models import ModelSpec, build_model

TASK = "segmentation"


def save_model(model: nn.Module, path: str | os.PathLike, info: dict[str, Any]) -> None:
    """Save ``model`` with its build ``info`` (must hold ``model``: a ModelSpec dict)."""
    save_checkpoint(model, path, {"task": TASK, **info})


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in ``path`` and load its weights; returns (model, info)."""
    info = read_spec(path)
    if info.get("task") != TASK or "model" not in info or "dataset" not in info:
        raise CheckpointError(f"{path} is not a lethe segmentation checkpoint (no task, model or dataset)")
    try:
        spec = ModelSpec(**info["model"])
        model = build_model(spec, weights=None)
    except (TypeError, ConfigError) as err:
        raise CheckpointError(f"{path} has an invalid model spec: {err}") from None
    model = load_weights(model, path)
    return model.eval(), info
