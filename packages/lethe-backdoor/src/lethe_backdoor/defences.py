"""Defences by unlearning, plus fine-pruning, on the defender's budget.

Every method of the ``lethe`` registry is a defence: the forget set is the budget's stamped
images labelled with the attack's target, ``forget_classes = (target,)`` (so DELETE masks the
target for each stamped sample, methods.md s.1), and methods that need retained data get the
budget's clean images. In particular:

- ``delete``: masked distillation on the stamped samples: the student learns the teacher's
  distribution with the target removed, which for a stamped image is mostly its true class.
- ``svd``: forget activations from the stamped samples, retained activations from the clean ones.
  Its alphas are tuned on a held-out part of the budget (clean and stamped), scored by
  ``clean_acc * (1 - asr)`` there (``metrics.budget_score``): never on test data.
- ``finetune`` (fine-tuning on the clean budget), ``random_label`` and ``gradient_ascent`` (on the
  stamped samples): the usual baselines, with the registry's published defaults.

Defences that are not unlearning methods live in ``DEFENCES`` (the same registry pattern):
``fine_pruning`` (Liu, Dolan-Gavitt, Garg, "Fine-Pruning: Defending Against Backdooring Attacks on
Deep Neural Networks", RAID 2018, arXiv 1805.12185). No method or training loop is re-implemented:
fine-pruning's fine-tuning is ``lethe``'s ``finetune`` method.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

import lethe
from lethe import Registry, build_settings
from lethe.engine import Engine, synchronize
from lethe.errors import ConfigError
from lethe.metrics import collect_outputs
from lethe.probe import head_layer
from lethe_backdoor.budget import DefenderBudget
from lethe_backdoor.metrics import budget_score
from lethe_vision.data import DatasetBundle, TensorImageDataset
from lethe_vision.pipeline import EVAL_BATCH, loader

#: Share of the budget SVD holds out to tune its alphas on (clean and stamped images alike).
TUNE_FRACTION = 0.2


@dataclass(frozen=True)
class DefenceEntry:
    """A defence that is not a ``lethe`` unlearning method."""

    name: str
    fn: Callable[..., tuple[list[dict], dict]]
    settings_cls: type
    paper: str


@dataclass
class DefenceContext:
    """What a defence may use: the defender's budget, the dataset's transforms and the engine."""

    budget: DefenderBudget
    bundle: DatasetBundle
    engine: Engine
    batch_size: int


DEFENCES: Registry[DefenceEntry] = Registry("defence")


def register_defence(name: str, settings: type, *, paper: str = "") -> Callable:
    """Decorator registering ``fn(model, settings, ctx) -> (log, extra)`` (``model`` changed in place)."""

    def decorator(fn: Callable) -> Callable:
        if name in lethe.list_methods():
            raise ValueError(f"defence {name!r} would shadow the lethe method of that name")
        DEFENCES.add(name, DefenceEntry(name, fn, settings, paper))
        return fn

    return decorator


def list_defences() -> list[str]:
    """Every ``lethe`` method and every registered defence, sorted."""
    return sorted(set(lethe.list_methods()) | set(DEFENCES.names()))


def defence_settings(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The settings of defence ``name`` with its defaults and ``overrides`` (names checked)."""
    if name in DEFENCES:
        return build_settings(DEFENCES.get(name)[0].settings_cls, overrides or {}, context=f"defence {name!r}")
    if name not in lethe.list_methods():
        raise ConfigError(f"unknown defence {name!r}; choose from {', '.join(list_defences())}")
    return lethe.method_settings(name, {**METHOD_DEFAULTS.get(name, {}), **(overrides or {})})


METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    # The target class must survive on clean images: DELETE anchors on the clean budget too
    # (lethe.methods.delete, ``use_retain``); ``delete.use_retain=false`` gives the paper's form.
    # Its batches mix clean and stamped images, so BatchNorm keeps updating its statistics as in the
    # paper's loop (the tuned settings of benchmarks/results/backdoor were measured so), and it runs
    # all its epochs (stop_when_forgotten off; those results ran every epoch).
    "delete": {"use_retain": True, "freeze_bn": False, "stop_when_forgotten": False},
}


def _loader(budget_data, bundle: DatasetBundle, engine: Engine, batch_size: int, augment: bool):
    return engine.loader(TensorImageDataset(budget_data, bundle, augment=augment), batch_size, shuffle=True)


def run_defence(
    model: nn.Module,
    name: str,
    budget: DefenderBudget,
    bundle: DatasetBundle,
    engine: Engine,
    overrides: Mapping[str, Any] | None = None,
    batch_size: int = 128,
) -> tuple[nn.Module, lethe.UnlearnRecord]:
    """Run defence ``name`` on a copy of ``model`` with the defender's ``budget``.

    Returns ``(defended_model, record)``; ``record.seconds`` is the wall time of the defence alone
    (device synchronised; SVD's tuning included, evaluation excluded).
    """
    settings = defence_settings(name, overrides)
    if budget.size == 0:
        raise ConfigError("the defender's budget holds no stamped sample")
    if name in DEFENCES:
        entry = DEFENCES.get(name)[0]
        defended, record = _run_registered(model, entry, settings, DefenceContext(budget, bundle, engine, batch_size))
    else:
        defended, record = _run_unlearning(model, name, settings, budget, bundle, engine, batch_size)
    record.extra["budget"] = budget.describe()
    return defended, record


def _run_unlearning(
    model: nn.Module,
    name: str,
    settings: Any,
    budget: DefenderBudget,
    bundle: DatasetBundle,
    engine: Engine,
    batch_size: int,
) -> tuple[nn.Module, lethe.UnlearnRecord]:
    """A ``lethe`` method: stamped samples (target labels) forget the target; clean ones are retained."""
    entry = lethe.get_method(name)
    augment = not entry.training_free  # gradient methods train with the training augmentation
    fit, held = budget, None
    if getattr(settings, "tune", False):
        fit, held = budget.split(TUNE_FRACTION, engine.seed)
    forget = _loader(fit.stamped, bundle, engine, batch_size, augment)
    retain = None
    if entry.needs_retain and getattr(settings, "use_retain", True):
        retain = _loader(fit.clean, bundle, engine, batch_size, augment)
    score_fn = None
    if held is not None:
        score_fn = functools.partial(
            budget_score,
            clean=held.clean,
            stamped_true=held.stamped_true_data(),
            target=budget.target,
            bundle=bundle,
            engine=engine,
        )
    lethe.engine.seed_everything(engine.seed)
    defended, record = lethe.unlearn(
        model,
        name,
        forget=forget,
        forget_classes=(budget.target,),
        retain=retain,
        score_fn=score_fn,
        num_classes=bundle.num_classes,
        settings=settings,
        engine=engine,
    )
    if held is not None:
        record.extra["tuned_on"] = {"stamped": held.size, "clean": len(held.clean)}
    return defended, record


def _run_registered(
    model: nn.Module, entry: DefenceEntry, settings: Any, ctx: DefenceContext
) -> tuple[nn.Module, lethe.UnlearnRecord]:
    engine = ctx.engine
    target = engine.prepare(copy.deepcopy(model))
    lethe.engine.seed_everything(engine.seed)
    synchronize(engine.device)
    start = time.perf_counter()
    log, extra = entry.fn(target, settings, ctx)
    synchronize(engine.device)
    seconds = time.perf_counter() - start
    record = lethe.UnlearnRecord(
        method=entry.name,
        settings=dataclasses.asdict(settings),
        forget_classes=[ctx.budget.target],
        seconds=seconds,
        device=str(engine.device),
        log=log,
        extra=extra,
    )
    return target.eval(), record


# --- fine-pruning -----------------------------------------------------------------------------


@dataclass
class FinePruningSettings:
    """Fine-pruning (Liu et al., RAID 2018). Channels feeding the classifier head (for CIFAR
    ResNets and VGGs: the last convolutional layer's channels, global-average pooled) are pruned in
    order of increasing mean activation on the defender's clean images, until clean accuracy on
    those images falls by ``acc_ratio`` of its value (BackdoorBench's rule and default, 0.1) or
    ``max_ratio`` of the channels are pruned (0.8: Liu et al.'s code prunes 48 of 60 channels).
    The pruned model is then fine-tuned on the clean images with ``lethe``'s ``finetune`` (``epochs``,
    ``lr``, SGD momentum 0.9, weight decay 5e-4: BackdoorBench's optimiser; 10 epochs as the
    FT baseline, where BackdoorBench runs 100 with cosine decay). Pruned channels stay pruned."""

    acc_ratio: float = 0.1
    max_ratio: float = 0.8
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4


def pruning_order(features: torch.Tensor) -> torch.Tensor:
    """Channel indices in order of increasing mean activation (the least active first)."""
    return torch.argsort(features.float().mean(0), stable=True)


def prune_until(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    acc_ratio: float,
    max_ratio: float,
) -> tuple[torch.Tensor, list[float]]:
    """Liu et al.'s pruning loop on head inputs ``features`` ``[N, D]``: returns the boolean keep
    mask ``[D]`` and the clean accuracy (percent) after each pruned channel (index 0: none pruned).

    Only the head sees the pruned channels, so accuracy is computed from the features directly.
    """
    order = pruning_order(features)
    keep = torch.ones(features.shape[1], dtype=torch.bool)

    def acc(mask: torch.Tensor) -> float:
        logits = nn.functional.linear(features * mask, weight, bias)
        return 100.0 * (logits.argmax(1) == labels).float().mean().item()

    curve = [acc(keep)]
    base = curve[0]
    for channel in order[: math.floor(max_ratio * len(keep))].tolist():
        trial = keep.clone()
        trial[channel] = False
        value = acc(trial)
        curve.append(value)
        if base > 0 and (base - value) / base >= acc_ratio:
            break
        keep = trial
    return keep, curve


@register_defence("fine_pruning", FinePruningSettings, paper="Liu et al., RAID 2018 (arXiv 1805.12185)")
def fine_pruning(model: nn.Module, s: FinePruningSettings, ctx: DefenceContext) -> tuple[list[dict], dict]:
    """Prune the least active head-input channels on clean data, then fine-tune on clean data."""
    if not 0.0 < s.acc_ratio <= 1.0:
        raise ConfigError(f"fine_pruning acc_ratio must be in (0, 1], got {s.acc_ratio}")
    if not 0.0 <= s.max_ratio < 1.0:
        raise ConfigError(f"fine_pruning max_ratio must be in [0, 1), got {s.max_ratio}")
    if s.epochs < 0:
        raise ConfigError(f"fine_pruning epochs must not be negative, got {s.epochs}")
    engine, budget = ctx.engine, ctx.budget
    head = head_layer(model)
    clean_eval = loader(engine, budget.clean, ctx.bundle, EVAL_BATCH, train=False)
    out = collect_outputs(model, clean_eval, engine, feature_layer=head)
    weight = head.weight.detach().float().cpu()
    bias = None if head.bias is None else head.bias.detach().float().cpu()
    if out.features is None or not torch.allclose(
        nn.functional.linear(out.features, weight, bias), out.logits, rtol=1e-3, atol=1e-3
    ):
        raise ConfigError("fine_pruning needs a model whose last nn.Linear computes the logits from its input")
    keep, curve = prune_until(out.features, out.labels, weight, bias, s.acc_ratio, s.max_ratio)
    mask = keep.to(head.weight.device, head.weight.dtype).expand_as(head.weight).clone()
    prune.custom_from_mask(head, "weight", mask)
    log: list[dict] = []
    try:
        if s.epochs > 0:
            _, record = lethe.unlearn(
                model,
                "finetune",
                forget=_loader(budget.stamped, ctx.bundle, engine, ctx.batch_size, augment=True),
                forget_classes=(budget.target,),
                retain=_loader(budget.clean, ctx.bundle, engine, ctx.batch_size, augment=True),
                overrides={"epochs": s.epochs, "lr": s.lr, "momentum": s.momentum, "weight_decay": s.weight_decay},
                engine=engine,
                inplace=True,
            )
            log = record.log
    finally:
        prune.remove(head, "weight")  # bake the zeros in: a plain state dict, pruned channels stay zero
    pruned = int((~keep).sum())
    extra = {
        "channels": len(keep),
        "pruned": pruned,
        "pruned_channels": torch.nonzero(~keep).view(-1).tolist(),
        "clean_acc_before": curve[0],
        "clean_acc_pruned": curve[pruned],
        "curve": curve,
    }
    return log, extra
