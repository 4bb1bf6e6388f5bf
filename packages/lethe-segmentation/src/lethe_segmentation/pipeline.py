"""The segmentation protocol: splits, training, per-pixel unlearning and evaluation.

- Forget set: the training images that contain a forgotten class (any pixel, native resolution).
- Retained data (for methods that read it): every training image with the forgotten-class pixels
  relabelled as ignore -- exactly the retrain oracle's training data (methods.md s.3).
- Validation: the dataset's own ``val`` split (CamVid) or a seeded share held out of ``train``;
  it is used only to tune methods (SVD's alphas), never for reported numbers.
- Reported numbers come from one confusion matrix over the test split (``metrics``), plus
  ``recall_forget_train`` on the forget set itself.

Methods run through ``lethe.unlearn``; ``unlearn_model`` only builds the loaders each method's
per-pixel form needs (``PIXEL_METHODS``), so no code branches on method names.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lethe
from lethe import Registry
from lethe.engine import Engine, seed_everything, synchronize
from lethe.errors import ConfigError, DataError
from lethe_segmentation.confusion import collect_confusion
from lethe_segmentation.datasets import IGNORE_INDEX, LabelMap, SegBundle, SegmentationDataset, SegSplit
from lethe_segmentation.metrics import segmentation_metrics
from lethe_segmentation.models import ModelSpec, check_model, initial_model, output_stride
from lethe_segmentation.transforms import Resolution, eval_transform, train_transform
from lethe_vision.pipeline import SGDRecipe

EVAL_BATCH = 16


@dataclass
class TrainRecipe(SGDRecipe):
    """Supervised recipe: SGD momentum 0.9, weight decay 1e-4, per-batch cosine decay after a
    linear warm-up of 1 epoch (``SGDRecipe``, whose momentum and warm-up defaults it keeps),
    pixel-wise cross-entropy over valid pixels (ignore excluded).

    ``class_weights``: ``"none"``, or ``"median_frequency"`` -- median frequency balancing
    (Eigen & Fergus, ICCV 2015; SegNet's CamVid recipe, Badrinarayanan et al., TPAMI 2017):
    ``w_c = median(f) / f_c`` with ``f_c`` = pixels of class c / pixels of the training images
    that contain c, counted on the training labels (ignored classes excluded)."""

    epochs: int = 40
    batch_size: int = 8
    lr: float = 0.05
    weight_decay: float = 1e-4
    class_weights: str = "none"


@dataclass
class SegSplits:
    """The protocol's data for one dataset, resolution and seed."""

    bundle: SegBundle
    train: SegSplit
    validation: SegSplit
    test: SegSplit
    resolution: Resolution
    native: tuple[int, int]  # the smallest training image (height, width): default training crop
    largest: tuple[int, int]  # the largest image of any split: native evaluation pads to it
    val_source: str
    seed: int = 0

    def dataset(self, split: SegSplit, *, augment: bool, label_map: LabelMap | None = None) -> SegmentationDataset:
        """Images of ``split`` with the training (``augment``) or evaluation transform."""
        if augment:
            transform = train_transform(self.resolution, self.native, seed=self.seed)
        else:
            transform = eval_transform(self.resolution, self.largest)
        return SegmentationDataset(split, self.bundle, transform, label_map)

    def forget_train(self, forget: Sequence[int]) -> SegSplit:
        """The forget set: training images that contain any forgotten class."""
        return self.train.containing(forget)


def make_splits(bundle: SegBundle, resolution: Resolution, val_fraction: float = 0.1, seed: int = 0) -> SegSplits:
    """Train/validation/test; validation is ``val`` if the dataset has one, else held out of train."""
    train, test = bundle.split("train"), bundle.split("test")
    if len(train) == 0:
        raise DataError(f"{bundle.name} has no training images")
    if "val" in bundle.splits and len(bundle.splits["val"]):
        validation, source = bundle.splits["val"], "the dataset's val split"
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"validation fraction must be in [0, 1), got {val_fraction}")
        rng = np.random.default_rng(seed)
        take = round(val_fraction * len(train))
        if val_fraction > 0 and len(train) > 1:
            take = min(max(1, take), len(train) - 1)
        held = np.zeros(len(train), dtype=bool)
        held[rng.permutation(len(train))[:take]] = True
        validation, train = train.subset(held), train.subset(~held)
        source = f"{take} images held out of train ({val_fraction:g}, seed {seed})"
    native = tuple(int(v) for v in train.sizes.min(axis=0))
    sizes = np.concatenate([s.sizes for s in (train, validation, test) if len(s)])
    largest = tuple(int(v) for v in sizes.max(axis=0))
    return SegSplits(bundle, train, validation, test, resolution, native, largest, source, seed)


def check_forget(splits: SegSplits, forget: Sequence[int]) -> tuple[int, ...]:
    """Forget classes must be named, not all classes, and present in the training images."""
    bundle = splits.bundle
    forget = tuple(sorted(set(int(c) for c in forget)))
    if not forget:
        raise ConfigError("name at least one class to forget")
    for c in forget:
        if not 0 <= c < bundle.num_classes:
            raise ConfigError(f"class {c} is out of range: {bundle.name} has classes 0..{bundle.num_classes - 1}")
    if len(forget) >= bundle.num_classes:
        raise ConfigError("cannot forget every class")
    for c in forget:
        if splits.train.pixels_of([c]).sum() == 0:
            raise DataError(f"class {bundle.classes[c]} ({c}) has no pixels in the training images of {bundle.name}")
    return forget


def loader(
    engine: Engine, dataset: SegmentationDataset, batch_size: int, *, shuffle: bool, shard: bool | None = None
) -> DataLoader:
    """A seeded loader; training loaders drop a last partial batch (BatchNorm needs > 1 sample).
    ``shard``: see ``Engine.loader`` (default: shuffled loaders are split across processes)."""
    drop_last = shuffle and len(dataset) > batch_size
    return engine.loader(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, shard=shard)


def resolve_resolution(
    model: nn.Module, spec: ModelSpec, resolution: Resolution, native: tuple[int, int]
) -> Resolution:
    """Fill the model's stride into ``resolution`` and check the model takes the crop and eval sizes."""
    res = dataclasses.replace(resolution, divisor=output_stride(model))
    for what, (h, w) in (("size", res.size or native), ("crop", res.train_crop(native))):
        if h % res.divisor or w % res.divisor:
            if what == "size" and not res.size:
                continue  # native evaluation pads to the stride
            raise ConfigError(
                f"{what} {h}x{w} is not divisible by the model stride {res.divisor} "
                f"({spec.arch}, encoder {spec.encoder}); e.g. use {h // res.divisor * res.divisor or res.divisor}x"
                f"{w // res.divisor * res.divisor or res.divisor}"
            )
    h, w = res.train_crop(native)
    check_model(model, spec, h, w)
    return res


CLASS_WEIGHTS = ("none", "median_frequency")


def class_weights(split: SegSplit, num_classes: int, kind: str, ignore: Sequence[int] = ()) -> torch.Tensor | None:
    """Per-class loss weights of ``kind`` (see ``TrainRecipe``); ``None`` for ``"none"``."""
    if kind not in CLASS_WEIGHTS:
        raise ConfigError(f"unknown class weighting {kind!r}; choose from {', '.join(CLASS_WEIGHTS)}")
    if kind == "none":
        return None
    counts = split.counts.astype(np.float64).copy()
    counts[:, list(ignore)] = 0.0
    image_pixels = counts.sum(axis=1, keepdims=True)
    present = counts > 0
    area = (present * image_pixels).sum(axis=0)
    freq = np.divide(counts.sum(axis=0), area, out=np.zeros(num_classes), where=area > 0)
    seen = freq > 0
    weights = np.zeros(num_classes)
    weights[seen] = np.median(freq[seen]) / freq[seen]
    return torch.tensor(weights, dtype=torch.float32)


def pixel_cross_entropy_step(
    model: nn.Module, batch: Any, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict]:
    """Cross-entropy averaged over valid pixels (weighted mean with ``weight``; a batch without a
    valid pixel gives 0, not NaN)."""
    x, y = batch[0], batch[1]
    logits = model(x).float()
    if weight is None:
        loss = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum")
        return loss / (y != IGNORE_INDEX).sum().clamp_min(1), {}
    weight = weight.to(logits.device)
    loss = F.cross_entropy(logits, y, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum")
    valid = y != IGNORE_INDEX
    return loss / weight[y[valid]].sum().clamp_min(1e-12), {}


def train_model(
    spec: ModelSpec,
    splits: SegSplits,
    recipe: TrainRecipe,
    engine: Engine,
    ignore_classes: Sequence[int] = (),
    desc: str = "train",
) -> tuple[nn.Module, float, list[dict]]:
    """Train a fresh model on the training images (``ignore_classes`` relabelled as ignore: the
    retrain oracle). Returns (model, seconds, per-epoch log); ``splits.resolution`` must be resolved."""
    weight = class_weights(splits.train, splits.bundle.num_classes, recipe.class_weights, ignore_classes)
    seed_everything(engine.seed)
    model = initial_model(spec)
    data = splits.dataset(splits.train, augment=True, label_map=LabelMap(ignore=tuple(ignore_classes)))
    train_loader = loader(engine, data, recipe.batch_size, shuffle=True)
    optimizer, scheduler = recipe.optimizer(model, len(train_loader))
    synchronize(engine.device)
    start = time.perf_counter()
    step = functools.partial(pixel_cross_entropy_step, weight=weight)
    log = engine.fit(model, train_loader, step, optimizer, recipe.epochs, scheduler=scheduler, desc=desc)
    synchronize(engine.device)
    return model.eval(), time.perf_counter() - start, log


# --- per-pixel forms of the registered methods ----------------------------------------------------


@dataclass
class UnlearnJob:
    """What a per-pixel form needs to call ``lethe.unlearn``."""

    model: nn.Module
    method: str
    splits: SegSplits
    forget: tuple[int, ...]
    engine: Engine
    overrides: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    retain_images: int = 32

    def loader(
        self,
        split: SegSplit,
        *,
        augment: bool,
        label_map: LabelMap | None = None,
        shuffle: bool | None = None,
        shard: bool | None = None,
    ) -> DataLoader:
        data = self.splits.dataset(split, augment=augment, label_map=label_map)
        return loader(self.engine, data, self.batch_size, shuffle=augment if shuffle is None else shuffle, shard=shard)

    def forget_loader(self, label_map: LabelMap | None = None) -> DataLoader:
        """The forget images with the training augmentation."""
        return self.loader(self.splits.forget_train(self.forget), augment=True, label_map=label_map)

    def retain_loader(self) -> DataLoader:
        """All training images, forgotten-class pixels relabelled as ignore, with augmentation."""
        return self.loader(self.splits.train, augment=True, label_map=LabelMap(ignore=self.forget))

    def run(self, method: str | None = None, **kwargs: Any) -> tuple[nn.Module, lethe.UnlearnRecord]:
        seed_everything(self.engine.seed)
        kwargs.setdefault("forget", self.forget_loader())
        if "settings" not in kwargs:
            kwargs["overrides"] = self.overrides
        return lethe.unlearn(
            self.model,
            method or self.method,
            forget_classes=self.forget,
            engine=self.engine,
            num_classes=self.splits.bundle.num_classes,
            **kwargs,
        )


PixelForm = Callable[[UnlearnJob], "tuple[nn.Module, lethe.UnlearnRecord]"]
#: Per-pixel forms of the core's methods; a method missing here has no sensible per-pixel form yet.
PIXEL_METHODS: Registry[PixelForm] = Registry("per-pixel method")


@PIXEL_METHODS.register("delete")
def _delete(job: UnlearnJob):
    """DELETE on ``[N, C, H, W]``: the forgotten class masked at every valid pixel of the forget
    images, ignore pixels excluded (``ignore_index``); ``forget_pixel_weight`` > 1 up-weights the
    pixels of the forgotten class."""
    job.overrides = {"ignore_index": IGNORE_INDEX, **job.overrides}
    return job.run()


@PIXEL_METHODS.register("finetune")
def _finetune(job: UnlearnJob):
    """Fine-tune on the retained data (forgotten pixels ignored)."""
    return job.run(retain=job.retain_loader())


PIXEL_METHODS.add("retrain", _finetune)  # re-initialise, then the same data


@PIXEL_METHODS.register("gradient_ascent")
def _gradient_ascent(job: UnlearnJob):
    """Gradient ascent on the forgotten-class pixels only (every other pixel ignored)."""
    return job.run(forget=job.forget_loader(LabelMap(only=job.forget)))


@PIXEL_METHODS.register("neggrad_plus")
def _neggrad_plus(job: UnlearnJob):
    """Descend on the retained pixels, ascend on the forgotten-class pixels."""
    return job.run(forget=job.forget_loader(LabelMap(only=job.forget)), retain=job.retain_loader())


@PIXEL_METHODS.register("random_label")
def _random_label(job: UnlearnJob):
    """Random labels per pixel: the forgotten-class pixels get a random kept class (drawn afresh
    each epoch), every other pixel keeps its label, trained with cross-entropy by the core's
    ``finetune`` step. (The core's ``random_label`` draws one label per SAMPLE, so it cannot be
    used on dense labels; settings are its own: epochs, lr, momentum, weight_decay, use_retain.)
    ``use_retain`` (default): all training images; otherwise only the forget images."""
    settings = lethe.method_settings("random_label", job.overrides)
    relabel = LabelMap(randomize=job.forget)
    images = job.splits.train if settings.use_retain else job.splits.forget_train(job.forget)
    data = job.loader(images, augment=True, label_map=relabel)
    finetune = lethe.method_settings(
        "finetune", {k: getattr(settings, k) for k in ("epochs", "lr", "momentum", "weight_decay")}
    )
    model, record = job.run("finetune", retain=data, settings=finetune)
    record.method = "random_label"
    record.settings = dataclasses.asdict(settings)
    record.extra["per_pixel"] = "finetune step on labels whose forgotten-class pixels are random kept classes"
    return model, record


@PIXEL_METHODS.register("svd")
def _svd(job: UnlearnJob):
    """SVD through the core's hooks, training-free, without augmentation. Forget activations: the
    ``num_forget`` forget images with the largest share of forgotten pixels; retained activations:
    the ``retain_images`` training images with the smallest share (images without the class first).
    The core's per-class retained sampling needs one label per sample, so ``retain_per_class`` is
    replaced by this image count. Alphas are tuned (``tune``) on the validation split by
    ``miou_retain * (1 - recall_forget)``, never on test data."""
    overrides = {"num_forget": 32, **job.overrides}
    settings = dataclasses.replace(lethe.method_settings("svd", overrides), retain_per_class=None)
    if job.retain_images < 1:
        raise ConfigError(f"--retain-images must be at least 1, got {job.retain_images}")
    train = job.splits.train
    share = train.share_of(job.forget)
    forget_order = np.argsort(-share, kind="stable")[: int((share > 0).sum())]
    retain_order = np.argsort(share, kind="stable")[: job.retain_images]
    # In order, but split across processes under torchrun (each streams its share; Grams are summed).
    forget = job.loader(train.subset(forget_order), augment=False, shuffle=False, shard=True)
    retain = job.loader(train.subset(retain_order), augment=False, shuffle=False, shard=True)
    score_fn = None
    if len(job.splits.validation):
        validation = job.loader(job.splits.validation, augment=False)
        num_classes = job.splits.bundle.num_classes

        def score_fn(model: nn.Module) -> float:
            m = segmentation_metrics(collect_confusion(model, validation, job.engine, num_classes), job.forget)
            forgotten = m["recall_forget"] if not np.isnan(m["recall_forget"]) else m["predicted_forget"]
            return (m["miou_retain"] / 100.0) * (1.0 - forgotten / 100.0)

    model, record = job.run(forget=forget, retain=retain, settings=settings, score_fn=score_fn)
    record.extra["retain_images"] = len(retain.dataset)
    record.extra["retain_images_without_class"] = int((share[retain_order] == 0).sum())
    return model, record


def unlearn_model(
    model: nn.Module,
    method: str,
    splits: SegSplits,
    forget: Sequence[int],
    engine: Engine,
    overrides: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    retain_images: int = 32,
) -> tuple[nn.Module, lethe.UnlearnRecord]:
    """Run the per-pixel form of a registered method (``model`` is not modified)."""
    lethe.get_method(method)  # unknown names: the core's error, listing every method
    if method not in PIXEL_METHODS:
        raise ConfigError(
            f"method {method!r} has no per-pixel form in lethe-segmentation; choose from "
            f"{', '.join(PIXEL_METHODS.names())}"
        )
    forget = check_forget(splits, forget)
    form, _ = PIXEL_METHODS.get(method)
    job = UnlearnJob(model, method, splits, forget, engine, dict(overrides or {}), batch_size, retain_images)
    return form(job)


# --- evaluation -------------------------------------------------------------------------------------


def evaluate_model(
    model: nn.Module,
    splits: SegSplits,
    forget: Sequence[int],
    engine: Engine,
    *,
    batch_size: int = EVAL_BATCH,
    train_forget: bool = True,
) -> dict[str, Any]:
    """Test-split metrics (``lethe_segmentation.metrics``) plus ``recall_forget_train`` (the same
    recall over the forget set's training images) and the confusion matrix itself."""
    num_classes = splits.bundle.num_classes
    data = splits.dataset(splits.test, augment=False)
    conf = collect_confusion(model, loader(engine, data, batch_size, shuffle=False), engine, num_classes)
    result = segmentation_metrics(conf, forget)
    if forget and train_forget:
        forget_split = splits.forget_train(forget)
        if len(forget_split):
            data = splits.dataset(forget_split, augment=False)
            train_conf = collect_confusion(model, loader(engine, data, batch_size, shuffle=False), engine, num_classes)
            result["recall_forget_train"] = segmentation_metrics(train_conf, forget)["recall_forget"]
    result["confusion"] = conf.tolist()
    return result
