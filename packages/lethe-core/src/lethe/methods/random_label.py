"""Random labelling (RL): fine-tune on the forget samples relabelled at random, together with the
retained data (Golatkar, Achille, Soatto, "Eternal Sunshine of the Spotless Net", CVPR 2020,
arXiv 1911.04933; in the form used as a baseline by Fan et al., "SalUn", ICLR 2024, arXiv 2310.12508).

Each epoch is one shuffled pass over the forget and retained samples together: forget samples get
a random OTHER class as label, retained samples keep theirs, and every step is plain cross-entropy
on the mixed batch. This is the SalUn repository's RL for CIFAR-100 and Tiny-ImageNet
(``Classification/unlearn/RL.py``: a ``ConcatDataset`` of relabelled forget and retained data,
shuffled) and Golatkar et al.'s random-label fine-tuning. The same file's CIFAR-10 branch instead
runs all forget batches, then all retained batches; we do not, because with BatchNorm in train mode
a forget-only batch is normalised with its own statistics, and the random labels learnt on it need
not carry over to eval mode (on the toy problem of the tests forget accuracy stayed at 100 % with
that loop, and drops to 0 with mixed batches). Each sample is still seen once per epoch, so the
forget / retain proportions are those of the published code.

Defaults are that repository's ResNet-18 CIFAR-10 settings (``arg_parser.py``: ``--unlearn_epochs 10
--unlearn_lr 0.01``, SGD momentum 0.9, weight decay 5e-4; its step decay at epochs 91 and 136 never
triggers within 10 epochs, so the rate is constant). Batch size: the retain loader's.

Other differences from that code: the random label is drawn among the OTHER classes
(``methods._common.random_other_labels``; the code draws from all classes, so about 1 in C
"random" labels is the true one), afresh for every batch from a generator seeded with
``engine.seed`` (the code's CIFAR-100 branch fixes them per epoch).

``needs_retain=True``: the published method trains on retained data, and task pipelines build a
retain loader only for methods that declare it. ``use_retain=False`` trains on the relabelled
forget set alone, through ``ctx.forget`` as given (an ablation); ``ctx.retain`` is then never read
and ``lethe.unlearn`` accepts ``retain=None`` (it honours a ``use_retain`` setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, IterableDataset

from lethe._registry import Settings, register_method, setting
from lethe.engine import sgd
from lethe.errors import ConfigError, DataError
from lethe.methods._common import Flagged, random_other_labels


@dataclass
class RandomLabelSettings(Settings):
    """Published defaults: the SalUn repository's ResNet-18 CIFAR-10 RL run (10 epochs, SGD lr 0.01,
    momentum 0.9, weight decay 5e-4, constant rate). ``use_retain=False`` trains on the relabelled forget set alone."""

    epochs: int = setting(10, ge=1)
    lr: float = setting(0.01, gt=0, meaning="learning rate")
    momentum: float = setting(0.9, ge=0, lt=1)
    weight_decay: float = setting(5e-4, ge=0)
    use_retain: bool = True


def mixed_loader(forget: DataLoader, retain: DataLoader, engine) -> DataLoader:
    """One shuffled loader over the forget and retained samples together, each ``(input, label,
    is_forget)`` (``Flagged`` True / False), with the retained loader's batch size (distributed
    sampler under ``torchrun``)."""
    datasets = [forget.dataset, retain.dataset]
    if any(isinstance(d, IterableDataset) or not hasattr(d, "__len__") for d in datasets):
        raise ConfigError("random-label fine-tuning needs map-style forget and retain datasets")
    batch_size = retain.batch_size or forget.batch_size
    if not batch_size:
        raise ConfigError("cannot tell the batch size: give the retain loader a batch_size")
    data = ConcatDataset([Flagged(forget.dataset, True), Flagged(retain.dataset, False)])
    return engine.loader(data, batch_size, shuffle=True)


class RandomLabelRun(Protocol):
    """The settings ``fit_random_labels`` reads (``RandomLabelSettings``, ``SalUnSettings``)."""

    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    use_retain: bool


def fit_random_labels(
    model: nn.Module, ctx, s: RandomLabelRun, desc: str, weight_decay: float | None = None
) -> list[dict]:
    """Train ``model`` in place with cross-entropy on the forget samples (random other labels, drawn
    afresh in every batch) mixed with the retained samples (true labels) when ``s.use_retain``, for
    ``s.epochs`` of SGD (``s.lr``, ``s.momentum``, ``weight_decay`` or else ``s.weight_decay``).

    Logs ``forget_loss`` and ``retain_loss`` (per-epoch mean cross-entropy over each part's
    samples) besides the overall ``loss``. Shared by ``random_label`` and ``salun``.
    """
    use_retain = s.use_retain
    if use_retain and ctx.retain is None:
        raise DataError(f"{desc} with use_retain=True needs retained data: pass retain=<DataLoader>")
    loader = mixed_loader(ctx.forget, ctx.retain, ctx.engine) if use_retain else ctx.forget
    # Per-sample sums times this factor average to per-sample means over an epoch in Engine.fit.
    n_forget = len(ctx.forget.dataset)
    n_retain = len(ctx.retain.dataset) if use_retain else 0
    per_epoch = len(loader.sampler) if hasattr(loader.sampler, "__len__") else n_forget + n_retain
    scale = len(loader) / max(per_epoch, 1) * (n_forget + n_retain)
    generator = torch.Generator().manual_seed(ctx.engine.seed)

    def step(net: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        x, y = batch[0], batch[1]
        forget = batch[2] if use_retain else torch.ones_like(y, dtype=torch.bool)
        out = net(x).float()
        other = random_other_labels(y, ctx.num_classes or out.shape[1], generator)
        target = torch.where(forget, other, y)
        per_sample = nn.functional.cross_entropy(out, target, reduction="none")
        loss = per_sample.mean()
        ce = per_sample.detach()
        parts = {
            "forget_loss": ce[forget].sum() * scale / max(n_forget, 1),
            "retain_loss": ce[~forget].sum() * scale / max(n_retain, 1),
        }
        return loss, parts

    decay = s.weight_decay if weight_decay is None else weight_decay
    optimizer = sgd(model, s.lr, s.momentum, decay)
    return ctx.engine.fit(model, loader, step, optimizer, s.epochs, desc=desc)


PAPER = "Golatkar et al., CVPR 2020 (arXiv 1911.04933); as in Fan et al., ICLR 2024 (arXiv 2310.12508)"


@register_method("random_label", RandomLabelSettings, needs_retain=True, paper=PAPER)
def random_label(model: nn.Module, s: RandomLabelSettings, ctx) -> tuple[list[dict], dict]:
    """Fine-tune ``model`` in place on randomly relabelled forget data plus retained data."""
    log = fit_random_labels(model, ctx, s, "random_label")
    model.eval()
    return log, {}
