"""Speed benchmark (issue 7) of an image classifier: lethe's SVD and DELETE against the faithful
references of ``lethe_vision.reference``, and against the cost of retraining.

For one classification dataset and architecture it trains (or loads from ``cache``) the original
model, then measures

- the SVD step, ours (``lethe.unlearn(..., "svd")``, alphas fixed, no tuning) and the reference, at
  each sample count of ``svd_steps.samples`` per side: seconds and peak memory, each step in a fresh
  subprocess (``svd_steps.isolate``) so that the memory of one step never hides in another's
  (``lethe_vision.speed`` says how memory is measured);
- DELETE, ours (``lethe.unlearn(..., "delete")`` through the engine) and the reference loop: images/s
  and the training seconds until ``forget_train <= delete_steps.target_forget_train`` (checked after
  every epoch on the forget training images, with the clock paused);
- forget_test and retain_test after every step, so speed is never bought with quality;
- the retrain oracle's training time with the config's recipe (measured) and at the published
  recipe (``retrain.published_epochs``, extrapolated from the measured seconds per epoch).

``SpeedBenchConfig`` is the YAML's schema (``lethe_vision.bench_config``); ``TASK`` registers it as
the ``speed`` task of ``benchmarks/run.py`` (``lethe.tasks``):
``python benchmarks/run.py benchmarks/configs/speed-cifar10-resnet18-cpu.yaml`` runs it.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

import lethe
from lethe.engine import Engine, environment, seed_everything
from lethe.epoch_clock import EpochClock
from lethe.errors import ConfigError
from lethe.metrics import accuracy, forget_mask
from lethe.tasks import BenchTask, RunOptions
from lethe_classification.bench import BenchConfig, original_for
from lethe_vision import speed as vision_speed
from lethe_vision.bench_config import BenchConfigBase, ModelSection, class_list, run_settings
from lethe_vision.data import DatasetBundle, ImageData, TensorImageDataset, parse_classes, per_class_sample
from lethe_vision.datasets import DATASETS, load_dataset
from lethe_vision.models import MODELS
from lethe_vision.pipeline import Splits, TrainRecipe, loader, make_splits, model_spec, outputs_on, train_model
from lethe_vision.reference.delete_reference import ReferenceDeleteSettings, delete_reference
from lethe_vision.report import markdown_table

#: a one-seed, one-forget-set benchmark config (``SpeedBenchConfig``, ``scaling.ScalingConfig``)
C = TypeVar("C", bound=BenchConfigBase)


@dataclass(kw_only=True)
class DeleteStepSettings:
    """``delete_steps:`` how both DELETE loops (ours through the engine, the reference's plain loop)
    are measured; their epochs and learning rate are ``overrides.delete``."""

    #: the batch size of both loops
    batch_size: int = lethe.setting(128, ge=1)
    #: forget_train accuracy (percent) a loop must reach; its seconds to reach it are reported
    target_forget_train: float = lethe.setting(1.0, ge=0, le=100)
    #: stop a loop at the first epoch that reaches the target
    stop_at_target: bool = True


@dataclass(kw_only=True)
class RetrainSettings:
    """``retrain:`` timing the retrain oracle (the retained classes, the config's recipe)."""

    #: the epochs the oracle is actually trained and timed (None: the recipe's); the recipe's and the
    #: published epochs are extrapolated from their seconds per epoch
    timed_epochs: int | None = lethe.setting(None, ge=1)
    #: the epochs of the published recipe retraining is compared with
    published_epochs: int = lethe.setting(182, ge=1)


@dataclass(kw_only=True)
class SpeedBenchConfig(vision_speed.SpeedConfigBase):
    """A classification speed benchmark YAML (``benchmarks/configs/speed-*.yaml``; the keys every
    speed config shares in ``lethe_vision.speed.SpeedConfigBase``): one forget set, one seed, the
    original cached by content hash (``cache``: ``lethe_classification.bench.cached_original``).
    ``overrides`` takes the settings ours and the references share: ``delete: {epochs, lr}`` and
    ``svd: {alpha_r, alpha_f}`` (``lethe_vision.speed.SHARED_SETTINGS``; published defaults
    otherwise). Each batch size is named in its section (``svd_steps.batch_size``,
    ``delete_steps.batch_size``)."""

    task: str = "speed"
    model: ModelSection
    methods: tuple[str, ...] = ("delete", "svd")
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    val_fraction: float = lethe.setting(0.05, gt=0, lt=1)
    delete_steps: DeleteStepSettings = field(default_factory=DeleteStepSettings)
    retrain: RetrainSettings = field(default_factory=RetrainSettings)

    #: SVD, and DELETE (``delete_steps:``)
    measures = ("svd", "delete")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model.pretrained is not None:
            raise ConfigError("model.pretrained: the speed benchmark trains its models from scratch")
        if self.recipe.epochs < 1:
            raise ConfigError(f"recipe.epochs must be at least 1, got {self.recipe.epochs}")
        if (self.retrain.timed_epochs or 0) > self.recipe.epochs:
            raise ConfigError(
                f"retrain.timed_epochs ({self.retrain.timed_epochs}) exceeds the recipe's {self.recipe.epochs} epochs"
            )

    @property
    def delete(self) -> dict[str, Any]:
        """``epochs`` and ``lr`` of both DELETE loops."""
        return self._shared["delete"]


def check_benchmark(config: SpeedBenchConfig) -> None:
    """What the config's types cannot say, checked without loading data or training (the runner's
    ``--check``): the architecture and the dataset are known."""
    for key, registry, name in (("model.arch", MODELS, config.model.arch), ("dataset", DATASETS, config.dataset)):
        try:
            registry.get(name)
        except ConfigError as err:
            raise ConfigError(f"{key}: {err}") from None


# ---------------------------------------------------------------- data, accuracies, original model


def normalised(data: ImageData, bundle: DatasetBundle) -> torch.Tensor:
    """Float images normalised as for evaluation (no augmentation)."""
    return torch.stack([x for x, _ in TensorImageDataset(data, bundle)]) if len(data) else torch.empty(0)


def svd_inputs(splits: Splits, samples: int) -> tuple[ImageData, ImageData, dict[str, int]]:
    """``samples`` retained images (equal per retained class, seeded) and ``samples`` forget images.

    When the forget classes have fewer training images, every one is used and the rest are
    augmented copies: horizontal flips first (if the dataset flips), then random crops with flips
    (seeded); ``forget_distinct`` says how many are distinct images.
    """
    bundle, seed = splits.bundle, splits.seed
    retained = bundle.num_classes - len(splits.forget_classes)
    per_class = math.ceil(samples / retained)
    retain = per_class_sample(splits.retain_train, per_class, seed)
    gen = torch.Generator().manual_seed(seed)
    if len(retain) > samples:
        retain = retain.subset(torch.randperm(len(retain), generator=gen)[:samples].sort().values)
    forget = splits.forget_train
    distinct = min(len(forget), samples)
    order = torch.randperm(len(forget), generator=gen)[:distinct]
    images, labels = [forget.images[order]], [forget.labels[order]]
    steps = [v2.RandomCrop(list(forget.images.shape[-2:]), padding=bundle.crop_padding)]
    crop_flip = v2.Compose(steps + [v2.RandomHorizontalFlip()] * bundle.flip)
    copies = 0
    while distinct + copies < samples:
        take = min(distinct, samples - distinct - copies)
        if copies == 0 and bundle.flip:
            images.append(images[0][:take].flip(-1))
        else:
            with torch.random.fork_rng():
                torch.manual_seed(seed + copies)
                images.append(torch.stack([crop_flip(x) for x in images[0][:take]]))
        labels.append(labels[0][:take])
        copies += take
    images, labels = torch.cat(images), torch.cat(labels)
    counts = {"per_class": per_class, "retain": len(retain), "forget": len(labels), "forget_distinct": distinct}
    return retain, ImageData(images, labels), counts


def accuracies_on_test(model: nn.Module, splits: Splits, engine: Engine) -> dict[str, float]:
    """``forget_test`` and ``retain_test`` (percent)."""
    out = outputs_on(model, splits.test, splits.bundle, engine)
    f = forget_mask(out.labels, splits.forget_classes)
    return {"forget_test": accuracy(out.subset(f)), "retain_test": accuracy(out.subset(~f))}


def forget_train_accuracy(model: nn.Module, splits: Splits, engine: Engine) -> float:
    """Accuracy (percent) on the forget classes' training images, without augmentation."""
    return accuracy(outputs_on(model, splits.forget_train, splits.bundle, engine))


def measure_svd(
    config: SpeedBenchConfig, splits: Splits, original: nn.Module, info: dict, engine: Engine, log
) -> list[dict[str, Any]]:
    """Both SVD implementations at every sample count of a classification model
    (``lethe_vision.speed.measure_svd``; sides from ``svd_inputs``)."""

    def sides(samples: int) -> tuple[tuple[torch.Tensor, ...], dict[str, int]]:
        retain, forget, counts = svd_inputs(splits, samples)
        tensors = (normalised(retain, splits.bundle), retain.labels, normalised(forget, splits.bundle), forget.labels)
        return tensors, counts

    job = {
        "task": "classification",
        "device": str(engine.device),
        "forget_classes": list(splits.forget_classes),
        "num_classes": splits.bundle.num_classes,
    }
    return vision_speed.measure_svd(
        config,
        original,
        {k: info[k] for k in ("dataset", "model")},
        sides,
        job,
        lambda model: accuracies_on_test(model, splits, engine),
        log,
    )


# ---------------------------------------------------------------- DELETE measurements


def delete_in_place(model: nn.Module, clock: EpochClock, splits: Splits, overrides: dict, engine: Engine) -> None:
    """``lethe.unlearn(model, "delete")`` in place over the batches of ``clock`` (an ``EpochClock``
    that times the epochs and may stop them at a target): the engine's loop (bf16 autocast and
    channels_last on CUDA). Used by this benchmark and ``scale_bench``."""
    lethe.unlearn(
        model,
        "delete",
        forget=clock,
        forget_classes=splits.forget_classes,
        num_classes=splits.bundle.num_classes,
        overrides=overrides,
        engine=engine,
        inplace=True,
    )


def _delete_ours(model: nn.Module, clock: EpochClock, splits: Splits, config: SpeedBenchConfig, engine: Engine) -> None:
    """DELETE as lethe runs it, with the reference's loop (BatchNorm not frozen)."""
    delete_in_place(model, clock, splits, {**config.delete, "freeze_bn": False}, engine)


def _delete_reference(model: nn.Module, clock: EpochClock, splits: Splits, config: SpeedBenchConfig, engine) -> None:
    """``lethe_vision.reference.delete_reference``: the plain fp32 loop."""
    settings = ReferenceDeleteSettings(epochs=config.delete["epochs"], lr=config.delete["lr"])
    delete_reference(model, clock, splits.forget_classes, settings, engine.device, stop=clock.close_epoch)


def _engine_loader(splits: Splits, config: SpeedBenchConfig, engine: Engine) -> DataLoader:
    """Ours: the engine's loader (seeded, pinned memory on CUDA, workers) with the training augmentation."""
    return loader(engine, splits.forget_train, splits.bundle, config.delete_steps.batch_size, train=True)


def _plain_loader(splits: Splits, config: SpeedBenchConfig, engine: Engine) -> DataLoader:
    """The reference's loader: a plain shuffled DataLoader with the training augmentation."""
    dataset = TensorImageDataset(splits.forget_train, splits.bundle, augment=True)
    return DataLoader(
        dataset,
        batch_size=config.delete_steps.batch_size,
        shuffle=True,
        num_workers=config.workers,
        generator=torch.Generator().manual_seed(config.seed),
    )


#: name -> (loader factory, training loop)
DELETE_LOOPS: dict[str, tuple[Callable[..., DataLoader], Callable[..., None]]] = {
    "ours": (_engine_loader, _delete_ours),
    "reference": (_plain_loader, _delete_reference),
}


def measure_delete(config: SpeedBenchConfig, splits: Splits, original: nn.Module, engine: Engine, log) -> list[dict]:
    """Both DELETE loops from the same original model: images/s, seconds to the target, accuracies."""
    rows = []
    for name, (make_loader, run) in DELETE_LOOPS.items():
        seed_everything(config.seed)
        model = copy.deepcopy(original)
        check_model = partial(forget_train_accuracy, model, splits, engine)
        clock = EpochClock(
            make_loader(splits, config, engine),
            check_model,
            config.delete_steps.target_forget_train,
            config.delete_steps.stop_at_target,
            engine.device,
        )
        run(model, clock, splits, config, engine)
        clock.close_epoch()
        images = clock.epochs * len(splits.forget_train)
        reached = clock.reached or {}
        row = {
            "method": name,
            "epochs_run": clock.epochs,
            "images": images,
            "seconds": clock.train_seconds,
            "images_per_s": images / clock.train_seconds if clock.train_seconds else float("nan"),
            "epochs_to_target": reached.get("epoch"),
            "seconds_to_target": reached.get("train_seconds"),
            "forget_train": clock.history[-1]["forget_train"] if clock.history else float("nan"),
            **accuracies_on_test(model, splits, engine),
            "history": clock.history,
        }
        rows.append(row)
        log(
            f"delete {name:>9}: {row['images_per_s']:.0f} images/s, {row['epochs_run']} epochs, "
            f"target after {row['seconds_to_target']} s, forget_test {row['forget_test']:.2f}, "
            f"retain_test {row['retain_test']:.2f}"
        )
    return rows


# ---------------------------------------------------------------- retraining and the report


def measure_retrain(config: SpeedBenchConfig, splits: Splits, engine: Engine, log) -> dict[str, Any]:
    """Train the retrain oracle (retained classes only) and time it; extrapolate per epoch."""
    epochs = config.retrain.timed_epochs or config.recipe.epochs
    spec = model_spec(config.model.arch, splits.bundle, config.model.width)
    recipe = replace(config.recipe, epochs=epochs)
    oracle, seconds, _ = train_model(spec, splits.retain_train, splits.bundle, recipe, engine, "retrain")
    per_epoch, published = seconds / epochs, config.retrain.published_epochs
    result = {
        "epochs_trained": epochs,
        "seconds_measured": seconds,
        "seconds_per_epoch": per_epoch,
        "recipe_epochs": config.recipe.epochs,
        "recipe_seconds": per_epoch * config.recipe.epochs,
        "recipe_seconds_is": "measured" if epochs == config.recipe.epochs else "extrapolated",
        "published_epochs": published,
        "published_seconds": per_epoch * published,
        "published_seconds_is": "extrapolated" if epochs != published else "measured",
        **accuracies_on_test(oracle, splits, engine),
    }
    log(f"retrain: {seconds:.1f} s for {epochs} epochs ({per_epoch:.1f} s/epoch)")
    return result


def add_fractions(rows: list[dict], retrain: Mapping[str, Any], key: str = "seconds") -> None:
    """Each row's time (``key``, else ``seconds``) as a fraction of retraining."""
    for row in rows:
        seconds = row.get(key) if row.get(key) is not None else row["seconds"]
        row["time_basis"] = key if row.get(key) is not None else "seconds"
        row["vs_retrain_recipe"] = seconds / retrain["recipe_seconds"]
        row["vs_retrain_published"] = seconds / retrain["published_seconds"]
        row["times_cheaper_than_published_retrain"] = retrain["published_seconds"] / seconds if seconds else None


def targets(svd: list[dict], delete: list[dict]) -> list[dict[str, Any]]:
    """The issue's "must show" checks for a classification model: ``svd_targets`` and DELETE at
    least 100x cheaper than published retraining."""
    rows = vision_speed.svd_targets(svd)
    for row in (r for r in delete if r["method"] == "ours"):
        cheaper = row["times_cheaper_than_published_retrain"]
        met = cheaper is not None and cheaper >= 100
        rows.append(
            {
                "method": "DELETE >= 100x cheaper than published retraining",
                "value": cheaper,
                "met": met,
                "met_within_spread": met,
            }
        )
    return rows


def write_speed_report(result: Mapping[str, Any], out: Path, title: str) -> str:
    """``results.json`` and ``results.md`` under ``out``, atomically; returns the Markdown."""
    retrain, delete = result["retrain"], result["delete"]
    sections = [
        "## DELETE",
        "",
        markdown_table(
            delete,
            (
                "epochs_run",
                "images_per_s",
                "seconds",
                "epochs_to_target",
                "seconds_to_target",
                "forget_train",
                "forget_test",
                "retain_test",
                "vs_retrain_published",
                "times_cheaper_than_published_retrain",
            ),
        ),
        f"Fractions of retraining use the seconds to reach forget_train <= {result['header']['target forget_train']} "
        "% where reached, else all training seconds (checks excluded).",
        "",
        "## Retraining (the oracle)",
        "",
        f"- measured: {retrain['seconds_measured']:.1f} s for {retrain['epochs_trained']} epochs "
        f"({retrain['seconds_per_epoch']:.2f} s/epoch); forget_test {retrain['forget_test']:.2f}, "
        f"retain_test {retrain['retain_test']:.2f} after those epochs",
        f"- config recipe, {retrain['recipe_epochs']} epochs: {retrain['recipe_seconds']:.1f} s "
        f"({retrain['recipe_seconds_is']})",
        f"- published recipe, {retrain['published_epochs']} epochs: {retrain['published_seconds']:.1f} s "
        f"({retrain['published_seconds_is']} from the measured seconds per epoch)",
        "",
    ]
    return vision_speed.write_speed_report(
        out,
        result,
        title,
        ("forget_train", "forget_test", "retain_test"),
        vision_speed.CLASSIFICATION_QUALITY,
        ("vs_retrain_recipe", "vs_retrain_published", "times_cheaper_than_published_retrain"),
        sections,
    )


def rewrite_report(out: Path, title: str) -> str:
    """Recompute the targets of an earlier ``results.json`` under ``out`` with this module's rules and
    write both files again; no step is measured again (the measured rows are kept as they are)."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: run the benchmark first")
    result = json.loads(path.read_text())
    result["targets"] = targets(result["svd"], result["delete"])
    return write_speed_report(result, Path(out), title)


def one_forget_set(config: C, options: RunOptions) -> tuple[C, Engine, Splits]:
    """A one-seed, one-forget-set benchmark's config (its seed ``options.seeds``' where given), engine
    and splits of the config's dataset: shared by the speed and scaling tasks."""
    if options.seeds:
        config = replace(config, seeds=tuple(options.seeds))
    bundle = load_dataset(config.dataset, config.data_root)
    engine = Engine(seed=config.seed, progress=sys.stderr.isatty(), num_workers=config.workers)
    forget = parse_classes(class_list(config.forget_sets[0]), bundle.classes)
    return config, engine, make_splits(bundle, forget, config.val_fraction, config.seed)


def run_benchmark(
    config: SpeedBenchConfig, out: str | Path, options: RunOptions = RunOptions(), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run a speed benchmark config and write results.json and results.md under ``out``: the whole
    job of ``benchmarks/run.py`` for ``task: speed`` (``options.seeds``: ``--seeds``, one seed)."""
    config, engine, splits = one_forget_set(config, options)
    bundle, forget = splits.bundle, splits.forget_classes
    original, info = original_for(bundle, run_settings(BenchConfig, config, forget=forget), engine, log)
    first = {
        "forget_train": forget_train_accuracy(original, splits, engine),
        **accuracies_on_test(original, splits, engine),
    }
    svd_seeds = measure_svd(config, splits, original, info, engine, log)
    svd = vision_speed.summarise_svd(svd_seeds)
    delete = measure_delete(config, splits, original, engine, log)
    retrain = measure_retrain(config, splits, engine, log)
    add_fractions(svd, retrain)
    add_fractions(delete, retrain, "seconds_to_target")
    steps = config.delete_steps
    header = {
        "dataset": bundle.name,
        "arch": config.model.arch,
        "width": config.model.width,
        "forget": [f"{c} ({bundle.classes[c]})" for c in splits.forget_classes],
        "recipe": asdict(config.recipe),
        "original": info.get("cached", "trained in this run"),
        **vision_speed.svd_step_header(config.svd_steps, config.svd, svd),
        "DELETE": {
            "epochs": config.delete["epochs"],
            "lr": config.delete["lr"],
            "batch": steps.batch_size,
            "stop at target": steps.stop_at_target,
        },
        "target forget_train": steps.target_forget_train,
    }
    result = vision_speed.speed_result(
        header,
        config,
        options,
        environment(engine),
        first,
        svd,
        svd_seeds,
        delete=delete,
        retrain=retrain,
        targets=targets(svd, delete),
    )
    write_speed_report(result, Path(out), _title(config, bundle.name))
    return result


def _title(config: SpeedBenchConfig, dataset: str = "") -> str:
    return config.title or (f"Speed: SVD and DELETE on {dataset} with {config.model.arch}" if dataset else "Speed")


def rewrite_benchmark(config: SpeedBenchConfig, out: Path) -> None:
    """``rewrite_report`` under the config's title: the speed task's ``--rewrite``."""
    rewrite_report(out, _title(config))


#: the speed task of ``benchmarks/run.py``
TASK = BenchTask("speed", SpeedBenchConfig, run_benchmark, check=check_benchmark, rewrite=rewrite_benchmark)
