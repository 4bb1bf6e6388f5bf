"""``bench``: original, retrain oracle and each method on one dataset, evaluated together.

With a ``cache`` folder the original model and the retrain oracles are kept there, named by a hash
of what they were trained from (dataset, model, recipe, seed, validation fraction and, for an
oracle, the forgotten classes), and reused by any later run that would train the same model.

``ClassificationBenchConfig`` is the benchmark YAML's schema (``lethe_vision.bench_config``);
``TASK`` registers ``run_benchmark`` / ``check_benchmark`` / ``merge_benchmark`` as the
``classification`` task of ``benchmarks/run.py`` (``lethe.tasks``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lethe
from lethe.cli_support import check_method_settings
from lethe.engine import Engine, environment
from lethe.errors import ConfigError, DataError
from lethe.io import file_lock, main_print, write_json_atomic, write_text_atomic
from lethe.metrics import ACCURACY_METRICS, accuracy, avg_gap
from lethe.pretrained import check_pretrained
from lethe.tasks import BenchTask, RunOptions
from lethe_classification.report import aggregate, plot_per_class, plot_scatter, suite_markdown, write_report
from lethe_vision.bench_config import BenchConfigBase, ModelSection, class_list, resolve_variant, run_settings
from lethe_vision.checkpoints import load_model, save_model
from lethe_vision.data import DatasetBundle, parse_classes
from lethe_vision.datasets import load_dataset
from lethe_vision.pipeline import (
    EvalOptions,
    Evaluation,
    Splits,
    TrainRecipe,
    evaluate_model,
    make_splits,
    model_spec,
    outputs_on,
    train_model,
    unlearn_model,
)
from lethe_vision.report import header_lines


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
    retain_per_class: int | None = None
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation: EvalOptions = field(default_factory=EvalOptions)
    #: train the retrain oracle (``False`` skips it: avg_gap, acc_gap and seconds_vs_retrain are
    #: then left empty; for runs that only check forget/retain accuracy on a costly model)
    oracle: bool = True
    #: folder keeping the original model for later runs (see the module docstring); None: no cache
    cache: str | None = None
    #: named settings of a method, listed in ``methods`` like one: ``{"delete-frozen-bn": {"method":
    #: "delete", "overrides": {"freeze_bn": True}}}`` (its overrides go over the method's own)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: pretrained weights the original and the oracle start from (``lethe.pretrained``); None: random
    pretrained: str | None = None

    def resolve(self, name: str) -> tuple[str, dict[str, Any]]:
        """The registered method and the overrides that row ``name`` runs (``resolve_variant``)."""
        return resolve_variant(name, self.variants, self.method_overrides)


TrainedModel = tuple[nn.Module, float, list]


def run_bench(
    bundle: DatasetBundle, config: BenchConfig, engine: Engine, log=main_print, original: TrainedModel | None = None
) -> dict[str, Any]:
    """Train original and oracle, unlearn with each method, evaluate all; returns the result.

    ``original`` (model, training seconds, log) reuses a model trained with the same seed: the
    training split depends only on the seed, not on the forget classes.
    """
    for name in config.methods:  # unknown names and settings fail before hours of training
        lethe.method_settings(*config.resolve(name))
    for method, overrides in config.method_overrides.items():
        lethe.method_settings(method, overrides)
    splits: Splits = make_splits(bundle, config.forget, config.val_fraction, config.seed)
    rows: list[dict[str, Any]] = []

    def add_row(name: str, model, seconds: float, extra: dict) -> None:
        if config.cache and name in ("original", "retrain"):  # cached models: their evaluation too
            evaluation = cached_evaluation(model, splits, engine, config.evaluation, config.cache, log)
        else:
            evaluation = evaluate_model(model, splits, engine, config.evaluation)
        row = {
            "method": name,
            **evaluation.metrics,
            "seconds": seconds,
            "per_class_test": evaluation.per_class_test,
            **extra,
        }
        rows.append(row)
        log(f"{name:>10}: " + ", ".join(f"{k} {row[k]:.2f}" for k in (*evaluation.metrics, "seconds")))

    original, seconds, train_log = original or train_original(bundle, config, engine, log)
    add_row("original", original, seconds, {"train_log": train_log})
    if config.oracle:
        oracle, info = cached_oracle(bundle, config, splits, engine, log)
        add_row("retrain", oracle, float(info["train_seconds"]), {"train_log": info.get("train_log", [])})
    for name in config.methods:
        method, overrides = config.resolve(name)
        model, record = unlearn_model(
            original, method, splits, engine, overrides, config.unlearn_batch_size, config.retain_per_class
        )
        extra = {k: v for k, v in record.extra.items() if k != "grid"}
        add_row(name, model, record.seconds, {"settings": record.settings, "log": record.log, "extra": extra})
    derive_columns(rows)
    header = {
        "dataset": bundle.name,
        "arch": config.arch,
        "width": config.width,
        "forget": [f"{c} ({bundle.classes[c]})" for c in splits.forget_classes],
        "epochs": config.recipe.epochs,
        "recipe": asdict(config.recipe),
        "train samples": len(splits.train),
        "validation samples (held out of train)": len(splits.validation),
        "test samples": len(splits.test),
        "seed": config.seed,
        "evaluation": asdict(config.evaluation),
        "method_overrides": config.method_overrides,
        **({"variants": config.variants} if config.variants else {}),
        "retained images per class given to methods": config.retain_per_class or "all",
        **(
            {
                "pretrained": config.pretrained,
                "image size": bundle.image_size,
                "normalisation": {"mean": list(bundle.mean), "std": list(bundle.std)},
            }
            if config.pretrained
            else {}
        ),
        **({"original model cache": config.cache} if config.cache else {}),
        **({} if config.oracle else {"retrain oracle": "not trained (avg_gap, acc_gap, seconds_vs_retrain empty)"}),
        **environment(engine),
    }
    return {"header": header, "classes": bundle.classes, "forget": list(splits.forget_classes), "rows": rows}


def derive_columns(rows: Sequence[dict[str, Any]]) -> None:
    """Add ``avg_gap``, ``acc_gap`` and ``seconds_vs_retrain`` to every row, against the row of
    method ``retrain`` (idempotent: recomputed from the stored metrics). Without that row they are
    NaN (shown as "-")."""
    oracle = next((row for row in rows if row["method"] == "retrain"), None)
    for row in rows:
        if oracle is None:
            row.update(avg_gap=math.nan, acc_gap=math.nan, seconds_vs_retrain=math.nan)
            continue
        row["avg_gap"] = avg_gap(row, oracle)
        row["acc_gap"] = avg_gap(row, oracle, ACCURACY_METRICS)
        row["seconds_vs_retrain"] = row["seconds"] / oracle["seconds"] if oracle["seconds"] else float("nan")


def original_for(bundle: DatasetBundle, config: BenchConfig, engine: Engine, log=main_print) -> tuple[nn.Module, dict]:
    """``cached_original`` of ``config``'s model, recipe, seed, validation fraction, cache and
    pretrained weights: (model, its checkpoint info)."""
    return cached_original(
        bundle,
        config.arch,
        config.width,
        config.recipe,
        config.seed,
        config.val_fraction,
        engine,
        config.cache,
        log,
        config.pretrained,
    )


def train_original(bundle: DatasetBundle, config: BenchConfig, engine: Engine, log=main_print) -> TrainedModel:
    """Train the original model on the training split of ``config.seed`` (all classes), or load
    it from ``config.cache``; returns (model, training seconds, training log)."""
    model, info = original_for(bundle, config, engine, log)
    return model, float(info["train_seconds"]), info.get("train_log", [])


def cached_original(
    bundle: DatasetBundle,
    arch: str,
    width: int | None,
    recipe: TrainRecipe,
    seed: int,
    val_fraction: float,
    engine: Engine,
    cache: str | Path | None,
    log=main_print,
    pretrained: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The original model and its info (training seconds and log; ``cached``: the file it was
    loaded from), trained on all classes or loaded from ``cache/original-<arch>-<hash>.safetensors``."""
    spec = model_spec(arch, bundle, width, pretrained)
    identity = {
        "dataset": bundle.name,
        "model": spec.to_dict(),
        "recipe": recipe_identity(recipe),
        "seed": seed,
        "val_fraction": val_fraction,
    }

    def train() -> tuple[nn.Module, float, list]:
        splits = make_splits(bundle, (), val_fraction, seed)
        return train_model(spec, splits.train, bundle, recipe, engine, "original")

    return _cached_training("original", arch, identity, train, engine, cache, log)


def cached_oracle(
    bundle: DatasetBundle, config: BenchConfig, splits: Splits, engine: Engine, log=main_print
) -> tuple[nn.Module, dict[str, Any]]:
    """The retrain oracle of ``splits`` (the original's recipe on the retained training data),
    trained or loaded from ``config.cache/retrain-<arch>-<hash>.safetensors``."""
    spec = model_spec(config.arch, bundle, config.width, config.pretrained)
    identity = {
        "dataset": bundle.name,
        "model": spec.to_dict(),
        "recipe": recipe_identity(config.recipe),
        "seed": config.seed,
        "val_fraction": config.val_fraction,
        "forget": sorted(int(c) for c in splits.forget_classes),
    }

    def train() -> tuple[nn.Module, float, list]:
        return train_model(spec, splits.retain_train, bundle, config.recipe, engine, "retrain")

    return _cached_training("retrain", config.arch, identity, train, engine, config.cache, log)


def _cached_training(
    role: str, arch: str, identity: Mapping[str, Any], train, engine: Engine, cache: str | Path | None, log
) -> tuple[nn.Module, dict[str, Any]]:
    """``train()``'s model and info, or the one stored under ``cache`` for the same ``identity``."""
    path = Path(cache) / f"{role}-{arch}-{identity_key(identity)}.safetensors" if cache else None
    with file_lock(path, log) if path is not None else nullcontext():  # parts started together train it once
        if path is not None and path.is_file():
            model, info = load_model(path)
            log(f"{role} model loaded from {path}")
            return engine.prepare(model), {**info, "cached": str(path)}
        model, seconds, train_log = train()
        info = {**identity, "train_seconds": seconds, "train_log": train_log}
        if path is not None:
            save_model(model, path, info)
            log(f"{role} model saved to {path}")
        return model, info


def identity_key(identity: Mapping[str, Any]) -> str:
    """The cache key of what a cached model or evaluation was made from: 16 hex digits of the
    SHA-256 of its sorted JSON."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of ``model``'s state (names, dtypes, shapes and bytes), whatever its memory format."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cached_evaluation(
    model: nn.Module, splits: Splits, engine: Engine, options: EvalOptions, cache: str | Path, log=main_print
) -> Evaluation:
    """``evaluate_model``'s result, or the one stored under ``cache/evaluation-<hash>.json`` for the
    same weights, data (dataset, image size, normalisation, split seed and fraction, forget
    classes), evaluation options and engine seed. The evaluation is deterministic for these, so a
    suite split into parts (``--methods``) evaluates its original and oracle once."""
    bundle = splits.bundle
    identity = {
        "weights": weights_digest(model),
        "dataset": bundle.name,
        "image_size": bundle.image_size,
        "mean": list(bundle.mean),
        "std": list(bundle.std),
        "seed": splits.seed,
        "val_fraction": splits.val_fraction,
        "forget": sorted(int(c) for c in splits.forget_classes),
        "options": asdict(options),
        "engine_seed": engine.seed,
    }
    path = Path(cache) / f"evaluation-{identity_key(identity)}.json"
    with file_lock(path, log):  # parts started together evaluate it once
        if path.is_file():
            stored = json.loads(path.read_text())
            log(f"evaluation loaded from {path}")
            return Evaluation(stored["metrics"], stored["per_class_test"])
        evaluation = evaluate_model(model, splits, engine, options)
        write_json_atomic(path, {**asdict(evaluation), "identity": identity})
        return evaluation


def recipe_identity(recipe: TrainRecipe) -> dict[str, Any]:
    """The recipe's fields for a cache key; ``label_smoothing`` only when set, so that originals
    cached before the field existed keep their keys."""
    fields = asdict(recipe)
    if fields["label_smoothing"] == 0.0:
        del fields["label_smoothing"]
    return fields


@dataclass(frozen=True)
class ForgetSet:
    """Classes forgotten together in a suite, and the methods run on them (``None``: the config's).

    ``strongest_baselines`` adds that many baselines, the ones with the lowest mean ``avg_gap`` over
    the first seed's earlier runs (the issue's "two strongest baselines"), chosen once for all seeds.
    ``seeds`` limits the set to some of the suite's seeds (``None``: all).
    """

    classes: tuple[int, ...]
    methods: tuple[str, ...] | None = None
    strongest_baselines: int = 0
    seeds: tuple[int, ...] | None = None


NOT_BASELINES = ("original", "retrain", "delete", "svd")


def strongest_baselines(runs: Sequence[Mapping[str, Any]], count: int, exclude: Sequence[str] = ()) -> list[str]:
    """The ``count`` baselines with the lowest mean ``avg_gap`` over ``runs`` (ties by name)."""
    gaps: dict[str, list[float]] = {}
    for run in runs:
        for row in run["rows"]:
            if row["method"] not in (*NOT_BASELINES, *exclude):
                gaps.setdefault(row["method"], []).append(row["avg_gap"])
    if len(gaps) < count:
        raise ConfigError(
            f"asked for the {count} strongest baselines but earlier forget sets ran only {len(gaps)}: "
            "list the sets that run the baselines first"
        )
    return sorted(gaps, key=lambda m: (sum(gaps[m]) / len(gaps[m]), m))[:count]


def run_suite(
    bundle: DatasetBundle,
    config: BenchConfig,
    forget_sets: Sequence[Sequence[int] | ForgetSet],
    seeds: Sequence[int],
    engine: Engine,
    log=main_print,
    on_run=None,
) -> list[dict[str, Any]]:
    """``run_bench`` for every forget set and seed; one original model per seed is shared.
    ``on_run(runs)`` is called after each run (the runner writes partial results with it)."""
    sets = [s if isinstance(s, ForgetSet) else ForgetSet(tuple(s)) for s in forget_sets]
    for fs in sets:
        for name in fs.methods or ():
            lethe.get_method(config.resolve(name)[0])  # unknown names fail before hours of training
    chosen: dict[int, tuple[str, ...]] = {}
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        engine.seed = seed
        seeded = replace(config, seed=seed)
        original = train_original(bundle, seeded, engine, log)
        for i, fs in enumerate(sets):
            if fs.seeds is not None and seed not in fs.seeds:
                continue
            if i not in chosen:
                methods = tuple(fs.methods or config.methods)
                if fs.strongest_baselines:
                    methods += tuple(strongest_baselines(runs, fs.strongest_baselines, methods))
                chosen[i] = methods
            log(f"seed {seed}, forget {list(fs.classes)}: {', '.join(chosen[i])}")
            run = run_bench(bundle, replace(seeded, forget=fs.classes, methods=chosen[i]), engine, log, original)
            if fs.strongest_baselines:
                run["header"]["strongest_baselines"] = list(chosen[i][-fs.strongest_baselines :])
            runs.append(run)
            if on_run is not None:
                on_run(runs)
    return runs


def write_bench(result: Mapping[str, Any], out: str | Path, title: str) -> None:
    """Write ``results.json``, ``results.md`` and ``per_class.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result)
    write_report(out / "results.md", title, result["header"], result["rows"])
    plot_per_class(out / "per_class.png", result["classes"], result["rows"], result["forget"], title)


def write_suite(runs: Sequence[Mapping[str, Any]], out: str | Path, title: str, header: Mapping[str, Any]) -> None:
    """Write ``runs.json`` (every run), ``summary.json`` and ``results.md`` (``suite_markdown``),
    ``scatter.png`` and ``per_class.png`` (first run) under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = aggregate(runs)
    write_json_atomic(out / "runs.json", list(runs))
    write_json_atomic(out / "summary.json", summary)
    lines = [f"# {title}", "", *header_lines(header), "", suite_markdown(runs, summary)]
    write_text_atomic(out / "results.md", "\n".join(lines))
    plot_scatter(out / "scatter.png", runs, title)
    first = runs[0]
    plot_per_class(out / "per_class.png", first["classes"], first["rows"], first["forget"], f"{title} (first run)")


# ---------------------------------------------------------------- benchmark configs (benchmarks/run.py)


def forget_set(entry, classes) -> ForgetSet:
    """A ``forget_sets`` entry: classes (``3``, ``"cat,dog"``, ``[cat, dog]``) or a mapping with
    ``classes`` and optionally ``methods``, ``strongest_baselines`` and ``seeds``."""
    if not isinstance(entry, Mapping):
        return ForgetSet(parse_classes(class_list(entry), classes))
    unknown = set(entry) - {"classes", "methods", "strongest_baselines", "seeds"}
    if unknown or "classes" not in entry:
        raise ConfigError(f"a forget set takes classes, methods, strongest_baselines, seeds; got {sorted(entry)}")
    methods, seeds = entry.get("methods"), entry.get("seeds")
    return ForgetSet(
        parse_classes(class_list(entry["classes"]), classes),
        tuple(methods) if methods else None,
        int(entry.get("strongest_baselines", 0)),
        tuple(seeds) if seeds is not None else None,
    )


def only_sets(forget_sets: list[ForgetSet], wanted: Sequence[str], classes) -> list[ForgetSet]:
    """The config's forget sets whose classes are among ``wanted`` (``--forget-set``), in config order."""
    picked = {tuple(sorted(parse_classes(str(w), classes))): w for w in wanted}
    have = {tuple(sorted(fs.classes)) for fs in forget_sets}
    missing = [w for key, w in picked.items() if key not in have]
    if missing:
        raise ConfigError(f"--forget-set {', '.join(missing)}: not a forget set of this config")
    return [fs for fs in forget_sets if tuple(sorted(fs.classes)) in picked]


@dataclass(kw_only=True)
class ClassificationData:
    """``data:``: how images reach the model. ``image_size``: resize to this (None: the dataset's
    own); ``mean``/``std``: the normalisation a pretrained model expects (None: the training
    images'); ``on_device``: keep the decoded dataset on the engine's device (``lethe_vision.device_data``)."""

    image_size: int | None = lethe.setting(None, ge=1)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    on_device: bool = False


@dataclass(kw_only=True)
class ClassificationBenchConfig(BenchConfigBase):
    """A classification benchmark YAML (``benchmarks/configs/``; the shared keys in
    ``lethe_vision.bench_config``). One forget set and one seed write one run's report; more write
    a suite (mean ± std over runs, ``runs.json``)."""

    task: str = "classification"
    model: ModelSection
    data: ClassificationData = field(default_factory=ClassificationData)
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    evaluation: EvalOptions = field(default_factory=EvalOptions)
    val_fraction: float = lethe.setting(0.05, gt=0, lt=1)
    #: retained training images per class the methods that read retained data get (None: all)
    retain_per_class: int | None = lethe.setting(None, ge=1)
    #: train the retrain oracle (False leaves the gap columns empty)
    oracle: bool = True
    #: folder caching the original and the oracles by content hash (None: no cache)
    cache: str | None = None
    #: named settings of a method, listed in ``methods`` like one (``BenchConfig.variants``)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def suite(self) -> bool:
        """Several runs (forget sets or seeds): the suite report."""
        return len(self.forget_sets) > 1 or len(self.seeds) > 1


def bench_config(config: ClassificationBenchConfig, forget: tuple[int, ...] = ()) -> BenchConfig:
    """The run settings of ``config`` (``lethe_vision.bench_config.run_settings``; its first seed,
    ``run_suite`` sets each seed's) for forget classes ``forget``."""
    return run_settings(BenchConfig, config, forget=forget)


def load_bench_data(config: ClassificationBenchConfig) -> DatasetBundle:
    """The config's dataset, resized and normalised as its ``data:`` says."""
    bundle = load_dataset(config.dataset, config.data_root, image_size=config.data.image_size)
    if config.data.mean is not None or config.data.std is not None:  # what the (pretrained) model expects
        bundle = dataclasses.replace(bundle, mean=config.data.mean or bundle.mean, std=config.data.std or bundle.std)
    return bundle


def write_config_suite(
    config: ClassificationBenchConfig, runs: list, out: Path, title: str, config_path: str | None = None
) -> None:
    """Mean ± std tables, scatter and per-class plot of ``runs`` (every run's header holds its
    device and versions; the suite header takes the first run's)."""
    header = {k: v for k, v in runs[0]["header"].items() if k not in ("forget", "seed")}
    strongest = {
        ", ".join(map(str, r["forget"])): r["header"]["strongest_baselines"]
        for r in runs
        if "strongest_baselines" in r["header"]
    }
    if strongest:
        header["strongest baselines (lowest mean avg_gap on the same seed's earlier sets)"] = strongest
    originals = {
        f"seed {r['header']['seed']}": round(sum(row["per_class_test"]) / len(row["per_class_test"]), 2)
        for r in runs
        for row in r["rows"][:1]
        if row["method"] == "original" and row.get("per_class_test")
    }
    if originals:  # the figure a user checks first: how good the model was before forgetting
        header["original test accuracy, mean over classes (%)"] = originals
    header.update(
        forget_sets=[list(f) for f in sorted({tuple(r["forget"]) for r in runs}, key=lambda f: (len(f), f))],
        seeds=sorted({r["header"]["seed"] for r in runs}),
        config=config_path,
        note=config.note,
    )
    write_suite(runs, out, title, header)


def _title(config: ClassificationBenchConfig, bundle_name: str) -> str:
    return config.title or f"Class forgetting on {bundle_name} with {config.model.arch}"


def only_methods(
    forget_sets: Sequence[ForgetSet], methods: Sequence[str], config_methods: Sequence[str]
) -> list[ForgetSet]:
    """The forget sets with only ``methods`` (``--methods``) among what each runs; a set left with
    none is dropped."""
    known = {*config_methods, *(m for fs in forget_sets for m in fs.methods or ())}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ConfigError(f"--methods {', '.join(unknown)}: not a method of this config")
    kept = []
    for fs in forget_sets:
        if fs.strongest_baselines:
            raise ConfigError("--methods cannot split a forget set that picks its strongest baselines")
        chosen = tuple(m for m in fs.methods or config_methods if m in methods)
        if chosen:
            kept.append(replace(fs, methods=chosen))
    return kept


def join_parts(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of one seed and forget set split by ``--methods`` joined into one: the first part's
    header, original and oracle rows, every part's method rows (a method in two parts is an error,
    and so are parts whose original or oracle rows differ: they were not the same models)."""
    joined: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        key = (run["header"]["seed"], tuple(run["forget"]))
        if key not in joined:
            joined[key] = {**run, "rows": list(run["rows"])}
            continue
        first = joined[key]
        have = {row["method"]: row for row in first["rows"]}
        for row in run["rows"]:
            if row["method"] in ("original", "retrain"):
                if row["method"] in have and row["forget_test"] != have[row["method"]]["forget_test"]:
                    raise DataError(f"seed {key[0]}, forget {list(key[1])}: the parts' {row['method']} rows differ")
            elif row["method"] in have:
                raise DataError(f"seed {key[0]}, forget {list(key[1])}: {row['method']} is in two parts")
            else:
                first["rows"].append(row)
    return list(joined.values())


def merge_benchmark(config: ClassificationBenchConfig, parts: Sequence[Path], out: Path, options=None) -> None:
    """One suite from the ``runs.json`` of runs split across processes (``--seeds``, ``--forget-set``,
    ``--methods``)."""
    runs = []
    for part in parts:
        if not (part / "runs.json").is_file():
            raise DataError(f"{part} has no runs.json")
        runs += json.loads((part / "runs.json").read_text())
    runs = join_parts(runs)
    order = ["original", "retrain", *config.methods]
    for run in runs:
        run["rows"].sort(key=lambda row: order.index(row["method"]) if row["method"] in order else len(order))
    runs.sort(key=lambda r: (len(r["forget"]), r["header"]["seed"], r["forget"]))
    for run in runs:
        derive_columns(run["rows"])  # recomputed from the stored metrics (and added if a part predates one)
    path = options.config_path if options is not None else None
    write_config_suite(config, runs, out, config.title or "Class forgetting", path)


def train_models(
    bundle: DatasetBundle,
    config: BenchConfig,
    forget_sets: Sequence[ForgetSet],
    seeds: Sequence[int],
    engine: Engine,
    which: str = "all",
    log=main_print,
) -> None:
    """Train (or load) the original of every seed and the retrain oracle of every forget set the
    seed runs (``which``: "all", "originals" or "oracles"), into ``config.cache``, and log each
    one's test accuracy (%, on the kept classes' test images) and training seconds. The runner's
    ``--models-only``: several processes fill one cache side by side, then the full run loads every
    model from it."""
    if not config.cache:
        raise ConfigError("--models-only needs the config's cache: folder (the models are kept nowhere else)")

    def record(role: str, seed: int, forget: Sequence[int], model: nn.Module, info: Mapping[str, Any]) -> None:
        test = accuracy(outputs_on(model, bundle.test.of_classes(forget, keep=False), bundle, engine))
        on = "all test images" if not forget else f"the test images of the kept classes (forget {list(forget)})"
        log(f"{role}, seed {seed}: {test:.2f} % on {on}; trained in {float(info['train_seconds']):.0f} s")

    for seed in seeds:
        engine.seed = seed
        seeded = replace(config, seed=seed)
        if which in ("all", "originals"):
            model, info = original_for(bundle, seeded, engine, log)
            record("original", seed, (), model, info)
        for fs in forget_sets if which in ("all", "oracles") else ():
            if fs.seeds is None or seed in fs.seeds:
                splits = make_splits(bundle, fs.classes, config.val_fraction, seed)
                model, info = cached_oracle(bundle, replace(seeded, forget=fs.classes), splits, engine, log)
                record("retrain", seed, fs.classes, model, info)


def run_benchmark(config: ClassificationBenchConfig, out: Path, options: RunOptions = RunOptions()) -> None:
    """Run a classification benchmark config: one run, or a suite of forget sets and seeds
    (``options.forget_sets`` / ``options.seeds`` / ``options.methods``: the runner's ``--forget-set``
    / ``--seeds`` / ``--methods`` subset; ``options.models_only``: only ``train_models``)."""
    bundle = load_bench_data(config)
    forget_sets = [forget_set(f, bundle.classes) for f in config.forget_sets]
    if options.forget_sets:
        forget_sets = only_sets(forget_sets, options.forget_sets, bundle.classes)
    if options.methods:
        if not config.suite:
            raise ConfigError("--methods splits a suite, and this config is one run")
        forget_sets = only_methods(forget_sets, options.methods, config.methods)
        if not forget_sets:
            raise ConfigError(f"--methods {', '.join(options.methods)}: none of the chosen forget sets runs them")
    seeds = options.seeds or config.seeds
    run_config = bench_config(config, forget_sets[0].classes)
    engine = Engine(
        seed=seeds[0], progress=sys.stderr.isatty(), num_workers=config.workers, data_on_device=config.data.on_device
    )
    if options.models_only:
        train_models(bundle, run_config, forget_sets, seeds, engine, options.models_only)
        return
    title = _title(config, bundle.name)
    if config.suite:
        write = functools.partial(write_config_suite, config, out=out, title=title, config_path=options.config_path)
        run_suite(bundle, replace(run_config, seed=seeds[0]), forget_sets, seeds, engine, on_run=write)
        return
    result = run_bench(bundle, replace(run_config, seed=seeds[0]), engine)
    result["header"]["config"] = options.config_path
    if config.note:
        result["header"]["note"] = config.note
    write_bench(result, out, title)


def check_benchmark(config: ClassificationBenchConfig) -> None:
    """What the config's types cannot say, checked without data: the pretrained name and every
    method's (and variant's) settings."""
    if config.model.pretrained:
        check_pretrained(config.model.pretrained)
    per_set = [m for f in config.forget_sets if isinstance(f, Mapping) for m in f.get("methods") or []]
    variants = BenchConfig(arch="", forget=(), variants=config.variants)
    for name in [*config.methods, *per_set]:
        lethe.method_settings(*variants.resolve(name))
    check_method_settings([], config.overrides)


TASK = BenchTask(
    "classification",
    ClassificationBenchConfig,
    run_benchmark,
    check=check_benchmark,
    merge=merge_benchmark,
    options=frozenset({"forget_set", "methods", "models_only"}),
)
