"""The face protocols (methods.md s.3, face; DELETE, CVPR 2025, face setting).

- ``all``: train embedder + identity head on every identity, forget one or more; the retrain
  oracle is trained from scratch without them.
- ``two-stage`` (DELETE's face setting): pretrain the embedder on identity set A, fit a new identity
  head on a disjoint set B (embedder frozen, or fine-tuned with ``finetune_embedder``), forget
  identities of B; the oracle refits the head (same pretrained embedder) without them.

Splits, loaders, unlearning and the identification metrics are ``lethe_vision``'s; a
validation split is held out of the training images (SVD's tuning only).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

import lethe
from lethe.engine import Engine, synchronize
from lethe.errors import ConfigError, DataError
from lethe_face.datasets import identity_subset
from lethe_face.metrics import VerifyOptions, evaluate_verification
from lethe_face.models import CosineHead, FaceModel, FaceModelSpec, arcface_logits, build_face_model
from lethe_vision.data import DatasetBundle, ImageData, TensorImageDataset
from lethe_vision.pipeline import EvalOptions, Splits, TrainRecipe, evaluate_model, make_splits

PROTOCOLS: lethe.Registry[Callable[..., FaceRun]] = lethe.Registry("protocol")


@dataclass
class ProtocolOptions:
    """``head_identities``: size of set B in ``two-stage`` (forgotten identities included; the rest
    are drawn at random, seeded); ``head_min_images``: instead, B is every identity with at least
    this many images (train and test; the forgotten ones always), e.g. 20 on LFW loaded with
    ``min_images`` 10: the classic 62 people fit the head, the other 96 pretrain; ``head_recipe``:
    the recipe of the head fit on B."""

    head_identities: int = 10
    head_min_images: int | None = None
    finetune_embedder: bool = False
    head_recipe: TrainRecipe = field(default_factory=lambda: TrainRecipe(epochs=10, warmup_epochs=0))
    #: ``all``: the original's and the oracle's identity heads start imprinted (``imprint_head``)
    #: instead of at random, for a fresh head on a pretrained embedder
    imprint: bool = False


@torch.no_grad()
def imprint_head(model: FaceModel, data: ImageData, bundle: DatasetBundle, engine: Engine, scale: float) -> None:
    """Weight imprinting (Qi et al., CVPR 2018, "Low-shot learning with imprinted weights"): each
    identity's head row becomes the normalised mean of its training images' normalised embeddings,
    times ``scale`` for a linear head (whose bias is zeroed), so that its logits start as ``scale``
    times the cosine, as the cosine head's do; identities without images keep their rows."""
    from lethe_face.metrics import embeddings_of

    emb, labels = embeddings_of(model, data, bundle, engine)
    head = model.head
    weight = head.weight.detach().clone()
    for c in labels.unique().tolist():
        weight[c] = torch.nn.functional.normalize(emb[labels == c].mean(0), dim=0).to(weight)
    head.weight.copy_(weight if isinstance(head, CosineHead) else weight * scale)
    if getattr(head, "bias", None) is not None:
        head.bias.zero_()


def identity_step(head: nn.Module, steps_per_epoch: int = 1) -> Callable:
    """Cross-entropy on the identity logits; with a cosine head, ArcFace's margin on the target,
    ramped linearly from 0 over the head's ``margin_warmup_epochs`` (counted in calls of the step)."""
    cosine = isinstance(head, CosineHead)
    scale, margin, warmup = (head.scale, head.margin, head.margin_warmup_epochs) if cosine else (1.0, 0.0, 0)
    ramp = warmup * steps_per_epoch
    calls = 0

    def step(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict]:
        nonlocal calls
        x, y = batch[0], batch[1]
        m = margin * min(1.0, calls / ramp) if ramp else margin
        calls += 1
        logits = arcface_logits(model(x).float(), y, scale, m)
        return nn.functional.cross_entropy(logits, y), ({"margin": torch.tensor(m)} if ramp else {})

    return step


def train_face(
    model: FaceModel,
    data: ImageData,
    bundle: DatasetBundle,
    recipe: TrainRecipe,
    engine: Engine,
    desc: str = "train",
    freeze_embedder: bool = False,
) -> tuple[FaceModel, float, list[dict]]:
    """Train ``model`` on ``data`` (crop/flip augmentation, SGD + cosine decay); with
    ``freeze_embedder`` only the head learns and the embedder stays in eval mode."""
    if len(data) == 0:
        raise DataError(f"no training images for {desc}")
    lethe.engine.seed_everything(engine.seed)
    train_loader = engine.loader(TensorImageDataset(data, bundle, augment=True), recipe.batch_size, shuffle=True)
    for p in model.embedder.parameters():
        p.requires_grad_(not freeze_embedder)
    optimizer, scheduler = recipe.optimizer(model, len(train_loader))

    def train_mode(m: nn.Module) -> None:
        m.train()
        if freeze_embedder:
            m.embedder.eval()

    synchronize(engine.device)
    start = time.perf_counter()
    try:
        log = engine.fit(
            model,
            train_loader,
            identity_step(model.head, len(train_loader)),
            optimizer,
            recipe.epochs,
            scheduler=scheduler,
            desc=desc,
            train_mode=train_mode,
        )
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    synchronize(engine.device)
    return model.eval(), time.perf_counter() - start, log


@dataclass
class FaceRun:
    """A protocol's trained original, how to train its oracle, and the evaluated splits."""

    splits: Splits
    spec: FaceModelSpec
    original: FaceModel
    original_seconds: float
    original_log: list
    retrain: Callable[[], tuple[FaceModel, float, list]]
    info: dict[str, Any] = field(default_factory=dict)


def fresh_model(spec: FaceModelSpec, engine: Engine) -> FaceModel:
    """``build_face_model`` after seeding, so the initial weights depend on the seed alone."""
    lethe.engine.seed_everything(engine.seed)
    return build_face_model(spec)


@PROTOCOLS.register("all")
def protocol_all(
    bundle: DatasetBundle,
    forget: tuple[int, ...],
    spec: FaceModelSpec,
    recipe: TrainRecipe,
    engine: Engine,
    val_fraction: float = 0.1,
    options: ProtocolOptions | None = None,
) -> FaceRun:
    """Train on every identity, forget ``forget``; the oracle trains from scratch on the rest."""
    splits = make_splits(bundle, forget, val_fraction, engine.seed)
    spec = replace(spec, num_classes=bundle.num_classes, image_size=bundle.image_size)
    imprint = (options or ProtocolOptions()).imprint

    def train(data: ImageData, desc: str) -> tuple[FaceModel, float, list]:
        model = fresh_model(spec, engine)
        if imprint:
            imprint_head(model, data, bundle, engine, spec.scale)
        return train_face(model, data, bundle, recipe, engine, desc)

    model, seconds, log = train(splits.train, "original")

    def retrain() -> tuple[FaceModel, float, list]:
        return train(splits.retain_train, "retrain")

    return FaceRun(splits, spec, model, seconds, log, retrain, {"protocol": "all"})


def choose_head_identities(num: int, forget: tuple[int, ...], size: int, seed: int) -> list[int]:
    """Set B of ``two-stage``: the forgotten identities plus ``size - len(forget)`` others (seeded)."""
    _check_head_set(num, forget, size, "head_identities")
    others = [c for c in range(num) if c not in forget]
    gen = torch.Generator().manual_seed(seed)
    chosen = [others[i] for i in torch.randperm(len(others), generator=gen)[: size - len(forget)].tolist()]
    return sorted([*forget, *chosen])


def identities_with_images(bundle: DatasetBundle, forget: tuple[int, ...], min_images: int) -> list[int]:
    """Set B of ``two-stage`` by size: the identities with at least ``min_images`` images in train and
    test together, and the forgotten ones."""
    counts = torch.bincount(torch.cat([bundle.train.labels, bundle.test.labels]), minlength=bundle.num_classes)
    chosen = sorted({*forget, *(c for c in range(bundle.num_classes) if counts[c] >= min_images)})
    _check_head_set(bundle.num_classes, forget, len(chosen), f"head_min_images={min_images}")
    return chosen


def _check_head_set(num: int, forget: tuple[int, ...], size: int, what: str) -> None:
    if not len(forget) < size <= num - 2:
        raise ConfigError(
            f"{what} must give set B more than the {len(forget)} forgotten identities and leave at least 2 of "
            f"the {num} identities for pretraining; it gives {size}"
        )


@PROTOCOLS.register("two-stage")
def protocol_two_stage(
    bundle: DatasetBundle,
    forget: tuple[int, ...],
    spec: FaceModelSpec,
    recipe: TrainRecipe,
    engine: Engine,
    val_fraction: float = 0.1,
    options: ProtocolOptions | None = None,
) -> FaceRun:
    """DELETE's face setting: pretrain on A, fit the head on B, forget identities of B."""
    o = options or ProtocolOptions()
    if o.head_min_images is not None:
        head_ids = identities_with_images(bundle, forget, o.head_min_images)
    else:
        head_ids = choose_head_identities(bundle.num_classes, forget, o.head_identities, engine.seed)
    pre_ids = [c for c in range(bundle.num_classes) if c not in head_ids]
    pre_bundle = identity_subset(bundle, pre_ids, f"{bundle.name} (pretraining identities)")
    head_bundle = identity_subset(bundle, head_ids, f"{bundle.name} (head identities)")
    pre_spec = replace(spec, num_classes=len(pre_ids), image_size=bundle.image_size)
    pre_splits = make_splits(pre_bundle, (), val_fraction, engine.seed)
    pretrained, pre_seconds, pre_log = train_face(
        fresh_model(pre_spec, engine), pre_splits.train, pre_bundle, recipe, engine, "pretrain"
    )
    forget_b = tuple(head_ids.index(c) for c in forget)
    splits = make_splits(head_bundle, forget_b, val_fraction, engine.seed)
    spec = replace(pre_spec, num_classes=len(head_ids), pretrained=None, weights=None)

    def fit_head(data: ImageData, desc: str) -> tuple[FaceModel, float, list]:
        model = fresh_model(spec, engine)
        model.embedder = copy.deepcopy(pretrained.embedder)
        return train_face(
            model, data, head_bundle, o.head_recipe, engine, desc, freeze_embedder=not o.finetune_embedder
        )

    model, seconds, log = fit_head(splits.train, "head")
    info = {
        "protocol": "two-stage",
        "pretrain_identities": len(pre_ids),
        "head_identities": len(head_ids),
        "pretrain_seconds": pre_seconds,
        "pretrain_log": pre_log,
        "finetune_embedder": o.finetune_embedder,
        "head_identity_names": head_bundle.classes,
    }
    return FaceRun(splits, spec, model, seconds, log, lambda: fit_head(splits.retain_train, "retrain head"), info)


def evaluate_face(
    model: nn.Module,
    splits: Splits,
    engine: Engine,
    evaluation: EvalOptions | None = None,
    verification: VerifyOptions | None = None,
) -> dict[str, float]:
    """Identification (``forget_train``, ``retain_train``, ``forget_test``, ``retain_test``),
    ``mia_efficacy``, ``probe_forget`` on the embedding, ``relearn_steps`` and verification."""
    metrics = dict(evaluate_model(model, splits, engine, evaluation).metrics)
    metrics.update(
        evaluate_verification(model, splits.bundle, splits.forget_classes, engine, verification, splits.seed)
    )
    return metrics


#: Package defaults under the user's overrides. One person's few images are the whole forget set,
#: so DELETE keeps BatchNorm in eval mode (in train mode its running statistics would be
#: re-estimated from that one identity) and anchors on retained images (``use_retain``): on
#: ORL, 20 steps on 6 images alone dropped the kept identities from 95 % to 32 %.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {"delete": {"freeze_bn": True, "use_retain": True}}


def method_overrides(method: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The face package's defaults for ``method`` updated with ``overrides``."""
    return {**METHOD_DEFAULTS.get(method, {}), **(overrides or {})}
