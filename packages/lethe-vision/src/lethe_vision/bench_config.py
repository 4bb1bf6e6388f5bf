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

A task turns its config into the settings of one run with ``run_settings``, which maps these keys
onto the run's field names (``model.arch`` -> ``arch``, ``overrides`` -> ``method_overrides``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import lethe
from lethe.errors import ConfigError

T = TypeVar("T")


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


def class_list(entry: Any) -> str:
    """A ``forget_sets`` entry (a class name or index, a comma-separated string or a list of them)
    as the comma-separated form the datasets' ``parse_classes`` read."""
    return ",".join(map(str, entry)) if isinstance(entry, (list, tuple)) else str(entry)


def resolve_variant(
    name: str, variants: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Mapping[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """The registered method and the overrides a ``methods`` entry ``name`` runs: a method with its
    ``overrides``, or a named variant (``variants: {delete-20-epochs: {method: delete, overrides:
    {...}}}``) whose overrides go over its method's. A ConfigError for a malformed variant."""
    variant = variants.get(name)
    if variant is None:
        return name, dict(overrides.get(name, {}))
    unknown = set(variant) - {"method", "overrides"}
    if unknown or "method" not in variant:
        raise ConfigError(f"variants.{name} takes method and overrides; got {sorted(variant)}")
    method = variant["method"]
    return method, {**overrides.get(method, {}), **variant.get("overrides", {})}


def run_settings(run_type: type[T], config: BenchConfigBase, **given: Any) -> T:
    """``run_type``, a task's settings of one run (a dataclass), from its benchmark ``config``.

    Each field of ``run_type`` takes the config key of the same name (``methods``, ``recipe``,
    ``cache``, ...) or, where the run settings name a shared key otherwise: ``arch``, ``width`` and
    ``pretrained`` from ``model:``, ``seed`` the first of ``seeds``, ``unlearn_batch_size`` from
    ``batch_size`` and ``method_overrides`` from ``overrides``. ``given`` (what the run decides
    itself: its forget classes, a seed of its own, ...) goes over these; any other field keeps
    its default."""
    names = {f.name for f in fields(run_type) if f.init}
    values = {f.name: getattr(config, f.name) for f in fields(config) if f.name in names}
    model = getattr(config, "model", None)
    renamed = {
        **{key: getattr(model, key) for key in ("arch", "width", "pretrained") if hasattr(model, key)},
        "seed": config.seeds[0],
        "unlearn_batch_size": config.batch_size,
        "method_overrides": config.overrides,
    }
    values.update((key, value) for key, value in renamed.items() if key in names)
    return run_type(**{**values, **given})
