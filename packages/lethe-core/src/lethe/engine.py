"""One training engine for the original model, the retrain oracle and gradient-based unlearning.

It picks the device, uses bf16 autocast on CUDA and channels_last everywhere (on this project's
2-core CPU it trains tf_efficientnet_lite0 at 96 px 1.5x faster, cifar-resnet18 and small-cnn
1.2x: benchmarks/results/speed/cpu-memory-format/results.md), wraps the model in
DistributedDataParallel when launched by ``torchrun``, optionally compiles the training forward
with ``torch.compile`` (off by default: on the short unlearning runs the compilation takes longer
than it saves), seeds every generator, shows tqdm progress, and stops with a clear error on a
non-finite loss.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import random
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from lethe.errors import ConfigError, NonFiniteLossError

StepFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, Mapping[str, torch.Tensor]]"]
#: ``epoch_end(epoch, row) -> stop``: called by ``Engine.fit`` after each epoch (see there)
EpochEndFn = Callable[[int, dict[str, float]], bool]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def environment(engine: Engine, **versions: str) -> dict[str, str]:
    """Device (GPU name, or CPU and thread count), library versions and date, recorded with every
    benchmark result; ``versions`` adds task libraries (e.g. ``albumentations="2.0.8"``)."""
    import platform
    import time

    from lethe import __version__

    device = str(engine.device)
    if engine.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(engine.device)})"
    else:
        device += f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {
        "device": device,
        "torch": torch.__version__,
        **versions,
        "python": platform.python_version(),
        "lethe": __version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def graph_leaves(output: torch.Tensor) -> set[int]:
    """``id``s of the leaf tensors (parameters) that ``output``'s autograd graph reaches."""
    found: set[int] = set()
    seen: set[Any] = set()
    stack = [output.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):  # AccumulateGrad: the node of a leaf
            found.add(id(fn.variable))
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return found


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _destroy_process_group() -> None:
    """Tear the process group down while the interpreter is still whole.

    Left to interpreter finalisation, gloo's worker threads may free work objects that hold
    Python references after the GIL is gone, and the process dies with SIGABRT after its work is
    done (pytorch/pytorch#179291; seen once in CI on one rank of the 2-process CPU test).
    """
    if dist.is_initialized():
        dist.destroy_process_group()


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (so wall-clock timings are honest)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Engine:
    """Device, precision, distribution and progress settings shared by every loop."""

    device: torch.device = field(default_factory=default_device)
    amp: bool = True
    #: 4-d float inputs and the model in channels_last memory format, on every device
    channels_last: bool = True
    progress: bool = True
    num_workers: int = 0
    seed: int = 0
    #: ``torch.compile`` the network ``fit`` trains (``compile_backend``: "inductor", or "eager" to
    #: check the wiring without a C++ compiler)
    compile: bool = False
    compile_backend: str = "inductor"
    #: keep small image datasets on the device and augment them there, batch by batch (task
    #: pipelines that support it read this; same batches as the DataLoader path for a seed)
    data_on_device: bool = False

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        if self.world_size > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend=backend)
            atexit.register(_destroy_process_group)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def uses_amp(self) -> bool:
        return self.amp and self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA, a no-op elsewhere."""
        if self.uses_amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (channels_last unless ``channels_last`` is off). Outside
        inference mode even when called inside it (as ``collect_outputs`` does): parameters moved
        there would become inference tensors that can never train again."""
        with torch.inference_mode(False):
            model = model.to(self.device)
            if self.channels_last:
                model = model.to(memory_format=torch.channels_last)
        return model

    def to_device(self, batch: Any) -> Any:
        """Move a batch (tensor, tuple, list or dict of tensors) to the device."""
        if isinstance(batch, torch.Tensor):
            x = batch.to(self.device, non_blocking=True)
            if self.channels_last and x.dim() == 4 and x.is_floating_point():
                x = x.contiguous(memory_format=torch.channels_last)
            return x
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        return batch

    def loader(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool = False,
        seed_offset: int = 0,
        shard: bool | None = None,
    ) -> DataLoader:
        """A DataLoader (pinned memory on CUDA), seeded.

        Under ``torchrun``, a ``shard``-ed loader (default: the shuffled, training ones) gives each
        process its share through a DistributedSampler, and ``batch_size`` is the global batch
        (each process takes ``ceil(batch_size / world_size)``), so a run on N processes takes the
        same optimiser steps as on one. Unsharded loaders (evaluation) give every process all data.
        """
        generator = torch.Generator().manual_seed(self.seed + seed_offset)
        sampler = None
        if self.distributed and (shuffle if shard is None else shard):
            sampler = DistributedSampler(dataset, shuffle=shuffle, seed=self.seed + seed_offset)
            shuffle = False
            batch_size = -(-batch_size // self.world_size)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.num_workers > 0,
            generator=generator,
        )

    def progress_bar(self, iterable: Any, desc: str, total: int | None = None) -> Iterator:
        """A tqdm bar over ``iterable`` (on the main process only, when progress is on). When stderr
        is not a terminal (a log file, a pipe, CI) no bar is drawn: its carriage-return redraws would
        fill the log. Notebook (widget) bars are kept."""
        show = self.progress and self.is_main and (_stderr_is_terminal() or _NOTEBOOK_BARS)
        return tqdm(iterable, desc=desc, total=total, leave=False, disable=not show)

    def fit(
        self,
        model: nn.Module,
        loader: DataLoader,
        step: StepFn,
        optimizer: torch.optim.Optimizer,
        epochs: int,
        *,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        desc: str = "train",
        train_mode: Callable[[nn.Module], None] | None = None,
        epoch_end: EpochEndFn | None = None,
    ) -> list[dict[str, float]]:
        """Run ``epochs`` epochs of ``step`` and return one log row per epoch.

        ``step(model, batch)`` returns ``(loss, parts)``; ``parts`` are scalar diagnostics
        averaged over the epoch (and across processes). ``scheduler`` is stepped per batch.
        ``train_mode`` sets the model's mode before each epoch (default ``model.train()``).
        ``epoch_end(epoch, row)`` runs after each epoch (``epoch`` counts from 1) with its log row,
        which it may extend; when it returns True on every process, training ends after that epoch.
        """
        model = self.prepare(model)
        net: nn.Module = model
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            unused = self.unused_parameters(model, loader, step)
            net = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=bool(unused))
        if self.compile:
            net = torch.compile(net, backend=self.compile_backend)
        log = []
        for epoch in range(epochs):
            if isinstance(getattr(loader, "sampler", None), DistributedSampler):
                loader.sampler.set_epoch(epoch)
            (train_mode or nn.Module.train)(model)
            sums: dict[str, torch.Tensor] = {}
            batches = 0
            bar = self.progress_bar(loader, f"{desc} {epoch + 1}/{epochs}")
            pending = None  # on CUDA (loss, batch) is checked one step late: the GPU queue never drains
            for i, batch in enumerate(bar):
                batch = self.to_device(batch)
                with self.autocast():
                    loss, parts = step(net, batch)
                if self.device.type != "cuda":
                    self._check_finite(loss, i, desc, epoch)
                elif pending is not None:
                    self._check_finite(*pending, desc, epoch)
                pending = (loss.detach(), i) if self.device.type == "cuda" else None
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                for key, value in {"loss": loss, **parts}.items():
                    sums[key] = sums.get(key, 0.0) + value.detach().float()
                batches += 1
            if pending is not None:
                self._check_finite(*pending, desc, epoch)
            row = self._reduce_means(sums, batches)
            row["epoch"] = epoch + 1
            row["lr"] = optimizer.param_groups[0]["lr"]
            log.append(row)
            if epoch_end is not None and self.all_agree(epoch_end(epoch + 1, row)):
                break
        return log

    @staticmethod
    def _check_finite(loss: torch.Tensor, batch: int, desc: str, epoch: int) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) in {desc} at epoch {epoch + 1}, "
                f"batch {batch + 1}; lower the learning rate or check the data"
            )

    def unused_parameters(self, model: nn.Module, loader: DataLoader, step: StepFn) -> list[str]:
        """Trainable parameters that ``step`` on the first batch does not reach (e.g. the stages an
        smp encoder keeps but skips at ``encoder_depth < 5``). DDP must be told about them, and
        looking for them on every step costs time, so it is asked only when there are some.
        The probe runs in eval mode (no BatchNorm statistics change) and takes no optimiser step."""
        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad(), self.autocast():
                loss, _ = step(model, self.to_device(next(iter(loader))))
        finally:
            model.train(was_training)
        reached = graph_leaves(loss)
        return [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in reached]

    def _reduce_means(self, sums: dict[str, torch.Tensor], batches: int) -> dict[str, float]:
        if not sums:
            return {}
        keys = sorted(sums)
        stacked = torch.stack([torch.as_tensor(sums[k], device=self.device) for k in keys])
        count = torch.tensor(float(batches), device=self.device)
        if self.distributed:
            dist.all_reduce(stacked)
            dist.all_reduce(count)
        means = (stacked / count.clamp_min(1)).tolist()
        return dict(zip(keys, means, strict=True))

    def all_agree(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every process (``flag`` itself in a single process)."""
        if not self.distributed:
            return bool(flag)
        votes = torch.tensor(float(bool(flag)), device=self.device)
        dist.all_reduce(votes)
        return int(votes.item()) == self.world_size

    def all_reduce_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` across processes in place (no-op in a single process)."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor


#: tqdm.auto picked its notebook (widget) bars, which draw no carriage returns on stderr
_NOTEBOOK_BARS = any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)


def _stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` (as it is now) is an open terminal."""
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def sgd(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.SGD:
    """SGD over trainable parameters."""
    if not lr > 0:
        raise ConfigError(f"learning rate must be positive, got {lr}")
    if weight_decay < 0:
        raise ConfigError(f"weight decay must not be negative, got {weight_decay}")
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0):
    """Linear warm-up then cosine decay to zero, stepped once per batch."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def cross_entropy_step(model: nn.Module, batch: Any, label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Standard supervised step on ``(inputs, labels)``; ignore label -100 is skipped."""
    x, y = batch[0], batch[1]
    logits = model(x)
    return nn.functional.cross_entropy(logits.float(), y, ignore_index=-100, label_smoothing=label_smoothing), {}
