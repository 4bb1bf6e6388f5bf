"""Speed benchmark (issue 7) for the largest model of the task packages: lethe's SVD step against
the reference of ``lethe_vision.reference.svd_reference`` on the segmentation benchmark's smp Unet.

It takes the original model of a segmentation benchmark config (the same ``model:``, ``data:``,
``recipe``, ``val_fraction`` and ``cache`` as ``lethe_segmentation.bench``'s
``SegmentationBenchConfig``, so a model trained by ``make bench-segmentation`` is reused), then
measures the SVD step at every ``svd_steps.samples`` count of images per side, exactly as
``lethe_classification.speed`` does for classification, through ``lethe_vision.speed`` (fresh
process per step, peak memory above the level before the step, ours / ours-exact / ours-fast /
reference, randomised steps over ``svd_steps.repeats`` seeds).
The forget side is the training images with the largest share of forgotten-class pixels, the
retained side those with the smallest share (the choice ``lethe_segmentation``'s SVD makes); the
two sides never share an image. Quality beside every time: ``recall_forget`` (share of the
forgotten class's test pixels still predicted as it; lower is better) and ``miou_retain`` (mean IoU
over the kept classes on test images).

``SegmentationSpeedConfig`` is the YAML's schema; ``TASK`` registers it as the ``speed-segmentation``
task of ``benchmarks/run.py`` (``lethe.tasks``):
``python benchmarks/run.py benchmarks/configs/speed-camvid-unet-resnet18-cpu.yaml`` runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lethe
from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe.tasks import BenchTask, RunOptions
from lethe_segmentation import bench as seg_bench
from lethe_segmentation.bench import SegmentationData, SegmentationModel
from lethe_segmentation.datasets import load_dataset, parse_classes
from lethe_segmentation.pipeline import SegSplits, TrainRecipe, evaluate_model
from lethe_vision import speed as vision_speed
from lethe_vision.bench_config import class_list

#: quality columns of a segmentation SVD row: (forgetting, lower is better; retention, higher is better)
SEGMENTATION_QUALITY = ("recall_forget", "miou_retain")


@dataclass(kw_only=True)
class SegmentationSpeedConfig(vision_speed.SpeedConfigBase):
    """A segmentation speed benchmark YAML (the keys every speed config shares in
    ``lethe_vision.speed.SpeedConfigBase``): the original model of ``model:``, ``data:``,
    ``recipe``, ``val_fraction`` and ``cache`` (those of
    ``lethe_segmentation.bench.SegmentationBenchConfig``, so the same cached original is reused),
    one forget set, one seed, and how the SVD step is measured (``svd_steps:``; its alphas are
    ``overrides.svd: {alpha_r, alpha_f}``, SVD's published defaults otherwise). The SVD step's
    batch size is ``svd_steps.batch_size``."""

    task: str = "speed-segmentation"
    model: SegmentationModel = field(default_factory=SegmentationModel)
    data: SegmentationData = field(default_factory=SegmentationData)
    #: training the original (``recipe.batch_size``: the training batch size)
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    methods: tuple[str, ...] = ("svd",)
    #: share of train held out for tuning when the dataset has no val split of its own
    val_fraction: float = lethe.setting(0.1, ge=0, lt=1)


def check_benchmark(config: SegmentationSpeedConfig) -> None:
    """What the config's types cannot say, checked without data (the runner's ``--check``): the
    model and recipe, as the segmentation benchmark checks them (``check_model_recipe``)."""
    seg_bench.check_model_recipe(config.model, config.recipe)


def side_images(splits: SegSplits, forget: tuple[int, ...], samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Training-image indices of both sides: the ``samples`` images with the largest share of the
    forgotten classes' pixels (forget) and the ``samples`` with the smallest (retained)."""
    share = splits.train.share_of(forget)
    with_class = int((share > 0).sum())
    if samples > with_class or 2 * samples > len(share):
        raise ConfigError(
            f"{samples} images per side do not fit: {with_class} training images contain the "
            f"class and {len(share)} in all (the sides must not overlap)"
        )
    forget_order = np.argsort(-share, kind="stable")[:samples]
    retain_order = np.argsort(share, kind="stable")[:samples]
    return retain_order, forget_order


def image_tensors(splits: SegSplits, order: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (evaluation transform, no augmentation) and label masks of training images ``order``."""
    data = splits.dataset(splits.train.subset(order), augment=False)
    items = [data[i] for i in range(len(data))]
    return torch.stack([x for x, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])


def quality(model: torch.nn.Module, splits: SegSplits, forget: tuple[int, ...], engine: Engine) -> dict[str, float]:
    """``recall_forget`` and ``miou_retain`` on the test images."""
    metrics = evaluate_model(model, splits, forget, engine, train_forget=False)
    return {k: float(metrics[k]) for k in SEGMENTATION_QUALITY}


def write_report(result: Mapping[str, Any], out: Path, title: str) -> str:
    """``results.json`` and ``results.md`` under ``out``, atomically; returns the Markdown."""
    note = (
        "`vs_original_training`: the step's seconds over the original model's training seconds "
        "(the retrain oracle's recipe is the same)."
    )
    return vision_speed.write_speed_report(
        out, result, title, SEGMENTATION_QUALITY, SEGMENTATION_QUALITY, ("vs_original_training",), [note, ""]
    )


def speed_original(
    config: SegmentationSpeedConfig, engine: Engine, log: Callable[[str], None] = print
) -> tuple[seg_bench.BenchConfig, SegSplits, tuple[int, ...], torch.nn.Module, float]:
    """The config's benchmark settings, splits, forget classes, and its original model (trained, or
    read from ``cache``: the same cache key as the segmentation benchmark's) with its training seconds."""
    bundle = load_dataset(config.dataset, config.data_root)
    forget = parse_classes(class_list(config.forget_sets[0]), bundle.classes, bundle.name)
    bench = seg_bench.BenchConfig(
        spec=config.model.spec(bundle.num_classes),
        forget_sets=[forget],
        resolution=config.data.resolution(),
        recipe=config.recipe,
        val_fraction=config.val_fraction,
        seed=config.seed,
        cache=config.cache,
    )
    splits = seg_bench.bench_splits(bundle, bench)
    original, train_seconds, _ = seg_bench.cached_original(bench, splits, engine, config.dataset, log)
    return bench, splits, forget, original, train_seconds


def run_benchmark(
    config: SegmentationSpeedConfig,
    out: str | Path,
    options: RunOptions = RunOptions(),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run a segmentation speed config and write results.json and results.md under ``out``: the
    ``speed-segmentation`` task of ``benchmarks/run.py`` (``options.seeds``: ``--seeds``, one seed)."""
    if options.seeds:
        config = dataclasses.replace(config, seeds=tuple(options.seeds))
    engine = Engine(seed=config.seed, progress=False, num_workers=config.workers)
    bench, splits, forget, original, train_seconds = speed_original(config, engine, log)
    bundle = splits.bundle
    first = quality(original, splits, forget, engine)

    def sides(samples: int) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
        retain_order, forget_order = side_images(splits, forget, samples)
        tensors = (*image_tensors(splits, retain_order), *image_tensors(splits, forget_order))
        return tensors, {"per_class": None, "forget_distinct": samples}

    info = {
        "model": bench.spec.to_dict(),
        "dataset": config.dataset,
        "classes": bundle.classes,
        "resolution": splits.resolution.to_dict(),
    }
    job = {
        "checkpoints": "lethe_segmentation.checkpoints",
        "device": str(engine.device),
        "forget_classes": list(forget),
        "num_classes": bundle.num_classes,
    }
    runs = vision_speed.measure_svd(
        config, original, info, sides, job, lambda model: quality(model, splits, forget, engine), log
    )
    svd = vision_speed.summarise_svd(runs, SEGMENTATION_QUALITY)
    for row in svd:
        row["vs_original_training"] = row["seconds"] / train_seconds if train_seconds else float("nan")
    header = {
        "dataset": bundle.name,
        "model": f"{bench.spec.arch}, encoder {bench.spec.encoder}, encoder weights "
        f"{bench.spec.encoder_weights or 'none (random init)'}, {sum(p.numel() for p in original.parameters()):,} "
        "parameters",
        "resolution": f"{splits.resolution.to_dict()}",
        "recipe": dataclasses.asdict(bench.recipe),
        "forget": [f"{c} ({bundle.classes[c]})" for c in forget],
        "original": f"{bench.cache}/original.safetensors" if bench.cache else "trained in this run",
        "original training seconds": round(train_seconds, 1),
        **vision_speed.svd_step_header(config.svd_steps, config.svd, svd, "images"),
    }
    result = vision_speed.speed_result(
        header,
        config,
        options,
        seg_bench.environment(engine),
        first,
        svd,
        runs,
        targets=vision_speed.svd_targets(svd, SEGMENTATION_QUALITY),
    )
    title = config.title or f"Speed: the SVD step on {bundle.name} with {bench.spec.arch}-{bench.spec.encoder}"
    write_report(result, Path(out), title)
    return result


#: the speed-segmentation task of ``benchmarks/run.py``
TASK = BenchTask("speed-segmentation", SegmentationSpeedConfig, run_benchmark, check=check_benchmark)
