"""Checkpoints: safetensors weights plus the JSON build spec in the file's metadata.

One file holds everything ``unlearn`` and ``evaluate`` need; loading never unpickles objects.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from lethe.errors import CheckpointError
from lethe.io import atomic_path

SPEC_KEY = "lethe_spec"


def save_checkpoint(model: nn.Module, path: str | os.PathLike, spec: dict[str, Any]) -> Path:
    """Write ``model``'s state dict and ``spec`` (JSON-serialisable) atomically to ``path``."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        try:
            save_file(state, str(tmp), metadata={SPEC_KEY: json.dumps(spec)})
        except SafetensorError as err:
            raise _os_error(err, tmp) from None
    return Path(path)


def _os_error(err: SafetensorError, path: Path) -> Exception:
    """safetensors reports a failed write (a full disk, ...) as a SafetensorError naming the OS
    error: an ``OSError`` for ``path`` then, like any other failed write; else ``err`` itself."""
    found = re.search(r"os error (\d+)", str(err))
    if not found:
        return err
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(path))


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The build spec stored in checkpoint ``path``."""
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p} is a folder, not a checkpoint file")
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{p} is not a readable safetensors checkpoint ({err})") from None
    if SPEC_KEY not in meta:
        raise CheckpointError(f"{p} has no lethe build spec; was it written by lethe?")
    try:
        spec = json.loads(meta[SPEC_KEY])
    except json.JSONDecodeError:
        spec = None
    if not isinstance(spec, dict):
        raise CheckpointError(f"{p} has a corrupt lethe build spec")
    return spec


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the weights of ``path`` into ``model``; a mismatch is a CheckpointError."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({err})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise CheckpointError(f"{path} does not match its architecture: {detail[:300]}") from None
    return model


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    """True when two models have identical state dicts."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)
