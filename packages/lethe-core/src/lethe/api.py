"""``lethe.unlearn``: the one entry point a user needs."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from lethe._registry import get_method, method_settings
from lethe.engine import Engine, synchronize
from lethe.errors import ConfigError, DataError


@dataclass
class UnlearnContext:
    """Everything a method may use besides its settings."""

    forget: DataLoader
    forget_classes: tuple[int, ...]
    engine: Engine
    retain: DataLoader | None = None
    validation: DataLoader | None = None
    score_fn: Callable[[nn.Module], float] | None = None
    num_classes: int | None = None


@dataclass
class UnlearnRecord:
    """What was done: method, settings, wall time, per-epoch log and method-specific extras."""

    method: str
    settings: dict[str, Any]
    forget_classes: list[int]
    seconds: float
    device: str
    log: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def unlearn(
    model: nn.Module,
    method: str,
    *,
    forget: DataLoader,
    forget_classes: Sequence[int],
    retain: DataLoader | None = None,
    validation: DataLoader | None = None,
    score_fn: Callable[[nn.Module], float] | None = None,
    num_classes: int | None = None,
    settings: Any = None,
    overrides: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    inplace: bool = False,
) -> tuple[nn.Module, UnlearnRecord]:
    """Make ``model`` forget ``forget_classes`` with the registered ``method``.

    Args:
        model: the trained original model; copied unless ``inplace``.
        method: a name from ``lethe.list_methods()``.
        forget: loader of ``(inputs, labels)`` from the classes to forget (training augmentation
            on, as the methods prescribe).
        forget_classes: class indices to forget (every one is masked by DELETE).
        retain: loader of retained data, for methods that need it (``svd``).
        validation: held-out TRAINING data of all classes, for methods that tune (``svd``).
        score_fn: optional model -> score overriding the validation criterion.
        num_classes: total number of classes, when known (lets samplers stop early).
        settings: a settings dataclass instance; or ``overrides`` of the published defaults.
    Returns:
        ``(unlearned_model, UnlearnRecord)``; ``record.seconds`` is the device-synchronised wall
        time of the unlearning step (data loading included, evaluation excluded).
    """
    entry = get_method(method)
    if settings is None:
        settings = method_settings(method, overrides)
    elif overrides:
        raise ConfigError("pass either settings or overrides, not both")
    if len(forget_classes) == 0:
        raise ConfigError("forget_classes is empty: name at least one class to forget")
    if entry.needs_retain and getattr(settings, "use_retain", True) and retain is None:
        raise DataError(f"method {method!r} needs retained data: pass retain=<DataLoader>")
    if len(forget.dataset) == 0:
        raise DataError("the forget set is empty")
    engine = engine or Engine()
    target = model if inplace else copy.deepcopy(model)
    target = engine.prepare(target)
    ctx = UnlearnContext(
        forget=forget,
        forget_classes=tuple(int(c) for c in forget_classes),
        engine=engine,
        retain=retain,
        validation=validation,
        score_fn=score_fn,
        num_classes=num_classes,
    )
    synchronize(engine.device)
    start = time.perf_counter()
    log, extra = entry.fn(target, settings, ctx)
    synchronize(engine.device)
    seconds = time.perf_counter() - start
    record = UnlearnRecord(
        method=method,
        settings=dataclasses.asdict(settings),
        forget_classes=list(ctx.forget_classes),
        seconds=seconds,
        device=str(engine.device),
        log=log,
        extra=extra,
    )
    return target, record
