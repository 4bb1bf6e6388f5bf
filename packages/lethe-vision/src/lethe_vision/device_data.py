"""A device-resident data path for small-image datasets (CIFAR, Fashion-MNIST).

``DeviceLoader`` keeps a split's uint8 images and labels on the engine's device and cuts each
batch there: random crop and flip as a few tensor operations per batch, then normalisation, with no
DataLoader, workers or pinned host copies. For a fixed seed it yields exactly the batches that
``Engine.loader`` over a ``TensorImageDataset`` yields (same order, crops and flips: the indices
and offsets are drawn on the CPU from the same generators), so a run may switch between the two
paths without changing what it trains on. ``Engine(data_on_device=True)`` selects it in the
classification pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lethe.errors import ConfigError
from lethe_vision.data import DatasetBundle, ImageData, TensorImageDataset, augment_batch, normalise


class DeviceLoader:
    """Batches ``(images, labels)`` of ``data`` on ``device``; iterable once per epoch.

    ``dataset`` is the equivalent ``TensorImageDataset`` (on the CPU), for methods that build their
    own loaders from a loader's dataset; ``batch_size`` is as a DataLoader's.
    """

    def __init__(
        self,
        data: ImageData,
        bundle: DatasetBundle,
        batch_size: int,
        *,
        shuffle: bool,
        augment: bool,
        device: torch.device | str,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.dataset = TensorImageDataset(data, bundle, augment=augment)
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.mean = self.dataset.mean.to(self.device)
        self.std = self.dataset.std.to(self.device)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, size = len(self.labels), self.batch_size
        # A DataLoader draws one base seed for its workers from its generator at every epoch, then
        # the RandomSampler's permutation, and one more (unused) permutation when the sampler runs
        # out: before a last, partial batch, else when the next batch is asked for. All three are
        # drawn here at the same points, so the orders stay the same epoch after epoch.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        partial_last = not self.drop_last and n % size != 0
        for k in range(len(self)):
            if self.shuffle and partial_last and k == len(self) - 1:
                torch.randperm(n, generator=self.generator)
            index = order[k * size : (k + 1) * size]
            images = augment_batch(self.images[index], self.dataset.padding, self.dataset.flip)
            yield normalise(images, self.mean, self.std), self.labels[index]
        if self.shuffle and not partial_last:
            torch.randperm(n, generator=self.generator)
