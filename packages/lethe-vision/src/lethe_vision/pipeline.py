"""The classification protocol: splits, training, unlearning and evaluation (methods.md s.3).

A validation split is held out (stratified, seeded) from the training data before anything is
trained; it is used only to tune methods (SVD's alphas). ``forget_train`` / ``retain_train`` are
measured on the rest of the training data, ``forget_test`` / ``retain_test`` on the test set.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import lethe
from lethe.engine import Engine, cosine_schedule, cross_entropy_step, sgd, synchronize
from lethe.errors import ConfigError, DataError
from lethe.metrics import (
    MIA_FEATURES,
    Outputs,
    collect_outputs,
    forget_mask,
    mia_attacks,
    per_class_accuracy,
    split_accuracies,
)
from lethe.probe import head_layer, probe_from_outputs
from lethe.relearn import RelearnSettings, relearn_steps
from lethe_vision.data import (
    DatasetBundle,
    ImageData,
    TensorImageDataset,
    check_forget_classes,
    per_class_sample,
    stratified_holdout,
)
from lethe_vision.device_data import DeviceLoader
from lethe_vision.models import ModelSpec, build_model

EVAL_BATCH = 512


@dataclass
class SGDRecipe:
    """Supervised training by SGD with momentum and weight decay, the learning rate decaying per
    batch on a cosine to zero after a linear warm-up (``optimizer``). The defaults are
    classification's (``TrainRecipe``); a task's recipe overrides those it trains with."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 1

    def optimizer(self, model: nn.Module, steps_per_epoch: int) -> tuple[torch.optim.SGD, Any]:
        """SGD over ``model``'s trainable parameters and its per-batch schedule over ``epochs``."""
        optimizer = sgd(model, self.lr, self.momentum, self.weight_decay)
        steps = self.epochs * steps_per_epoch
        return optimizer, cosine_schedule(optimizer, steps, self.warmup_epochs * steps_per_epoch)


@dataclass
class TrainRecipe(SGDRecipe):
    """Supervised recipe: SGD with momentum, weight decay, cosine decay, crop/flip augmentation
    (the papers' CIFAR recipe is lr 0.1, momentum 0.9, wd 5e-4, ~150-200 epochs)."""

    #: label smoothing of the cross-entropy (Szegedy et al., 2016); 0 in the papers' recipe
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class Splits:
    """The protocol's data for one dataset and set of forgotten classes."""

    bundle: DatasetBundle
    forget_classes: tuple[int, ...]
    train: ImageData
    validation: ImageData
    test: ImageData
    val_fraction: float
    seed: int

    @property
    def forget_train(self) -> ImageData:
        return self.train.of_classes(self.forget_classes)

    @property
    def retain_train(self) -> ImageData:
        return self.train.of_classes(self.forget_classes, keep=False)


def make_splits(
    bundle: DatasetBundle, forget_classes: Sequence[int], val_fraction: float = 0.05, seed: int = 0
) -> Splits:
    """Hold out a stratified validation split from training data and check the forget classes."""
    forget = check_forget_classes(forget_classes, bundle) if forget_classes else ()
    holdout = stratified_holdout(bundle.train.labels, val_fraction, seed)
    if bool(holdout.all()):
        raise DataError(f"the validation fraction {val_fraction} leaves no training data")
    return Splits(
        bundle,
        forget,
        bundle.train.subset(~holdout),
        bundle.train.subset(holdout),
        bundle.test,
        val_fraction,
        seed,
    )


def loader(
    engine: Engine, data: ImageData, bundle: DatasetBundle, batch_size: int, *, train: bool, augment: bool | None = None
):
    """A loader over ``data``: shuffled (with augmentation unless ``augment`` is False) for training,
    plain for evaluation. With ``engine.data_on_device`` the data stay on the device
    (``DeviceLoader``, the same batches for the same seed)."""
    augment = train if augment is None else augment
    if engine.data_on_device:
        if engine.distributed:
            raise ConfigError("data_on_device is for one process; under torchrun use the DataLoader path")
        return DeviceLoader(
            data, bundle, batch_size, shuffle=train, augment=augment, device=engine.device, seed=engine.seed
        )
    return engine.loader(TensorImageDataset(data, bundle, augment=augment), batch_size, shuffle=train)


def model_spec(arch: str, bundle: DatasetBundle, width: int | None = None, pretrained: str | None = None) -> ModelSpec:
    return ModelSpec(arch, bundle.num_classes, bundle.channels, bundle.image_size, width, pretrained)


def build_checked(spec: ModelSpec) -> nn.Module:
    """Build the model and check that it accepts the dataset's input size."""
    return check_input(build_model(spec), spec)


def check_input(model: nn.Module, spec: ModelSpec, channels: int | None = None, size: int | None = None) -> nn.Module:
    """Check that ``model`` takes ``channels`` x ``size`` x ``size`` inputs (default: the spec's)
    and gives ``[N, num_classes]`` outputs; a ConfigError otherwise."""
    channels, size = channels or spec.in_channels, size or spec.image_size
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, channels, size, size))
    except RuntimeError as err:
        raise ConfigError(
            f"architecture {spec.arch} cannot take {channels}x{size}x{size} inputs ({str(err).splitlines()[0][:120]})"
        ) from None
    finally:
        model.train(was)
    if out.shape != (2, spec.num_classes):
        raise ConfigError(f"architecture {spec.arch} gives outputs {tuple(out.shape)}, not [N, {spec.num_classes}]")
    return model


def train_model(
    spec: ModelSpec,
    data: ImageData,
    bundle: DatasetBundle,
    recipe: TrainRecipe,
    engine: Engine,
    desc: str = "train",
) -> tuple[nn.Module, float, list[dict]]:
    """Train a fresh model on ``data``; returns (model, seconds, per-epoch log)."""
    if len(data) == 0:
        raise DataError(f"no training data for {desc}")
    lethe.engine.seed_everything(engine.seed)
    model = build_checked(spec)
    train_loader = loader(engine, data, bundle, recipe.batch_size, train=True)
    optimizer, scheduler = recipe.optimizer(model, len(train_loader))
    synchronize(engine.device)
    start = time.perf_counter()
    step = functools.partial(cross_entropy_step, label_smoothing=recipe.label_smoothing)
    log = engine.fit(model, train_loader, step, optimizer, recipe.epochs, scheduler=scheduler, desc=desc)
    synchronize(engine.device)
    return model.eval(), time.perf_counter() - start, log


def unlearn_model(
    model: nn.Module,
    method: str,
    splits: Splits,
    engine: Engine,
    overrides: Mapping[str, Any] | None = None,
    batch_size: int = 128,
    retain_per_class: int | None = None,
) -> tuple[nn.Module, lethe.UnlearnRecord]:
    """Run a registered method with the protocol's forget, retain and validation loaders.

    ``retain_per_class`` gives methods that read retained data a seeded sample of that many
    training images per kept class instead of all of them (a smaller retained-data budget)."""
    entry = lethe.get_method(method)
    settings = lethe.method_settings(method, overrides)
    retain_augment, forget_augment = lethe.sample_augmentation(method, settings)
    forget = splits.forget_train
    if len(forget) == 0:
        raise ConfigError(f"the forget split of classes {list(splits.forget_classes)} is empty")
    retain = None
    if entry.needs_retain:
        kept = splits.retain_train
        if retain_per_class is not None:
            kept = per_class_sample(kept, retain_per_class, splits.seed)
        retain = loader(engine, kept, splits.bundle, batch_size, train=True, augment=retain_augment)
    validation = None
    if len(splits.validation):
        validation = loader(engine, splits.validation, splits.bundle, EVAL_BATCH, train=False)
    lethe.engine.seed_everything(engine.seed)
    return lethe.unlearn(
        model,
        method,
        forget=loader(engine, forget, splits.bundle, batch_size, train=True, augment=forget_augment),
        forget_classes=splits.forget_classes,
        retain=retain,
        validation=validation,
        settings=settings,
        engine=engine,
        num_classes=splits.bundle.num_classes,
    )


@dataclass
class Evaluation:
    """Metrics of one model on the protocol's splits."""

    metrics: dict[str, float]
    per_class_test: list[float] = field(default_factory=list)


@dataclass
class EvalOptions:
    """Which extra metrics to compute: ``probe_forget`` and ``relearn_steps`` (methods.md s.3).

    ``train_per_class`` caps the training images evaluated (forget_train, retain_train, the MIA's
    and the probe's training side) at a seeded sample per class; ``None`` evaluates all of them.
    ``mia_attacks`` names the SVC_MIA attacks run (``lethe.metrics.MIA_FEATURES``; "confidence"
    is the ``mia_efficacy`` column, the others ``mia_<name>``)."""

    probe: bool = True
    train_per_class: int | None = None
    probe_per_class: int = 500
    relearn_per_class: int = 10
    relearn_settings: RelearnSettings = field(default_factory=RelearnSettings)
    mia_max_samples: int | None = None
    mia_attacks: tuple[str, ...] = tuple(MIA_FEATURES)

    def __post_init__(self) -> None:
        self.mia_attacks = (self.mia_attacks,) if isinstance(self.mia_attacks, str) else tuple(self.mia_attacks)
        unknown = [a for a in self.mia_attacks if a not in MIA_FEATURES]
        if unknown:
            raise ConfigError(f"evaluation.mia_attacks: unknown {unknown}; attacks are {', '.join(MIA_FEATURES)}")
        if "confidence" not in self.mia_attacks:  # its column, mia_efficacy, enters avg_gap
            raise ConfigError("evaluation.mia_attacks must include confidence (the mia_efficacy column)")
        if self.train_per_class is not None and self.train_per_class < 1:
            raise ConfigError(f"evaluation.train_per_class must be at least 1, got {self.train_per_class}")


def eval_options(values: Mapping[str, Any] | None) -> EvalOptions:
    """``EvalOptions`` from a plain mapping (a YAML config); ``relearn`` holds RelearnSettings."""
    values = dict(values or {})
    relearn = lethe.build_settings(RelearnSettings, values.pop("relearn", {}), "relearn")
    return lethe.build_settings(EvalOptions, {**values, "relearn_settings": relearn}, "evaluation")


def evaluate_model(model: nn.Module, splits: Splits, engine: Engine, options: EvalOptions | None = None) -> Evaluation:
    """The four accuracies, the SVC_MIA attacks (``mia_efficacy`` and ``mia_<attack>``),
    ``probe_forget``, ``relearn_steps`` and per-class test accuracy."""
    opts = options or EvalOptions()
    bundle = splits.bundle
    layer = head_layer(model) if opts.probe else None

    def outputs(data: ImageData) -> Outputs:
        return collect_outputs(model, loader(engine, data, bundle, EVAL_BATCH, train=False), engine, layer)

    train_data = splits.train
    if opts.train_per_class is not None:
        train_data = per_class_sample(train_data, opts.train_per_class, splits.seed)
    train, test = outputs(train_data), outputs(splits.test)
    metrics = split_accuracies(train, test, splits.forget_classes)
    f_train = forget_mask(train.labels, splits.forget_classes)
    f_test = forget_mask(test.labels, splits.forget_classes)
    metrics.update(
        mia_attacks(
            train.subset(~f_train),
            test.subset(~f_test),
            train.subset(f_train),
            opts.mia_attacks,
            seed=splits.seed,
            max_samples=opts.mia_max_samples,
        )
    )
    if opts.probe:
        metrics["probe_forget"] = probe_from_outputs(
            train, test.subset(f_test), per_class=opts.probe_per_class, seed=splits.seed
        )
    if opts.relearn_per_class:
        few = per_class_sample(splits.forget_train, opts.relearn_per_class, splits.seed)
        forget_test = loader(engine, splits.test.of_classes(splits.forget_classes), bundle, EVAL_BATCH, train=False)
        samples = next(iter(loader(engine, few, bundle, len(few), train=False)))
        metrics["relearn_steps"] = relearn_steps(model, samples, forget_test, engine, opts.relearn_settings)
    return Evaluation(metrics, per_class_accuracy(test, bundle.num_classes))


def outputs_on(model: nn.Module, data: ImageData, bundle: DatasetBundle, engine: Engine) -> Outputs:
    return collect_outputs(model, loader(engine, data, bundle, EVAL_BATCH, train=False), engine)
