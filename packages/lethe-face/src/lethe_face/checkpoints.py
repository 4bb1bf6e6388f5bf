"""Face checkpoints: safetensors weights plus the model spec, dataset options and identity names
(``lethe.checkpoint``), so ``unlearn`` and ``evaluate`` rebuild model and splits from the path alone."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from lethe.checkpoint import load_weights, read_spec, save_checkpoint
from lethe.errors import CheckpointError, ConfigError
from lethe_face.models import FaceModel, FaceModelSpec, build_face_model

TASK = "face"


def save_face_model(model: FaceModel, path: str | os.PathLike, info: dict[str, Any]) -> None:
    """Save ``model`` with its build ``info`` (must hold ``model``: a FaceModelSpec dict)."""
    save_checkpoint(model, path, {"task": TASK, **info})


def load_face_model(path: str | os.PathLike) -> tuple[FaceModel, dict[str, Any]]:
    """Rebuild the face model stored in ``path`` (no pretrained weights are read: the checkpoint
    holds them all) and load its weights; returns (model, info)."""
    info = read_spec(path)
    if info.get("task") != TASK or "model" not in info or "dataset" not in info:
        raise CheckpointError(f"{path} is not a lethe face checkpoint (no task, model or dataset)")
    try:
        spec = replace(FaceModelSpec(**info["model"]), pretrained=None, weights=None)
        model = build_face_model(spec, load_pretrained=False)
    except (TypeError, ConfigError) as err:
        raise CheckpointError(f"{path} has an invalid model spec: {err}") from None
    return load_weights(model, path).eval(), info
