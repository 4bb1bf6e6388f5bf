"""How cost grows (issue 20 part 3): the SVD step's time and peak memory against samples per side and
against model width, DELETE's time against the forget-set size, and an estimate on paper for
ImageNet-sized models (``lethe_vision.svd_cost``), checked against runs of those models here.

Costs do not depend on what the weights have learnt (the same layers see the same number of rows;
only ``eigh``'s iterations vary a little with the spectrum), so every model is randomly initialised
with the config's seed: widths 32 and 64 of cifar-resnet18 cannot be trained on this CPU. The inputs
are the dataset's images as the speed benchmark takes them (``svd_inputs``); each SVD step runs
lethe's defaults with fixed alphas in a fresh process (``lethe_vision.speed.run_svd_step``), so that
its peak memory is its own. DELETE runs ``delete_steps.epochs`` epochs over each forget-set size,
timed; its published 20 epochs are extrapolated from the seconds per epoch.

The estimate: the layers of timm's ``resnet50`` and ``vit_base_patch16_224`` (1,000 classes, 224 px),
read from one forward pass; this machine's primitives (float32 Gram products and ``eigh``, float64
products) and each model's forward seconds per image, measured in this run; ``svd_cost.predict``.
The same prediction is set beside every measured SVD step of this run, and beside one measured SVD
step of each ImageNet-sized model at a sample count this CPU affords, so its error is on record.

``ScalingConfig`` is the YAML's schema; ``TASK`` registers it as the ``scaling`` task of
``benchmarks/run.py`` (``lethe.tasks``).
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import lethe
from lethe.engine import Engine, environment, seed_everything
from lethe.errors import ConfigError
from lethe.io import write_json_atomic, write_text_atomic
from lethe.tasks import BenchTask, RunOptions
from lethe_classification.speed import normalised, one_forget_set, svd_inputs
from lethe_vision import speed as vision_speed
from lethe_vision import svd_cost
from lethe_vision.bench_config import BenchConfigBase, ModelSection
from lethe_vision.checkpoints import save_model
from lethe_vision.datasets import DATASETS
from lethe_vision.models import MODELS, ModelSpec
from lethe_vision.pipeline import Splits, build_checked, loader, model_spec
from lethe_vision.report import header_lines, markdown_table, pyplot, save_figure


@dataclass(kw_only=True)
class SVDScaling:
    """``svd_steps:`` the SVD steps measured: ``samples`` per side at ``model.width``, then each of
    ``widths`` at ``width_samples`` per side."""

    samples: tuple[int, ...] = lethe.setting((100, 300, 900, 3000, 9000), ge=1, min_items=1)
    widths: tuple[int, ...] = lethe.setting((16, 32, 64), ge=1, min_items=1)
    width_samples: int = lethe.setting(900, ge=1)
    #: the batches each side is streamed in
    batch_size: int = lethe.setting(256, ge=1)
    #: each step in a fresh process (its peak memory its own)
    isolate: bool = True


@dataclass(kw_only=True)
class DeleteScaling:
    """``delete_steps:`` DELETE (its defaults) over the first ``forget_sizes`` images of the forget
    class, ``epochs`` epochs each, timed; ``published_epochs`` extrapolated from the seconds per epoch."""

    forget_sizes: tuple[int, ...] = lethe.setting((500, 1000, 2000, 4000), ge=1, min_items=1)
    epochs: int = lethe.setting(2, ge=1)
    published_epochs: int = lethe.setting(20, ge=1)
    batch_size: int = lethe.setting(128, ge=1)


@dataclass(kw_only=True)
class EstimateSettings:
    """``estimate:`` the ImageNet-sized models (row name -> timm model name), the sample count per
    side of the estimate (the paper's ImageNet setting: 999 retained, one per kept class, and 999
    forget), and per model a smaller sample count that is measured here to check the prediction."""

    models: dict[str, str] = field(
        default_factory=lambda: {"ResNet-50": "resnet50", "ViT-B/16": "vit_base_patch16_224"}
    )
    image_size: int = lethe.setting(224, ge=8)
    num_classes: int = lethe.setting(1000, ge=2)
    samples: int = lethe.setting(999, ge=1)
    #: row name -> samples per side of the measured check (0 or missing: no check)
    check_samples: dict[str, int] = field(default_factory=lambda: {"ResNet-50": 100, "ViT-B/16": 16})
    #: float32 eigh sizes timed for the cost model
    eigh_sizes: tuple[int, ...] = lethe.setting((256, 576, 1152, 2304, 4608), ge=2, min_items=2)
    #: images per timed forward pass of each estimated model
    forward_batch: int = lethe.setting(4, ge=1)


@dataclass(kw_only=True)
class ScalingConfig(BenchConfigBase):
    """A scaling benchmark YAML: one dataset, one architecture with a width (``model.width``: the
    samples sweep's), one forget class and one seed; ``svd_steps``, ``delete_steps``, ``estimate``."""

    task: str = "scaling"
    model: ModelSection
    methods: tuple[str, ...] = ("svd", "delete")
    val_fraction: float = lethe.setting(0.05, gt=0, lt=1)
    svd_steps: SVDScaling = field(default_factory=SVDScaling)
    delete_steps: DeleteScaling = field(default_factory=DeleteScaling)
    estimate: EstimateSettings = field(default_factory=EstimateSettings)

    def __post_init__(self) -> None:
        if sorted(self.methods) != ["delete", "svd"]:
            raise ConfigError(f"methods: the scaling benchmark measures delete and svd, got {list(self.methods)}")
        vision_speed.one_entry(self.forget_sets, "forget_sets", "forget set")
        vision_speed.one_entry(self.seeds, "seeds", "seed")
        if self.model.width is None:
            raise ConfigError("model.width: the scaling benchmark needs an architecture with a width")
        if self.model.pretrained is not None:
            raise ConfigError("model.pretrained: the scaling benchmark times randomly initialised models")
        unknown = set(self.estimate.check_samples) - set(self.estimate.models)
        if unknown:
            raise ConfigError(f"estimate.check_samples names no estimated model: {', '.join(sorted(unknown))}")

    @property
    def seed(self) -> int:
        return self.seeds[0]


def check_benchmark(config: ScalingConfig) -> None:
    """The architecture, the dataset and the estimated timm models exist (no data, no training)."""
    import timm

    for key, registry, name in (("model.arch", MODELS, config.model.arch), ("dataset", DATASETS, config.dataset)):
        try:
            registry.get(name)
        except ConfigError as err:
            raise ConfigError(f"{key}: {err}") from None
    for row, name in config.estimate.models.items():
        if not timm.is_model(name):
            raise ConfigError(f"estimate.models.{row}: timm has no model {name!r}")


# ---------------------------------------------------------------- the SVD steps


@dataclass
class StepRunner:
    """Runs SVD steps (lethe's defaults, fixed alphas) on saved checkpoints and data files in ``workdir``."""

    workdir: Path
    batch_size: int
    isolate: bool
    seed: int
    log: Callable[[str], None]

    def run(self, name: str, model: nn.Module, info: dict, sides: tuple[torch.Tensor, ...], job: dict) -> dict:
        """One step: ``model`` saved with ``info``, ``sides`` (retain x, y, forget x, y) saved, the
        step run; seconds, peak memory and sample counts."""
        step = self.workdir / name
        step.mkdir()
        save_model(model, step / "model.safetensors", info)
        data = vision_speed.svd_data_file(step / "data.pt", *sides)
        spec = {
            **job,
            "implementation": "ours",
            "checkpoint": str(step / "model.safetensors"),
            "data": str(data),
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "seed": self.seed,
            "alpha_r": 100.0,
            "alpha_f": 3.0,
            "batch_size": self.batch_size,
            "svd_overrides": {},
        }
        result = vision_speed.run_svd_step(step, spec, self.isolate)
        self.log(f"svd {name}: {result['seconds']:.2f} s, peak {result['peak_bytes'] / 2**20:.0f} MiB")
        return result


def _random_model(config: ScalingConfig, splits: Splits, width: int) -> tuple[nn.Module, dict]:
    """The config's architecture at ``width``, randomly initialised from the config's seed, and the
    checkpoint info it is saved with."""
    spec = model_spec(config.model.arch, splits.bundle, width)
    seed_everything(config.seed)
    model = build_checked(spec).eval()
    return model, {"dataset": splits.bundle.name, "model": spec.to_dict()}


def measure_svd_scaling(
    config: ScalingConfig, splits: Splits, runner: StepRunner, primitives: svd_cost.Primitives
) -> list[dict[str, Any]]:
    """The SVD step at every (width, samples) of ``svd_steps``, each with its prediction; ``sweeps``
    says which tables a row belongs to ("samples": at ``model.width``; "width": at ``width_samples``)."""
    steps = config.svd_steps
    points = {(config.model.width, n): ["samples"] for n in steps.samples}
    for w in steps.widths:
        points.setdefault((w, steps.width_samples), []).append("width")
    job = {"forget_classes": list(splits.forget_classes), "num_classes": splits.bundle.num_classes}
    rows = []
    for width in dict.fromkeys(w for w, _ in points):
        model, info = _random_model(config, splits, width)
        sample = normalised(splits.test.subset(torch.arange(steps.batch_size)), splits.bundle)
        forward = svd_cost.forward_seconds(model, sample)
        layers = svd_cost.layer_inventory(model, sample[:1])
        for n in (s for w, s in points if w == width):
            retain, forget, counts = svd_inputs(splits, n)
            sides = (normalised(retain, splits.bundle), retain.labels, normalised(forget, splits.bundle), forget.labels)
            measured = runner.run(f"w{width}-{n}", model, info, sides, {**job, "per_class": counts["per_class"]})
            predicted = svd_cost.predict(layers, n, primitives, forward)
            rows.append(_svd_row(f"{config.model.arch} w{width}", width, n, model, measured, predicted))
            rows[-1].update(forget_distinct=counts["forget_distinct"], sweeps=points[width, n])
    return rows


def _svd_row(name: str, width: int | None, samples: int, model: nn.Module, measured: dict, predicted: dict) -> dict:
    return {
        "model": name,
        "width": width,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "samples": samples,
        "layers": predicted["layers"],
        "widest_d": predicted["widest_d"],
        "seconds": measured["seconds"],
        "peak_mib": measured["peak_bytes"] / 2**20,
        "predicted_s": predicted["seconds"],
        "predicted_vs_measured": predicted["seconds"] / measured["seconds"],
        "predicted_mib": predicted["memory_mib"],
        "retain_samples": measured["retain_samples"],
        "forget_samples": measured["forget_samples"],
    }


# ---------------------------------------------------------------- DELETE


def measure_delete_scaling(config: ScalingConfig, splits: Splits, engine: Engine, log) -> list[dict[str, Any]]:
    """DELETE (its defaults, ``delete_steps.epochs`` epochs) over each forget-set size, timed."""
    steps = config.delete_steps
    model, _ = _random_model(config, splits, config.model.width)
    forget = splits.forget_train
    order = torch.randperm(len(forget), generator=torch.Generator().manual_seed(config.seed))
    rows = []
    for size in steps.forget_sizes:
        if size > len(forget):
            raise ConfigError(f"delete_steps.forget_sizes: {size} exceeds the {len(forget)} forget training images")
        subset = forget.subset(order[:size].sort().values)
        seed_everything(config.seed)
        batches = loader(engine, subset, splits.bundle, steps.batch_size, train=True)
        _, record = lethe.unlearn(
            copy.deepcopy(model),
            "delete",
            forget=batches,
            forget_classes=splits.forget_classes,
            num_classes=splits.bundle.num_classes,
            overrides={"epochs": steps.epochs},
            engine=engine,
            inplace=True,
        )
        per_epoch = record.seconds / steps.epochs
        rows.append(
            {
                "forget_images": size,
                "epochs_timed": steps.epochs,
                "seconds": record.seconds,
                "seconds_per_epoch": per_epoch,
                "images_per_s": size * steps.epochs / record.seconds,
                "published_epochs": steps.published_epochs,
                "published_seconds": per_epoch * steps.published_epochs,
            }
        )
        log(f"delete {size} images: {per_epoch:.2f} s/epoch, {rows[-1]['images_per_s']:.0f} images/s")
    return rows


# ---------------------------------------------------------------- the estimate


def estimate_models(
    config: ScalingConfig, splits: Splits, runner: StepRunner, primitives: svd_cost.Primitives, log
) -> tuple[list[dict], list[dict]]:
    """Per estimated model: the predicted SVD step at ``estimate.samples`` per side (and with tokens
    sampled like conv patches, for models with token layers), and the measured check beside its
    prediction. Inputs are the dataset's test images resized to ``estimate.image_size``."""
    est = config.estimate
    size, classes = est.image_size, est.num_classes
    estimates, checks = [], []
    for row, name in est.models.items():
        spec = ModelSpec(f"timm:{name}", classes, 3, size)
        seed_everything(config.seed)
        model = build_checked(spec).eval()
        images = _resized(splits, max(est.forward_batch, 2 * max(est.check_samples.get(row, 0), 1)), size)
        forward = svd_cost.forward_seconds(model, images[: est.forward_batch])
        layers = svd_cost.layer_inventory(model, images[:1])
        params = sum(p.numel() for p in model.parameters()) / 1e6
        predicted = svd_cost.predict(layers, est.samples, primitives, forward)
        estimates.append(_estimate_row(row, params, forward, predicted, "as lethe runs it"))
        if any(layer.kind != "conv" and layer.rows_per_sample > 1 for layer in layers):
            capped = svd_cost.predict(layers, est.samples, primitives, forward, cap_tokens=True)
            estimates.append(
                _estimate_row(row, params, forward, capped, "tokens sampled like patches (not lethe today)")
            )
        log(f"estimate {row}: {predicted['seconds']:.0f} s at {est.samples}/side, {predicted['memory_mib']:.0f} MiB")
        n = est.check_samples.get(row, 0)
        if n:
            sides = (images[:n], torch.arange(1, n + 1) % classes, images[n : 2 * n], torch.zeros(n, dtype=torch.long))
            job = {"forget_classes": [0], "num_classes": classes, "per_class": 1}
            measured = runner.run(f"{name}-{n}", model, {"dataset": None, "model": spec.to_dict()}, sides, job)
            check = svd_cost.predict(layers, n, primitives, forward)
            checks.append(_svd_row(row, None, n, model, measured, check))
    return estimates, checks


def _resized(splits: Splits, count: int, size: int) -> torch.Tensor:
    """``count`` test images (repeated if needed), normalised, resized to ``size`` px (bilinear)."""
    index = torch.arange(count) % len(splits.test)
    images = normalised(splits.test.subset(index), splits.bundle)
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def _estimate_row(name: str, params: float, forward: float, predicted: dict, how: str) -> dict:
    return {
        "model": name,
        "rows": how,
        "params_m": params,
        "layers": predicted["layers"],
        "widest_d": predicted["widest_d"],
        "samples": predicted["samples"],
        "forward_ms_per_image": 1000 * forward,
        **{k: predicted[k] for k in ("forward_s", "gram_s", "eigh_s", "update_s", "seconds", "memory_mib")},
        "minutes": predicted["seconds"] / 60,
    }


# ---------------------------------------------------------------- running and the report


def run_benchmark(
    config: ScalingConfig, out: str | Path, options: RunOptions = RunOptions(), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run a scaling config and write ``results.json``, ``results.md`` and ``scaling.png`` under ``out``."""
    config, engine, splits = one_forget_set(config, options)
    bundle = splits.bundle
    primitives = svd_cost.measure_primitives(config.estimate.eigh_sizes)
    log(f"primitives: {primitives}")
    with tempfile.TemporaryDirectory(prefix="lethe-scaling-") as tmp:
        runner = StepRunner(Path(tmp), config.svd_steps.batch_size, config.svd_steps.isolate, config.seed, log)
        svd = measure_svd_scaling(config, splits, runner, primitives)
        estimates, checks = estimate_models(config, splits, runner, primitives, log)
    delete = measure_delete_scaling(config, splits, engine, log)
    header = {
        "dataset": bundle.name,
        "arch": config.model.arch,
        "forget": [f"{c} ({bundle.classes[c]})" for c in splits.forget_classes],
        "weights": f"random initialisation (seed {config.seed}); costs do not depend on what the weights learnt",
        "SVD settings": "lethe's defaults (max_patches 20000, float32 products and eigh), alphas fixed at 100 / 3",
        "SVD steps isolated in fresh processes": config.svd_steps.isolate,
        "DELETE": f"defaults, {config.delete_steps.epochs} epochs timed, batch {config.delete_steps.batch_size}",
        "estimate": asdict(config.estimate),
        **({"config": options.config_path} if options.config_path else {}),
        **({"note": config.note} if config.note else {}),
        **environment(engine),
    }
    result = {
        "header": header,
        "primitives": primitives.to_dict(),
        "svd": svd,
        "delete": delete,
        "estimates": estimates,
        "checks": checks,
    }
    write_report(result, Path(out), config.title or "How cost grows")
    return result


SVD_COLUMNS = ("samples", "forget_distinct", "width", "params_m", "layers", "widest_d", "seconds", "peak_mib")
PREDICTED_COLUMNS = ("predicted_s", "predicted_vs_measured", "predicted_mib")


def write_report(result: Mapping[str, Any], out: Path, title: str) -> str:
    """``results.json``, ``results.md`` and ``scaling.png`` under ``out``; returns the Markdown."""
    svd, header = result["svd"], result["header"]
    base = header.get("arch", "")
    by_samples, by_width = sweep(svd, "samples"), sweep(svd, "width")
    prim = result["primitives"]
    lines = [
        f"# {title}",
        "",
        *header_lines(header),
        "",
        "## The SVD step against samples per side",
        "",
        markdown_table(by_samples, (*SVD_COLUMNS, *PREDICTED_COLUMNS), "model"),
        "",
        "## The SVD step against width",
        "",
        markdown_table(by_width, (*SVD_COLUMNS, *PREDICTED_COLUMNS), "model"),
        "",
        f"Seconds and peak memory (MiB above the level before the step) of {base}'s SVD step, measured; "
        "`predicted_s` and `predicted_mib` are lethe_vision.svd_cost's estimate from the primitives below.",
        "",
        "## DELETE against the forget-set size",
        "",
        markdown_table(
            result["delete"],
            ("epochs_timed", "seconds", "seconds_per_epoch", "images_per_s", "published_seconds"),
            "forget_images",
        ),
        "",
        "`published_seconds`: the published 20 epochs at the measured seconds per epoch (extrapolated).",
        "",
        "![The SVD step against samples per side and width, DELETE against forget images](scaling.png)",
        "",
        "## An estimate on paper: ImageNet-sized models",
        "",
        markdown_table(
            result["estimates"],
            (
                "rows",
                "params_m",
                "layers",
                "widest_d",
                "samples",
                "forward_ms_per_image",
                "forward_s",
                "gram_s",
                "eigh_s",
                "update_s",
                "seconds",
                "minutes",
                "memory_mib",
            ),
            "model",
        ),
        "",
        "Checked here: the same models' SVD step measured at a smaller sample count, beside the prediction.",
        "",
        markdown_table(result["checks"], (*SVD_COLUMNS[:1], *SVD_COLUMNS[3:], *PREDICTED_COLUMNS), "model"),
        "",
        "## Primitives measured on this machine",
        "",
        f"- float32 Gram products: {prim['gram_flops'] / 1e9:.1f} GFLOP/s; float64 products: "
        f"{prim['update_flops'] / 1e9:.1f} GFLOP/s; {prim['threads']} thread(s)",
        "- float32 eigh seconds: " + ", ".join(f"d={d}: {s:.3f}" for d, s in prim["eigh_seconds"].items()),
        "",
    ]
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result)
    write_text_atomic(out / "results.md", text)
    plot_scaling(result, out / "scaling.png")
    return text


def sweep(svd: list[dict], name: str) -> list[dict]:
    """The rows of one sweep ("samples" or "width"), in its order."""
    rows = [r for r in svd if name in r["sweeps"]]
    return sorted(rows, key=lambda r: r[name])


def plot_scaling(result: Mapping[str, Any], path: Path) -> None:
    """Three panels: SVD seconds against samples per side, against width, DELETE against forget images."""
    plt = pyplot()
    base, wide = sweep(result["svd"], "samples"), sweep(result["svd"], "width")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].loglog([r["samples"] for r in base], [r["seconds"] for r in base], "o-", label="measured")
    axes[0].loglog([r["samples"] for r in base], [r["predicted_s"] for r in base], "x--", label="predicted")
    axes[0].set(xlabel="samples per side", ylabel="SVD step seconds", title=f"width {base[0]['width']}")
    axes[1].plot([r["width"] for r in wide], [r["seconds"] for r in wide], "o-", label="seconds")
    axes[1].plot([r["width"] for r in wide], [r["predicted_s"] for r in wide], "x--", label="predicted")
    twin = axes[1].twinx()
    twin.plot([r["width"] for r in wide], [r["peak_mib"] for r in wide], "s:", color="grey", label="peak MiB")
    twin.set_ylabel("peak MiB")
    axes[1].set(xlabel="width", ylabel="SVD step seconds", title=f"{wide[0]['samples']} samples per side")
    delete = result["delete"]
    axes[2].plot([r["forget_images"] for r in delete], [r["seconds_per_epoch"] for r in delete], "o-")
    axes[2].set(xlabel="forget images", ylabel="DELETE seconds per epoch", title="DELETE")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def rewrite_benchmark(config: ScalingConfig, out: Path) -> None:
    """Write the report and plot of an earlier ``results.json`` under ``out`` again (``--rewrite``);
    nothing is measured again."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: run the benchmark first")
    write_report(json.loads(path.read_text()), Path(out), config.title or "How cost grows")


#: the scaling task of ``benchmarks/run.py``
TASK = BenchTask("scaling", ScalingConfig, run_benchmark, check=check_benchmark, rewrite=rewrite_benchmark)
