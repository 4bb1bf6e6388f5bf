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
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lethe
from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe.pretrained import check_pretrained
from lethe.tasks import BenchTask, RunOptions
from lethe_segmentation import bench as seg_bench
from lethe_segmentation.bench import SegmentationData, SegmentationModel
from lethe_segmentation.checkpoints import load_model, save_model
from lethe_segmentation.datasets import load_dataset, parse_classes
from lethe_segmentation.models import MODELS, canonical_arch, encoder_names
from lethe_segmentation.pipeline import CLASS_WEIGHTS, SegSplits, TrainRecipe, evaluate_model
from lethe_vision.bench_config import BenchConfigBase
from lethe_vision.report import markdown_table
from lethe_vision.speed import (
    TARGETS_NOTE,
    SVDStepSettings,
    check_svd_step,
    class_list,
    measure_svd_steps,
    one_entry,
    shared_settings,
    summarise_svd,
    svd_data_file,
    svd_report_lines,
    svd_step_header,
    svd_targets,
    write_result_files,
)

#: quality columns of a segmentation SVD row: (forgetting, lower is better; retention, higher is better)
SEGMENTATION_QUALITY = ("recall_forget", "miou_retain")


@dataclass(kw_only=True)
class SegmentationSpeedConfig(BenchConfigBase):
    """A segmentation speed benchmark YAML (the shared keys in ``lethe_vision.bench_config``): the
    original model of ``model:``, ``data:``, ``recipe``, ``val_fraction`` and ``cache`` (those of
    ``lethe_segmentation.bench.SegmentationBenchConfig``, so the same cached original is reused),
    one forget set, one seed, and how the SVD step is measured (``svd_steps:``; its alphas are
    ``overrides.svd: {alpha_r, alpha_f}``, SVD's published defaults otherwise). The SVD step's
    batch size is ``svd_steps.batch_size``, so the top-level ``batch_size`` is not taken."""

    task: str = "speed-segmentation"
    model: SegmentationModel = field(default_factory=SegmentationModel)
    data: SegmentationData = field(default_factory=SegmentationData)
    #: training the original (``recipe.batch_size``: the training batch size)
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    methods: tuple[str, ...] = ("svd",)
    #: not taken: the SVD step's batch size is ``svd_steps.batch_size``
    batch_size: int | None = lethe.setting(None, ge=1)
    #: share of train held out for tuning when the dataset has no val split of its own
    val_fraction: float = lethe.setting(0.1, ge=0, lt=1)
    #: folder keeping the original for a later run of the same settings (None: no cache)
    cache: str | None = None
    svd_steps: SVDStepSettings = field(default_factory=SVDStepSettings)

    def __post_init__(self) -> None:
        if tuple(self.methods) != ("svd",):
            raise ConfigError(f"methods: the segmentation speed benchmark measures svd, got {list(self.methods)}")
        if self.batch_size is not None:
            raise ConfigError("batch_size: the SVD step's batch size is svd_steps.batch_size")
        one_entry(self.forget_sets, "forget_sets", "forget set")
        one_entry(self.seeds, "seeds", "seed")
        self._shared = shared_settings(self.overrides, ("svd",))
        check_svd_step(self.svd_steps, self.svd)

    @property
    def seed(self) -> int:
        """The one seed: the splits, the original and the first run of each SVD step."""
        return self.seeds[0]

    @property
    def svd(self) -> dict[str, Any]:
        """``alpha_r`` and ``alpha_f`` of every SVD step."""
        return self._shared["svd"]


def check_benchmark(config: SegmentationSpeedConfig) -> None:
    """What the config's types cannot say, checked without data (the runner's ``--check``): the
    architecture, encoder and pretrained names and the recipe's class weighting."""
    if canonical_arch(config.model.arch) not in MODELS:
        raise ConfigError(
            f"model.arch: unknown architecture {config.model.arch!r}; choose from {', '.join(MODELS.names())}"
        )
    encoder = config.model.encoder
    if not encoder.startswith(("tu-", "timm-")) and encoder not in encoder_names():
        raise ConfigError(f"model.encoder: unknown encoder {encoder!r}; smp's own or any timm model as tu-<name>")
    if config.model.pretrained:
        check_pretrained(config.model.pretrained)
    if config.recipe.class_weights not in CLASS_WEIGHTS:
        raise ConfigError(
            f"recipe.class_weights must be one of {', '.join(CLASS_WEIGHTS)}, got {config.recipe.class_weights!r}"
        )


def side_images(splits: SegSplits, forget: tuple[int, ...], samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Training-image indices of both sides: the ``samples`` images with the largest share of the
    forgotten classes' pixels (forget) and the ``samples`` with the smallest (retained)."""
    share = splits.train.share_of(forget)
    with_class = int((share > 0).sum())
    if samples > with_class or 2 * samples > len(share):
        raise ConfigError(f"{samples} images per side do not fit: {with_class} training images contain the "
                          f"class and {len(share)} in all (the sides must not overlap)")  # fmt: skip
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
    lines = [f"# {title}", "", *(f"- **{k}**: {v}" for k, v in result["header"].items()), ""]
    lines += ["## Original model", "",
              markdown_table([{"method": "original", **result["original"]}], SEGMENTATION_QUALITY), ""]  # fmt: skip
    lines += svd_report_lines(result["svd"], result["svd_runs"], SEGMENTATION_QUALITY, ("vs_original_training",))
    lines += ["`vs_original_training`: the step's seconds over the original model's training seconds "
              "(the retrain oracle's recipe is the same).", "",
              "## Targets of issue 7", "", markdown_table(result["targets"], ("value", "met", "met_within_spread")),
              TARGETS_NOTE]  # fmt: skip
    return write_result_files(out, result, lines)


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
    bundle = load_dataset(config.dataset, config.data_root)
    forget = parse_classes(class_list(config.forget_sets[0]), bundle.classes, bundle.name)
    bench = seg_bench.BenchConfig(
        spec=config.model.spec(bundle.num_classes), forget_sets=[forget], resolution=config.data.resolution(),
        recipe=config.recipe, val_fraction=config.val_fraction, seed=config.seed, cache=config.cache,
    )  # fmt: skip
    engine = Engine(seed=config.seed, progress=False, num_workers=config.workers)
    splits = seg_bench.bench_splits(bundle, bench)
    original, train_seconds, _ = seg_bench.cached_original(bench, splits, engine, config.dataset, log)
    first = quality(original, splits, forget, engine)
    with tempfile.TemporaryDirectory(prefix="lethe-speed-seg-") as tmp:
        workdir = Path(tmp)
        checkpoint = workdir / "original.safetensors"
        info = {"model": bench.spec.to_dict(), "dataset": config.dataset, "classes": bundle.classes,
                "resolution": splits.resolution.to_dict()}  # fmt: skip
        save_model(original, checkpoint, info)
        inputs = {}
        for samples in config.svd_steps.samples:
            retain_order, forget_order = side_images(splits, forget, samples)
            path = svd_data_file(workdir / f"data-{samples}.pt", *image_tensors(splits, retain_order),
                                 *image_tensors(splits, forget_order))  # fmt: skip
            inputs[samples] = (path, {"per_class": None, "forget_distinct": samples})
        job_base = {"checkpoints": "lethe_segmentation.checkpoints", "checkpoint": str(checkpoint),
                    "device": str(engine.device), "forget_classes": list(forget),
                    "num_classes": bundle.num_classes}  # fmt: skip

        def evaluate(path: Path) -> dict[str, float]:
            return quality(load_model(path)[0], splits, forget, engine)

        runs = measure_svd_steps(config.svd_steps, config.svd, config.seed, inputs, job_base, evaluate, workdir, log)
    svd = summarise_svd(runs, SEGMENTATION_QUALITY)
    for row in svd:
        row["vs_original_training"] = row["seconds"] / train_seconds if train_seconds else float("nan")
    header = {
        "dataset": bundle.name, "model": f"{bench.spec.arch}, encoder {bench.spec.encoder}, encoder weights "
        f"{bench.spec.encoder_weights or 'none (random init)'}, {sum(p.numel() for p in original.parameters()):,} "
        "parameters", "resolution": f"{splits.resolution.to_dict()}", "recipe": dataclasses.asdict(bench.recipe),
        "forget": [f"{c} ({bundle.classes[c]})" for c in forget],
        "original": f"{bench.cache}/original.safetensors" if bench.cache else "trained in this run",
        "original training seconds": round(train_seconds, 1),
        **svd_step_header(config.svd_steps, config.svd, svd, "images"), "threads": torch.get_num_threads(),
        "config": options.config_path, "note": config.note, **seg_bench.environment(engine),
    }  # fmt: skip
    result = {"header": header, "original": first, "svd": svd, "svd_runs": runs,
              "targets": svd_targets(svd, SEGMENTATION_QUALITY)}  # fmt: skip
    title = config.title or f"Speed: the SVD step on {bundle.name} with {bench.spec.arch}-{bench.spec.encoder}"
    write_report(result, Path(out), title)
    return result


#: the speed-segmentation task of ``benchmarks/run.py``
TASK = BenchTask("speed-segmentation", SegmentationSpeedConfig, run_benchmark, check=check_benchmark)
