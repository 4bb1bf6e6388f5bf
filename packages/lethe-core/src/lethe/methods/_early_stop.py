"""Stopping a forget-set training run once the forgotten classes are forgotten (DELETE's
``stop_when_forgotten``).

The check measures the forgotten classes' accuracy (percent) on a few forget samples with the model
in evaluation mode: top-1 accuracy for ``[N, C]`` logits, and for dense ``[N, C, H, W]`` outputs the
share of forgotten-class pixels still predicted as a forgotten class (``ignore_index`` pixels left
out). Its samples are a seeded held-out slice of the forget set, never trained on
(``split_holdout``), or, where that slice would be too small or the loader cannot be split, the most
recent training batches (``RecentBatches``). Held-out samples come through the forget loader's own
dataset, so with its transform (the training augmentation in the task pipelines).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, SequentialSampler, Subset

#: fewest held-out samples; a smaller slice checks on the training batches instead
HOLDOUT_MIN = 20
#: most samples a check evaluates (held out, or kept from the latest training batches)
HOLDOUT_MAX = 256


def holdout_size(n: int, fraction: float) -> int:
    """How many of ``n`` forget samples to hold out: ``fraction`` of them, at most ``HOLDOUT_MAX``;
    0 when that is under ``HOLDOUT_MIN`` or would leave fewer samples to train on than to check."""
    size = min(HOLDOUT_MAX, round(fraction * n))
    return size if size >= HOLDOUT_MIN and n - size >= size else 0


def _splittable(loader: Any) -> bool:
    """Whether ``loader`` is a DataLoader over a sized map-style dataset with a plain sampler."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        return False
    if isinstance(loader.dataset, IterableDataset) or not hasattr(loader.dataset, "__len__"):
        return False
    return type(loader.sampler) in (SequentialSampler, RandomSampler, DistributedSampler)


def subset_loader(loader: DataLoader, indices: list[int], *, train: bool, seed: int) -> DataLoader:
    """``loader`` over ``indices`` of its dataset, with its batch size, collation and workers; for
    training with its sampling (and generator), else in order, unsharded, from a fresh generator."""
    subset = Subset(loader.dataset, indices)
    sampler, shuffle = None, False
    if train and isinstance(loader.sampler, DistributedSampler):
        s = loader.sampler
        sampler = DistributedSampler(
            subset, s.num_replicas, s.rank, shuffle=s.shuffle, seed=s.seed, drop_last=s.drop_last
        )
    elif train:
        shuffle = isinstance(loader.sampler, RandomSampler)
    generator = loader.generator if train else torch.Generator().manual_seed(seed)
    return DataLoader(
        subset,
        batch_size=loader.batch_size,
        shuffle=shuffle,
        sampler=sampler,
        drop_last=loader.drop_last and train,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        worker_init_fn=loader.worker_init_fn,
        generator=generator,
        persistent_workers=loader.persistent_workers,
    )


def split_holdout(loader: Any, fraction: float, seed: int) -> tuple[Any, DataLoader | None]:
    """``(training loader, held-out loader)``: a seeded random ``holdout_size`` slice of the forget
    set, taken out of training. ``(loader, None)`` when the loader cannot be split (not a DataLoader
    over a sized dataset with a standard sampler) or the slice would be too small."""
    if not _splittable(loader):
        return loader, None
    n = len(loader.dataset)
    size = holdout_size(n, fraction)
    if size == 0:
        return loader, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held, kept = sorted(order[:size].tolist()), sorted(order[size:].tolist())
    return subset_loader(loader, kept, train=True, seed=seed), subset_loader(loader, held, train=False, seed=seed)


class RecentBatches:
    """The latest training ``(inputs, labels)`` batches, at most ``limit`` samples (the check's
    samples when no slice is held out). Iterating yields them oldest first."""

    def __init__(self, limit: int = HOLDOUT_MAX) -> None:
        self.limit = limit
        self.batches: deque[tuple[torch.Tensor, torch.Tensor]] = deque()
        self.samples = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.batches.append((x.detach(), y.detach()))
        self.samples += len(y)
        while self.samples - len(self.batches[0][1]) >= self.limit:
            self.samples -= len(self.batches.popleft()[1])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(list(self.batches))


def forgotten_hits(
    out: torch.Tensor, y: torch.Tensor, forgotten: torch.Tensor, ignore_index: int | None = None
) -> torch.Tensor:
    """``[hits, count]``: samples of a forgotten class predicted as their class (top-1, ``[N, C]``
    logits), or for dense outputs pixels of a forgotten class predicted as any forgotten class."""
    pred = out.argmax(1)
    counted = torch.isin(y, forgotten)
    if ignore_index is not None:
        counted &= y != ignore_index
    hits = pred == y if out.dim() == 2 else torch.isin(pred, forgotten)
    return torch.stack([(hits & counted).sum(), counted.sum()]).double()


@torch.no_grad()
def forgotten_accuracy(
    model: nn.Module, batches: Iterable, engine, forgotten: torch.Tensor, ignore_index: int | None = None
) -> float | None:
    """The forgotten classes' accuracy (percent, ``forgotten_hits``) over ``batches``, summed
    across processes; ``None`` when they hold no forgotten-class sample. Evaluates in eval mode and
    restores every module's mode afterwards, so BatchNorm statistics do not change."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=engine.device)
    try:
        for batch in batches:
            x, y = engine.to_device(batch[0]), engine.to_device(batch[1])
            with engine.autocast():
                out = model(x)
            total += forgotten_hits(out.float(), y, forgotten.to(y.device), ignore_index).to(total.device)
    finally:
        for module, mode in modes:
            module.training = mode
    hits, count = engine.all_reduce_(total).tolist()
    return 100.0 * hits / count if count else None


@dataclass
class StopWhenForgotten:
    """``Engine.fit``'s ``epoch_end``: runs ``check`` (the forgotten classes' accuracy, percent) after
    every epoch, logs it as ``forget_check``, and asks to stop once it has stayed at or under
    ``target`` for ``patience`` consecutive checks and ``min_epochs`` epochs have run; with
    ``min_improvement``, also only once the epoch's mean loss (the row's ``loss``) fell by less than
    that fraction of the previous epoch's (the distillation has levelled off)."""

    check: Callable[[], float | None]
    target: float
    patience: int
    min_epochs: int
    min_improvement: float | None = None
    streak: int = 0
    history: list[float | None] = field(default_factory=list)
    last_loss: float | None = None

    def __call__(self, epoch: int, row: dict[str, float]) -> bool:
        value = self.check()
        self.history.append(value)
        if value is not None:
            row["forget_check"] = value
        self.streak = self.streak + 1 if value is not None and value <= self.target else 0
        loss, previous, self.last_loss = row.get("loss"), self.last_loss, row.get("loss")
        levelled = self.min_improvement is None or (
            loss is not None and previous is not None and previous - loss < self.min_improvement * previous
        )
        return self.streak >= self.patience and epoch >= self.min_epochs and levelled
