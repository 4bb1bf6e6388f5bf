"""``bench``: the original model, and for each forget set the retrain oracle (forgotten class
relabelled as ignore, same recipe) and every method, evaluated on one confusion matrix each.

Writes ``results.json`` (everything, confusion matrices included), ``results.md`` (settings header
and tables) and, per forget set, ``overlays_<classes>.png`` and ``iou_<classes>.png``. With a
``cache`` folder the original and oracle checkpoints are kept there and reused by a later run
with the same dataset, model, resolution, recipe and seed. ``resume`` reuses the forget sets an
earlier, otherwise identical run already wrote to ``results.json`` (same settings, device and
versions), so a long CPU benchmark can be finished in parts.

``SegmentationBenchConfig`` is the benchmark YAML's schema (``lethe_vision.bench_config``: ``model:``
the smp architecture and encoder, ``data:`` the resolution); ``TASK`` registers ``run_benchmark``
and ``check_benchmark`` as the ``segmentation`` task of ``benchmarks/run.py`` (``lethe.tasks``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import lethe
from lethe.cli_support import check_method_settings
from lethe.engine import Engine
from lethe.engine import environment as core_environment
from lethe.errors import ConfigError
from lethe.io import main_print, write_json_atomic
from lethe.pretrained import check_pretrained
from lethe.tasks import BenchTask, RunOptions
from lethe_segmentation.checkpoints import load_model, save_model
from lethe_segmentation.confusion import predict
from lethe_segmentation.datasets import SegBundle, load_dataset, parse_classes
from lethe_segmentation.metrics import METRICS, distribution_gap
from lethe_segmentation.models import MODELS, ModelSpec, build_model, canonical_arch, encoder_names
from lethe_segmentation.pipeline import (
    CLASS_WEIGHTS,
    PIXEL_METHODS,
    SegSplits,
    TrainRecipe,
    check_forget,
    evaluate_model,
    make_splits,
    resolve_resolution,
    train_model,
    unlearn_model,
)
from lethe_segmentation.report import plot_iou, plot_overlays, write_report
from lethe_segmentation.transforms import Resolution, denormalize, parse_size
from lethe_vision.bench_config import BenchConfigBase, ModelSection, class_list, resolve_variant, run_settings


@dataclass
class BenchConfig:
    """One benchmark run (one original model, one oracle per forget set)."""

    spec: ModelSpec
    forget_sets: list[tuple[int, ...]]
    methods: tuple[str, ...] = ("delete", "svd", "finetune", "random_label")
    resolution: Resolution = field(default_factory=Resolution)
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    val_fraction: float = 0.1
    seed: int = 0
    unlearn_batch_size: int = 8
    retain_images: int = 32
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    overlays: int = 4
    cache: str | None = None
    #: named settings of a method, listed in ``methods`` like one (``resolve_variant``)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)


def environment(engine: Engine) -> dict[str, str]:
    """``lethe.engine.environment`` plus the versions of segmentation-models-pytorch and albumentations."""
    import albumentations
    import segmentation_models_pytorch as smp

    return core_environment(
        engine, segmentation_models_pytorch=smp.__version__, albumentations=albumentations.__version__
    )


def _cached_train(
    config: BenchConfig, splits: SegSplits, engine: Engine, dataset: str, ignore: tuple[int, ...], name: str, log
) -> tuple[nn.Module, float, list]:
    """Train (original: ``ignore=()``; oracle: the forgotten classes) or reuse a cached checkpoint."""
    key = {
        "dataset": dataset,
        "model": config.spec.to_dict(),
        "resolution": splits.resolution.to_dict(),
        "recipe": asdict(config.recipe),
        "seed": config.seed,
        "val_fraction": config.val_fraction,
        "ignored_classes": list(ignore),
    }
    path = Path(config.cache) / f"{name}.safetensors" if config.cache else None
    if path is not None and path.is_file():
        model, info = load_model(path)
        if json.loads(json.dumps(info.get("bench_key"))) == json.loads(json.dumps(key)):
            log(f"{name}: reusing {path}")
            return model, float(info["train_seconds"]), info.get("train_log", [])
    model, seconds, train_log = train_model(config.spec, splits, config.recipe, engine, ignore, desc=name)
    if path is not None:
        info = {
            "model": config.spec.to_dict(),
            "dataset": dataset,
            "classes": splits.bundle.classes,
            "resolution": splits.resolution.to_dict(),
            "split": {"val_fraction": config.val_fraction, "seed": config.seed},
            "ignored_classes": list(ignore),
            "recipe": asdict(config.recipe),
            "train_seconds": seconds,
            "train_log": train_log,
            "bench_key": key,
        }
        save_model(model, path, info)
    return model, seconds, train_log


def _row(name: str, model: nn.Module, splits: SegSplits, forget, engine: Engine, seconds: float, **extra) -> dict:
    metrics = evaluate_model(model, splits, forget, engine)
    return {"method": name, **metrics, "seconds": seconds, **extra}


def _overlay_data(models: Mapping[str, nn.Module], splits: SegSplits, forget, engine: Engine, count: int) -> dict:
    """The ``count`` test images with the largest share of forgotten pixels, with predictions."""
    test = splits.test
    if count < 1 or not len(test):
        return {}
    order = np.argsort(-test.share_of(forget), kind="stable")[:count]
    data = splits.dataset(test.subset(order), augment=False)
    items = [data[i] for i in range(len(data))]
    x = torch.stack([i[0] for i in items])
    truth = [np.where(i[1].numpy() < 0, 255, i[1].numpy()).astype(np.uint8) for i in items]
    preds = {name: list(predict(model, x, engine)) for name, model in models.items()}
    return {"images": [denormalize(i[0]) for i in items], "truth": truth, "predictions": preds}


def run_bench(
    bundle: SegBundle,
    dataset: str,
    config: BenchConfig,
    engine: Engine,
    log: Callable[[str], None] = main_print,
    on_run: Callable[[dict], None] | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the original and each oracle, run each method per forget set, evaluate everything.
    ``on_run(result)`` is called after each forget set with the result so far (partial writes);
    forget sets already in ``previous`` (an earlier ``results.json`` of the same settings) are
    taken from it instead of being run again."""
    check_methods(config.methods, config.method_overrides, config.variants)
    if not config.forget_sets:
        raise ConfigError("name at least one forget set")
    splits = bench_splits(bundle, config)
    forget_sets = [check_forget(splits, f) for f in config.forget_sets]

    original, train_seconds, train_log = cached_original(config, splits, engine, dataset, log)
    spec = config.spec
    res = splits.resolution
    header = {
        "dataset": bundle.name,
        "model": f"{spec.arch}, encoder {spec.encoder}"
        + (f", encoder_depth {spec.encoder_depth}" if spec.encoder_depth else "")
        + (f", decoder_channels {spec.decoder_channels}" if spec.decoder_channels else "")
        + (f", {spec.kwargs}" if spec.kwargs else "")
        + f", encoder weights {spec.encoder_weights or spec.pretrained or 'none (random init)'}",
        "resolution": (
            f"resized to {res.size[0]}x{res.size[1]}"
            if res.size
            else f"native (evaluation padded to {splits.largest[0]}x{splits.largest[1]} rounded up to "
            f"/{res.divisor}, padding ignored)"
        )
        + f", training crop {'x'.join(map(str, res.train_crop(splits.native)))}, random scale {res.scale}",
        "recipe": asdict(config.recipe),
        "forget sets": [[f"{c} ({bundle.classes[c]})" for c in f] for f in forget_sets],
        "methods": list(config.methods),
        "method overrides": config.method_overrides,
        **({"variants": config.variants} if config.variants else {}),
        "unlearn batch size": config.unlearn_batch_size,
        "svd retain images": config.retain_images,
        "train images": len(splits.train),
        "validation images (tuning only)": f"{len(splits.validation)}, {splits.val_source}",
        "test images": len(splits.test),
        "seed": config.seed,
        **environment(engine),
    }
    done = _reusable_runs(previous, header) if previous else {}
    runs: list[dict[str, Any]] = []
    result = {"header": header, "classes": bundle.classes, "runs": runs}
    for forget in forget_sets:
        names = "_".join(bundle.classes[c].lower() for c in forget)
        if tuple(forget) in done:
            log(f"forget {[bundle.classes[c] for c in forget]}: taken from the earlier results.json")
            runs.append(done[tuple(forget)])
            header["forget sets done"] = f"{len(runs)} of {len(forget_sets)}"
            continue
        log(f"forget {[bundle.classes[c] for c in forget]}")
        rows = [_row("original", original, splits, forget, engine, train_seconds, train_log=train_log)]
        oracle, seconds, oracle_log = _cached_train(config, splits, engine, dataset, forget, f"retrain_{names}", log)
        oracle_row = _row("retrain", oracle, splits, forget, engine, seconds, train_log=oracle_log)
        models = {"original": original}
        for method in config.methods:
            registered, overrides = resolve_variant(method, config.variants, config.method_overrides)
            model, record = unlearn_model(
                original,
                registered,
                splits,
                forget,
                engine,
                overrides,
                config.unlearn_batch_size,
                config.retain_images,
            )
            extra = {k: v for k, v in record.extra.items() if k != "grid"}
            rows.append(
                _row(
                    method,
                    model,
                    splits,
                    forget,
                    engine,
                    record.seconds,
                    settings=record.settings,
                    log=record.log,
                    extra=extra,
                )
            )
            models[method] = model
            log(f"{method:>13}: " + ", ".join(f"{k} {rows[-1][k]:.2f}" for k in METRICS[:4]))
        rows.append(oracle_row)
        models["retrain"] = oracle
        for row in rows:
            row["miou_retain_drop"] = rows[0]["miou_retain"] - row["miou_retain"]
            row["forget_to_gap"] = distribution_gap(row["forget_to"], oracle_row["forget_to"])
            oracle_seconds = oracle_row["seconds"]
            row["seconds_vs_retrain"] = row["seconds"] / oracle_seconds if oracle_seconds else float("nan")
        overlays = _overlay_data(models, splits, forget, engine, config.overlays)
        runs.append({"forget": list(forget), "name": names, "rows": rows, "_overlays": overlays})
        header["forget sets done"] = f"{len(runs)} of {len(forget_sets)}"
        log(f"forget {names} done")
        if on_run is not None:
            on_run(result)

    return result


#: header entries that may differ between the parts of a resumed run
RESUME_FREE = frozenset({"date", "config", "forget sets", "forget sets done"})


def _reusable_runs(previous: Mapping[str, Any], header: Mapping[str, Any]) -> dict[tuple[int, ...], dict]:
    """The runs of an earlier result, by forget set, after checking it was made with the same
    settings, device and versions as ``header`` (a ConfigError names the first that differs)."""
    now = json.loads(json.dumps({k: v for k, v in header.items() if k not in RESUME_FREE}))
    before = {k: v for k, v in previous.get("header", {}).items() if k not in RESUME_FREE}
    for key in sorted(set(now) | set(before)):
        if now.get(key) != before.get(key):
            raise ConfigError(
                f"cannot resume: the earlier results.json has {key} = {before.get(key)!r}, this run {now.get(key)!r}"
            )
    return {tuple(run["forget"]): dict(run) for run in previous.get("runs", [])}


def write_bench(result: Mapping[str, Any], out: str | Path, title: str, notes: Sequence[str] = ()) -> None:
    """Write ``results.json``, ``results.md``, overlays and IoU plots under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classes = result["classes"]
    runs = result["runs"]
    for run in runs:
        names = ", ".join(classes[c] for c in run["forget"])
        overlays = run.get("_overlays") or {}
        if overlays:
            plot_overlays(
                out / f"overlays_{run['name']}.png",
                overlays["images"],
                overlays["truth"],
                overlays["predictions"],
                classes,
                f"{title}: forgetting {names}",
            )
        plot_iou(out / f"iou_{run['name']}.png", run, classes, f"{title}: forgetting {names}")
    clean = {**result, "runs": [{k: v for k, v in run.items() if not k.startswith("_")} for run in runs]}
    write_json_atomic(out / "results.json", clean)
    write_report(out / "results.md", title, result["header"], runs, classes, notes)


def bench_splits(bundle: SegBundle, config: BenchConfig) -> SegSplits:
    """The benchmark's train / validation / test splits at the model's resolved resolution."""
    splits = make_splits(bundle, config.resolution, config.val_fraction, config.seed)
    splits.resolution = resolve_resolution(build_model(config.spec), config.spec, config.resolution, splits.native)
    return splits


def cached_original(
    config: BenchConfig, splits: SegSplits, engine: Engine, dataset: str, log: Callable[[str], None] = main_print
) -> tuple[nn.Module, float, list]:
    """The benchmark's original model: trained with ``config.recipe``, or reused from ``config.cache``
    when a checkpoint of the same settings is there (the same file ``run_bench`` uses)."""
    return _cached_train(config, splits, engine, dataset, (), "original", log)


# --- the benchmark YAML (benchmarks/configs/camvid-*.yaml): the segmentation task of lethe.tasks ---


@dataclass(kw_only=True)
class SegmentationModel(ModelSection):
    """``model:``: an smp architecture (``Unet``, ``FPN``, ``DeepLabV3Plus``, ...) on an encoder
    (``resnet18``, ``tu-<timm name>``, ...). ``encoder_depth``, ``decoder_channels`` and ``kwargs``
    go to the architecture; ``encoder_weights``: smp's weight name (``imagenet``, downloaded; None:
    random initialisation); ``pretrained``: ``lethe.pretrained`` weights copied into the encoder
    instead. Segmentation models have no ``width``."""

    arch: str = "Unet"
    encoder: str = "resnet18"
    encoder_depth: int | None = lethe.setting(None, ge=1)
    decoder_channels: tuple[int, ...] | None = lethe.setting(None, ge=1)
    #: further keyword arguments of the architecture
    kwargs: dict[str, Any] = field(default_factory=dict)
    encoder_weights: str | None = None

    def __post_init__(self) -> None:
        if self.width is not None:
            raise ConfigError("model.width: segmentation models have no width (set encoder, decoder_channels)")
        if self.pretrained and self.encoder_weights:
            raise ConfigError("model: give encoder_weights or pretrained, not both")

    def spec(self, num_classes: int) -> ModelSpec:
        """The ``ModelSpec`` of this section for ``num_classes`` classes."""
        return ModelSpec(
            arch=self.arch,
            encoder=self.encoder,
            num_classes=num_classes,
            encoder_depth=self.encoder_depth,
            decoder_channels=list(self.decoder_channels) if self.decoder_channels is not None else None,
            kwargs=dict(self.kwargs),
            encoder_weights=self.encoder_weights,
            pretrained=self.pretrained,
        )


@dataclass(kw_only=True)
class SegmentationData:
    """``data:``: the resolution. ``size``: resize every image to HEIGHTxWIDTH (None: native, with
    evaluation padded to the model's stride); ``crop``: the training crop (default ``size``, or the
    native size rounded down to the stride); ``scale``: the training augmentation's random scale
    range [low, high]."""

    size: str | None = None
    crop: str | None = None
    scale: tuple[float, ...] = lethe.setting((0.75, 1.5), gt=0)

    def __post_init__(self) -> None:
        self.resolution()  # sizes of the form HEIGHTxWIDTH
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"data.scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")

    def resolution(self) -> Resolution:
        return Resolution(parse_size(self.size, "data.size"), parse_size(self.crop, "data.crop"), scale=self.scale)


@dataclass(kw_only=True)
class SegmentationBenchConfig(BenchConfigBase):
    """A segmentation benchmark YAML (the shared keys in ``lethe_vision.bench_config``): one original
    model, then per forget set the retrain oracle and every method. One seed per config."""

    task: str = "segmentation"
    model: SegmentationModel = field(default_factory=SegmentationModel)
    data: SegmentationData = field(default_factory=SegmentationData)
    #: training the original and the oracles (``recipe.batch_size``: the training batch size)
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    methods: tuple[str, ...] = BenchConfig.methods
    batch_size: int = lethe.setting(8, ge=1)
    #: share of train held out for tuning when the dataset has no val split of its own
    val_fraction: float = lethe.setting(0.1, ge=0, lt=1)
    #: retained training images (the smallest share of the forgotten classes) SVD reads
    retain_images: int = lethe.setting(32, ge=1)
    #: test images in each overlay figure
    overlays: int = lethe.setting(4, ge=0)
    #: folder keeping the original and the oracles for a later run of the same settings (None: no cache)
    cache: str | None = None
    #: named settings of a method, listed in ``methods`` like one: ``{delete-20-epochs: {method:
    #: delete, overrides: {stop_when_forgotten: false}}}`` (its overrides go over the method's own)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.seeds) != 1:
            raise ConfigError(f"seeds: a segmentation benchmark runs one seed, got {list(self.seeds)}")


def bench_config(config: SegmentationBenchConfig, bundle: SegBundle, seed: int | None = None) -> BenchConfig:
    """The run settings of ``config`` on ``bundle`` (``lethe_vision.bench_config.run_settings``; its
    seed unless ``seed``); unknown forget classes are ConfigErrors naming the dataset's classes."""
    return run_settings(
        BenchConfig,
        config,
        spec=config.model.spec(bundle.num_classes),
        forget_sets=[parse_classes(class_list(f), bundle.classes, bundle.name) for f in config.forget_sets],
        resolution=config.data.resolution(),
        seed=config.seeds[0] if seed is None else seed,
    )


def run_config(
    config: SegmentationBenchConfig, out: str | Path, engine: Engine | None = None, options: RunOptions = RunOptions()
) -> dict[str, Any]:
    """Run a segmentation benchmark config and write it under ``out`` (``options.resume``: keep the
    forget sets ``out/results.json`` already has; ``options.seeds``: run this one seed instead)."""
    seed = _one_seed(options.seeds) if options.seeds else config.seeds[0]
    bundle = load_dataset(config.dataset, config.data_root)
    run = bench_config(config, bundle, seed)
    spec = run.spec
    engine = engine or Engine(seed=seed, num_workers=config.workers, progress=False)
    notes = [config.note] if config.note else []
    title = config.title or f"Class forgetting in segmentation: {bundle.name}, {spec.arch} {spec.encoder}"

    def write(result: dict[str, Any]) -> None:
        if options.config_path:
            result["header"]["config"] = options.config_path
        write_bench(result, out, title, notes)

    previous = None
    if options.resume and (Path(out) / "results.json").is_file():
        previous = json.loads((Path(out) / "results.json").read_text())
    return run_bench(bundle, config.dataset, run, engine, on_run=write, previous=previous)


def _one_seed(seeds: Sequence[int]) -> int:
    if len(seeds) != 1:
        raise ConfigError(f"--seeds: a segmentation benchmark runs one seed, got {list(seeds)}")
    return seeds[0]


def run_benchmark(config: SegmentationBenchConfig, out: Path, options: RunOptions = RunOptions()) -> None:
    """``run_config`` with a progress bar on a terminal: the segmentation task of ``benchmarks/run.py``
    (``options.resume``: its ``--resume``)."""
    seed = _one_seed(options.seeds) if options.seeds else config.seeds[0]
    engine = Engine(seed=seed, progress=sys.stderr.isatty(), num_workers=config.workers)
    run_config(config, out, engine, options)


def check_methods(
    methods: Sequence[str],
    overrides: Mapping[str, Mapping[str, Any]],
    variants: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Every method (or variant's method) is registered and has a per-pixel form; every override
    names settings of its method."""
    for name in methods:
        method, settings = resolve_variant(name, variants or {}, overrides)
        lethe.method_settings(method, settings)
        if method not in PIXEL_METHODS:
            choices = ", ".join(PIXEL_METHODS.names())
            raise ConfigError(f"method {method!r} has no per-pixel form; choose from {choices}")
    check_method_settings([], overrides)


def check_model_recipe(model: SegmentationModel, recipe: TrainRecipe) -> None:
    """The ``model:`` section's architecture, encoder and pretrained names and the recipe's class
    weighting, checked without building the model or loading data."""
    if canonical_arch(model.arch) not in MODELS:
        names = ", ".join(MODELS.names())
        raise ConfigError(f"model.arch: unknown architecture {model.arch!r}; choose from {names}")
    if not model.encoder.startswith(("tu-", "timm-")) and model.encoder not in encoder_names():
        raise ConfigError(f"model.encoder: unknown encoder {model.encoder!r}; smp's own or any timm model as tu-<name>")
    if model.pretrained:
        check_pretrained(model.pretrained)
    if recipe.class_weights not in CLASS_WEIGHTS:
        choices = ", ".join(CLASS_WEIGHTS)
        raise ConfigError(f"recipe.class_weights must be one of {choices}, got {recipe.class_weights!r}")


def check_benchmark(config: SegmentationBenchConfig) -> None:
    """What the config's types cannot say, checked without data: the model and recipe
    (``check_model_recipe``), and the methods and their settings."""
    check_model_recipe(config.model, config.recipe)
    check_methods(config.methods, config.overrides, config.variants)


#: the segmentation task of ``benchmarks/run.py`` (entry point ``lethe.tasks``)
TASK = BenchTask(
    "segmentation", SegmentationBenchConfig, run_benchmark, check=check_benchmark, options=frozenset({"resume"})
)
