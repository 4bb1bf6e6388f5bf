"""Backdoored checkpoints: ``lethe_vision`` checkpoints whose info also records the attack.

The ``backdoor`` entry holds the attack's name and settings, the seed, the defender's pool share
(``val_fraction``) and the poisoned indices, so ``unlearn`` and ``evaluate`` rebuild exactly the
same poisoned data, defender's pool and stamped test set from the checkpoint path alone (and
check the rebuilt indices against the recorded ones).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from lethe.errors import CheckpointError, LetheError
from lethe_backdoor.attacks import attack_from_dict
from lethe_backdoor.poison import BackdoorSplits, check_recorded, make_backdoor_splits
from lethe_vision.checkpoints import load_model, save_model
from lethe_vision.datasets import load_dataset

KEY = "backdoor"


def save_backdoored(model: nn.Module, path: str | os.PathLike, info: dict[str, Any], splits: BackdoorSplits) -> None:
    """Save ``model`` with the classification ``info`` plus the poison record of ``splits``."""
    save_model(model, path, {**info, KEY: splits.record()})


def load_backdoored(
    path: str | os.PathLike, data_root: str | os.PathLike | None = None
) -> tuple[nn.Module, dict[str, Any], BackdoorSplits]:
    """``(model, info, splits)`` of a checkpoint written by ``lethe-backdoor train`` (or ``unlearn``)."""
    model, info = load_model(path)
    record = info.get(KEY)
    if not isinstance(record, dict) or "name" not in record:
        raise CheckpointError(f"{path} records no backdoor attack; train it with 'lethe-backdoor train'")
    try:
        attack = attack_from_dict(record)
    except LetheError as err:
        raise CheckpointError(f"{path} records an invalid attack: {err}") from None
    bundle = load_dataset(info["dataset"], data_root)
    splits = make_backdoor_splits(bundle, attack, record.get("val_fraction", 0.05), record.get("seed", 0))
    check_recorded(splits, record, str(path))
    return model, info, splits
