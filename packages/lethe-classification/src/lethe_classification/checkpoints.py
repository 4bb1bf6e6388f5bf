"""Classification checkpoints: weights plus everything needed to rebuild model and data splits."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from lethe.checkpoint import load_weights, read_spec, save_checkpoint
from lethe.errors import CheckpointError
from lethe_classification.models import ModelSpec
from lethe_classification.pipeline import build_checked

TASK = "classification"


def save_model(model: nn.Module, path: str | os.PathLike, info: dict[str, Any]) -> None:
    """Save ``model`` with its build ``info`` (must hold ``model``: a ModelSpec dict)."""
    save_checkpoint(model, path, {"task": TASK, **info})


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in ``path`` and load its weights; returns (model, info)."""
    info = read_spec(path)
    if info.get("task") != TASK or "model" not in info or "dataset" not in info:
        raise CheckpointError(f"{path} is not a lethe classification checkpoint (no task, model or dataset)")
    try:
        spec = ModelSpec(**info["model"])
    except TypeError as err:
        raise CheckpointError(f"{path} has an invalid model spec: {err}") from None
    model = load_weights(build_checked(spec), path)
    return model.eval(), info
