"""``bench``: original, retrain oracle and each method on one dataset, evaluated together."""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import lethe
from lethe.engine import Engine
from lethe.io import write_json_atomic
from lethe.metrics import avg_gap
from lethe_classification.data import DatasetBundle
from lethe_classification.pipeline import (
    EvalOptions,
    Splits,
    TrainRecipe,
    evaluate_model,
    make_splits,
    model_spec,
    train_model,
    unlearn_model,
)
from lethe_classification.report import plot_per_class, write_report


@dataclass
class BenchConfig:
    """One benchmark run."""

    arch: str
    forget: tuple[int, ...]
    methods: tuple[str, ...] = ("delete", "svd")
    width: int | None = None
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    val_fraction: float = 0.05
    seed: int = 0
    unlearn_batch_size: int = 128
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation: EvalOptions = field(default_factory=EvalOptions)


def environment(engine: Engine) -> dict[str, str]:
    """Versions and device, recorded with every result."""
    device = str(engine.device)
    if engine.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(engine.device)})"
    else:
        device += f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {
        "device": device, "torch": torch.__version__, "python": platform.python_version(),
        "lethe": lethe.__version__, "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def run_bench(bundle: DatasetBundle, config: BenchConfig, engine: Engine, log=print) -> dict[str, Any]:
    """Train original and oracle, unlearn with each method, evaluate all; returns the result."""
    for method in config.methods:
        lethe.get_method(method)  # unknown names fail before hours of training
    for method, overrides in config.method_overrides.items():
        lethe.method_settings(method, overrides)
    splits: Splits = make_splits(bundle, config.forget, config.val_fraction, config.seed)
    spec = model_spec(config.arch, bundle, config.width)
    rows: list[dict[str, Any]] = []

    def add_row(name: str, model, seconds: float, extra: dict) -> None:
        evaluation = evaluate_model(model, splits, engine, config.evaluation)
        row = {"method": name, **evaluation.metrics, "seconds": seconds,
               "per_class_test": evaluation.per_class_test, **extra}  # fmt: skip
        rows.append(row)
        log(f"{name:>10}: " + ", ".join(f"{k} {row[k]:.2f}" for k in (*evaluation.metrics, "seconds")))

    original, seconds, train_log = train_model(spec, splits.train, bundle, config.recipe, engine, "original")
    add_row("original", original, seconds, {"train_log": train_log})
    oracle, seconds, train_log = train_model(spec, splits.retain_train, bundle, config.recipe, engine, "retrain")
    add_row("retrain", oracle, seconds, {"train_log": train_log})
    for method in config.methods:
        overrides = config.method_overrides.get(method, {})
        model, record = unlearn_model(original, method, splits, engine, overrides, config.unlearn_batch_size)
        extra = {k: v for k, v in record.extra.items() if k != "grid"}
        add_row(method, model, record.seconds, {"settings": record.settings, "log": record.log, "extra": extra})
    oracle_row = rows[1]
    retrain_seconds = oracle_row["seconds"]
    for row in rows:
        row["avg_gap"] = avg_gap(row, oracle_row)
        row["seconds_vs_retrain"] = row["seconds"] / retrain_seconds if retrain_seconds else float("nan")
    header = {
        "dataset": bundle.name, "arch": config.arch, "width": config.width,
        "forget": [f"{c} ({bundle.classes[c]})" for c in splits.forget_classes],
        "epochs": config.recipe.epochs, "recipe": asdict(config.recipe),
        "train samples": len(splits.train), "validation samples (held out of train)": len(splits.validation),
        "test samples": len(splits.test), "seed": config.seed,
        "evaluation": asdict(config.evaluation), "method_overrides": config.method_overrides,
        **environment(engine),
    }  # fmt: skip
    return {"header": header, "classes": bundle.classes, "forget": list(splits.forget_classes), "rows": rows}


def write_bench(result: Mapping[str, Any], out: str | Path, title: str) -> None:
    """Write ``results.json``, ``results.md`` and ``per_class.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result)
    write_report(out / "results.md", title, result["header"], result["rows"])
    plot_per_class(out / "per_class.png", result["classes"], result["rows"], result["forget"], title)


def parse_method_overrides(items: Sequence[str], parse) -> dict[str, dict[str, str]]:
    """``["delete.lr=1e-2", "svd.tune=false"]`` -> ``{"delete": {"lr": "1e-2"}, ...}``."""
    result: dict[str, dict[str, str]] = {}
    for key, value in parse(items).items():
        method, sep, name = key.partition(".")
        if not sep:
            raise lethe.ConfigError(f"bench --set needs METHOD.KEY=VALUE, got {key}={value}")
        result.setdefault(method, {})[name] = value
    return result
