"""Speed benchmark (issue 7) for the largest model of the task packages: lethe's SVD step against
the reference of ``lethe_vision.reference.svd_reference`` on the segmentation benchmark's smp Unet.

It takes the original model of a segmentation benchmark config (the same keys, and the same
``cache`` file as ``lethe_segmentation.bench``, so a model trained by ``make bench-segmentation``
is reused), then measures the SVD step at every ``svd_samples`` count of images per side, exactly
as ``lethe_classification.speed`` does for classification, through ``lethe_vision.speed`` (fresh
process per step, peak memory above the level before the step, ours / ours-exact / ours-fast / reference,
randomised steps over ``svd_repeats`` seeds).
The forget side is the training images with the largest share of forgotten-class pixels, the
retained side those with the smallest share (the choice ``lethe_segmentation``'s SVD makes); the
two sides never share an image. Quality beside every time: ``recall_forget`` (share of the
forgotten class's test pixels still predicted as it; lower is better) and ``miou_retain`` (mean IoU
over the kept classes on test images).

``python benchmarks/run.py benchmarks/configs/speed-camvid-unet-resnet18-cpu.yaml`` runs it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lethe
from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe_segmentation import bench as seg_bench
from lethe_segmentation.checkpoints import load_model, save_model
from lethe_segmentation.pipeline import SegSplits, evaluate_model
from lethe_vision.report import markdown_table
from lethe_vision.speed import (
    TARGETS_NOTE,
    SVDStepSettings,
    check_svd_step,
    config_values,
    measure_svd_steps,
    summarise_svd,
    svd_data_file,
    svd_report_lines,
    svd_step_header,
    svd_targets,
    write_result_files,
)

#: quality columns of a segmentation SVD row: (forgetting, lower is better; retention, higher is better)
SEGMENTATION_QUALITY = ("recall_forget", "miou_retain")

#: keys of the YAML read by ``lethe_segmentation.bench.config_from_mapping`` (the model and its recipe)
SEGMENTATION_KEYS = {"dataset", "data_root", "forget", "arch", "encoder", "encoder_depth", "decoder_channels",
                     "model_kwargs", "encoder_weights", "size", "crop", "scale", "recipe", "val_fraction",
                     "cache", "workers"}  # fmt: skip


def check(cfg: Mapping[str, Any]) -> SVDStepSettings:
    """The SVD step settings of a segmentation speed YAML; unknown keys and bad values are
    ConfigErrors (the runner's ``--check``; loads no data)."""
    values = config_values(cfg)
    unknown = sorted(set(values) - SEGMENTATION_KEYS - {f.name for f in dataclasses.fields(SVDStepSettings)})
    if unknown:
        raise ConfigError(f"unknown segmentation speed setting(s): {', '.join(unknown)}")
    if "forget" not in values:
        raise ConfigError("name the class to forget (forget: <class>)")
    settings = {k: v for k, v in values.items() if k not in SEGMENTATION_KEYS}
    config = lethe.build_settings(SVDStepSettings, settings, "segmentation speed benchmark")
    check_svd_step(config)
    return config


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


def run_config(cfg: Mapping[str, Any], out: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a segmentation speed YAML (as a mapping) and write results.json and results.md under ``out``."""
    config = check(cfg)
    seg_cfg = {k: v for k, v in cfg.items() if k in SEGMENTATION_KEYS}
    seg_cfg["forget_sets"] = [seg_cfg.pop("forget")]
    seg_cfg["seed"] = config.seed
    bundle, bench = seg_bench.config_from_mapping(seg_cfg)
    forget = tuple(bench.forget_sets[0])
    engine = Engine(seed=config.seed, progress=False, num_workers=cfg.get("workers", 0))
    splits = seg_bench.bench_splits(bundle, bench)
    original, train_seconds, _ = seg_bench.cached_original(bench, splits, engine, seg_cfg["dataset"], log)
    first = quality(original, splits, forget, engine)
    with tempfile.TemporaryDirectory(prefix="lethe-speed-seg-") as tmp:
        workdir = Path(tmp)
        checkpoint = workdir / "original.safetensors"
        info = {"model": bench.spec.to_dict(), "dataset": seg_cfg["dataset"], "classes": bundle.classes,
                "resolution": splits.resolution.to_dict()}  # fmt: skip
        save_model(original, checkpoint, info)
        inputs = {}
        for samples in config.svd_samples:
            retain_order, forget_order = side_images(splits, forget, samples)
            path = svd_data_file(workdir / f"data-{samples}.pt", *image_tensors(splits, retain_order),
                                 *image_tensors(splits, forget_order))  # fmt: skip
            inputs[samples] = (path, {"per_class": None, "forget_distinct": samples})
        job_base = {"checkpoints": "lethe_segmentation.checkpoints", "checkpoint": str(checkpoint),
                    "device": str(engine.device), "forget_classes": list(forget),
                    "num_classes": bundle.num_classes}  # fmt: skip

        def evaluate(path: Path) -> dict[str, float]:
            return quality(load_model(path)[0], splits, forget, engine)

        runs = measure_svd_steps(config, inputs, job_base, evaluate, workdir, log)
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
        **svd_step_header(config, svd, "images"), "threads": torch.get_num_threads(),
        "config": cfg.get("_path"), "note": cfg.get("note", ""), **seg_bench.environment(engine),
    }  # fmt: skip
    result = {"header": header, "original": first, "svd": svd, "svd_runs": runs,
              "targets": svd_targets(svd, SEGMENTATION_QUALITY)}  # fmt: skip
    title = cfg.get("title", f"Speed: the SVD step on {bundle.name} with {bench.spec.arch}-{bench.spec.encoder}")
    write_report(result, Path(out), title)
    return result


#: the speed-segmentation task of ``benchmarks/run.py``: a run and its ``--check``
run_benchmark, check_benchmark = run_config, check
