"""Classification checkpoints: weights plus everything needed to rebuild model and data splits.

``import_model`` turns a model trained elsewhere (a module or its state dict) into such a
checkpoint: architecture, class names and preprocessing are recorded with the weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lethe.checkpoint import load_weights, read_spec, save_checkpoint
from lethe.errors import CheckpointError, ConfigError
from lethe.weights import read_state_dict, transfer
from lethe_vision.models import ModelSpec, backbone
from lethe_vision.pipeline import build_checked
from lethe_vision.preprocess import Preprocess

TASK = "classification"


def save_model(model: nn.Module, path: str | os.PathLike, info: dict[str, Any]) -> None:
    """Save ``model`` with its build ``info`` (must hold ``model``: a ModelSpec dict)."""
    save_checkpoint(model, path, {"task": TASK, **info})


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in ``path`` and load its weights; returns (model, info).

    No pretrained weights are read (the checkpoint holds all weights). ``info["dataset"]`` is
    None for an imported model that names no dataset."""
    info = read_spec(path)
    if info.get("task") != TASK or "model" not in info or "dataset" not in info:
        raise CheckpointError(f"{path} is not a lethe classification checkpoint (no task, model or dataset)")
    try:
        spec = replace(ModelSpec(**info["model"]), pretrained=None)
    except TypeError as err:
        raise CheckpointError(f"{path} has an invalid model spec: {err}") from None
    model = load_weights(build_checked(spec), path)
    return model.eval(), info


def import_model(
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike,
    spec: ModelSpec,
    classes: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    path: str | os.PathLike,
    *,
    dataset: str | None = None,
) -> Path:
    """Write a lethe checkpoint of a model trained elsewhere.

    ``model_or_state_dict``: the module, its state dict, or a ``.pth``/``.pt``/``.safetensors``
    file, with the tensor names of ``spec.arch`` (``timm:<name>``, ``torchvision:<name>`` or a
    lethe architecture); ``spec``: architecture, ``num_classes`` (= ``len(classes)``), input
    channels and image size; ``classes``: names in the order of the model's outputs; ``mean``,
    ``std``: its input normalisation (one value, or one per channel); ``dataset``: the dataset
    ``unlearn``/``evaluate`` use by default (else they need ``--dataset``)."""
    classes = [str(c) for c in classes]
    if not classes:
        raise ConfigError("no class names given")
    if len(classes) != spec.num_classes:
        raise ConfigError(f"{len(classes)} class names for a model with {spec.num_classes} outputs")
    if len(set(classes)) != len(classes) or not all(c.strip() for c in classes):
        raise ConfigError("class names must be distinct and not empty")
    pre = Preprocess(spec.image_size, tuple(mean), tuple(std), spec.in_channels)
    source = str(model_or_state_dict) if isinstance(model_or_state_dict, (str, os.PathLike)) else "python"
    state = _state_of(model_or_state_dict)
    spec = replace(spec, pretrained=None)
    model = build_checked(spec)
    transfer(backbone(model), state, f"the weights of {source}")
    info = {
        "model": spec.to_dict(),
        "dataset": dataset,
        "classes": classes,
        "preprocess": pre.to_dict(),
        "split": {"val_fraction": 0.05, "seed": 0},
        "excluded_classes": [],
        "imported": {"source": source},
    }
    save_model(model.eval(), path, info)
    return Path(path)


def _state_of(item: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike) -> dict[str, torch.Tensor]:
    if isinstance(item, nn.Module):
        return backbone(item).state_dict()
    if isinstance(item, Mapping):
        return dict(item)
    return read_state_dict(item)
