"""The config schema every image task's benchmark shares (``benchmarks/configs/*.yaml``).

Every task's config extends ``BenchConfigBase`` (read by ``lethe.config.read_config``), so the same
thing has the same key everywhere::

    task: classification            # the lethe.tasks entry point that runs it
    title: "..."                    # the report's title; out: its folder under benchmarks/results/
    dataset: cifar10                # data: the task's dataset options (sizes, normalisation, ...)
    model: {arch: cifar-resnet18, width: 8, pretrained: null}
    forget_sets: [cat, [cat, dog]]  # each entry one run (names, indices, or a list of them)
    methods: [delete, svd]          # registered methods (and the task's named variants)
    overrides: {delete: {lr: 1.0e-3}}
    recipe: {epochs: 30, batch_size: 128, lr: 0.1}   # training the original and the oracle
    batch_size: 128                 # the unlearning methods' batch size
    seeds: [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lethe


@dataclass(kw_only=True)
class ModelSection:
    """``model:``: the architecture (``lethe_vision.models`` names, e.g. ``cifar-resnet18``,
    ``small-cnn``, ``timm:tf_efficientnet_lite0``), its width where it has one, and the pretrained
    weights it starts from (``lethe.pretrained`` names; None: random initialisation)."""

    arch: str
    width: int | None = lethe.setting(None, ge=1)
    pretrained: str | None = None


@dataclass(kw_only=True)
class BenchConfigBase:
    """The keys every benchmark config has (module docstring); a task's config adds its own."""

    task: str
    title: str = ""
    out: str = ""
    note: str = ""
    dataset: str
    #: the folder datasets are read from (None: the task's default under data/)
    data_root: str | None = None
    #: one run per entry: a class name or index, a comma-separated string or list of them
    forget_sets: tuple[Any, ...] = lethe.setting(min_items=1)
    methods: tuple[str, ...] = ("delete", "svd")
    #: per method: settings over its published defaults (``lethe.method_settings``)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the batch size of the unlearning methods
    batch_size: int = lethe.setting(128, ge=1)
    seeds: tuple[int, ...] = lethe.setting((0,), min_items=1)
    #: DataLoader worker processes
    workers: int = lethe.setting(0, ge=0)
