"""A seeded, reproducible poisoned dataset over any ``lethe_vision`` dataset.

The protocol (BackdoorBench conventions, Wu et al., arXiv 2206.12654):

1. ``lethe_vision.pipeline.make_splits`` holds a stratified share (``val_fraction``) of
   the training data out, seeded. That clean hold-out is the DEFENDER'S POOL: the only clean
   training images a defence may use (never the test set). The model never trains on it.
2. Of the remaining training split, ``round(rate * N)`` samples (at least one) are drawn, seeded,
   from all classes, as BackdoorBench does for all-to-one poisoning; each is replaced by its
   stamped image and relabelled with the target. Their indices and true labels are recorded, so
   a checkpoint can check that rebuilding the data gives the same poison.
3. The test set is untouched; ``stamped_test`` stamps every test image whose true label is not the
   target (the ASR set), keeping the true labels.

Everything random (which samples, BadNets' random positions) is drawn from generators seeded
from ``seed``, so the same dataset, attack and seed always give the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lethe.errors import CheckpointError, ConfigError, DataError
from lethe_backdoor.attacks import Attack
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.pipeline import make_splits

#: Offsets added to the seed for each random draw, so they are independent of one another.
POISON_SEED, TRAIN_STAMP_SEED, TEST_STAMP_SEED, VALIDATION_STAMP_SEED = 101, 202, 303, 606


@dataclass
class BackdoorSplits:
    """The poisoned training split, the defender's clean pool and the test set."""

    bundle: DatasetBundle
    attack: Attack
    clean_train: ImageData  # the training split before poisoning
    train: ImageData  # what the model is trained on: clean_train with the poisoned samples replaced
    poison_indices: torch.Tensor  # sorted indices into clean_train / train
    poison_labels: torch.Tensor  # the true labels of the poisoned samples
    pool: ImageData  # clean training images held out of training: the defender's source of data
    test: ImageData
    val_fraction: float
    seed: int

    @property
    def target(self) -> int:
        return self.attack.target

    @property
    def num_poisoned(self) -> int:
        return len(self.poison_indices)

    def record(self) -> dict:
        """What a checkpoint stores to make the poison reproducible and checkable."""
        return {
            **self.attack.to_dict(),
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "poisoned": self.num_poisoned,
            "train_samples": len(self.train),
            "pool_samples": len(self.pool),
            "poison_indices": self.poison_indices.tolist(),
        }


def poison_count(n: int, rate: float) -> int:
    """``round(rate * n)``, at least one sample (``rate`` in (0, 1])."""
    if not 0.0 < rate <= 1.0:
        raise ConfigError(f"poisoning rate must be in (0, 1], got {rate}")
    return min(n, max(1, round(rate * n)))


def choose_poison(n: int, rate: float, seed: int) -> torch.Tensor:
    """Sorted indices of the ``poison_count(n, rate)`` samples to poison, drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed + POISON_SEED)
    return torch.randperm(n, generator=gen)[: poison_count(n, rate)].sort().values


def poison_data(data: ImageData, attack: Attack, seed: int) -> tuple[ImageData, torch.Tensor, torch.Tensor]:
    """Poison ``data``: returns ``(poisoned data, sorted indices, their true labels)``.

    The poisoned samples keep their stamped image with the target label; the others are unchanged.
    """
    if len(data) == 0:
        raise DataError("no training data to poison")
    index = choose_poison(len(data), attack.rate, seed)
    images = data.images.clone()
    labels = data.labels.clone()
    gen = torch.Generator().manual_seed(seed + TRAIN_STAMP_SEED)
    images[index] = attack.stamp(data.images[index], gen)
    true_labels = labels[index].clone()
    labels[index] = attack.target
    return ImageData(images, labels), index, true_labels


def make_backdoor_splits(
    bundle: DatasetBundle, attack: Attack, val_fraction: float = 0.05, seed: int = 0
) -> BackdoorSplits:
    """Hold the defender's clean pool out of the training data, then poison the rest (seeded)."""
    attack.check((bundle.channels, *bundle.train.images.shape[-2:]), bundle.num_classes)
    splits = make_splits(bundle, (), val_fraction, seed)
    train, index, true_labels = poison_data(splits.train, attack, seed)
    return BackdoorSplits(
        bundle, attack, splits.train, train, index, true_labels, splits.validation, splits.test, val_fraction, seed
    )


def stamp_non_target(data: ImageData, attack: Attack, seed: int) -> ImageData:
    """Every image of ``data`` whose true label is not the attack's target, stamped (``seed`` draws
    random trigger positions), TRUE labels kept: the images ``asr`` and ``robust_acc`` are measured on."""
    kept = data.of_classes([attack.target], keep=False)
    gen = torch.Generator().manual_seed(seed)
    return ImageData(attack.stamp(kept.images, gen), kept.labels.clone())


def stamped_test(splits: BackdoorSplits) -> ImageData:
    """The ASR set: every test image whose true label is not the target, stamped, TRUE labels kept."""
    return stamp_non_target(splits.test, splits.attack, splits.seed + TEST_STAMP_SEED)


def check_recorded(splits: BackdoorSplits, recorded: dict, source: str) -> None:
    """A CheckpointError if ``splits`` is not the poison recorded in checkpoint ``source``."""
    stored = recorded.get("poison_indices")
    if stored is not None and stored != splits.poison_indices.tolist():
        raise CheckpointError(
            f"{source}: rebuilding the poisoned data gives other samples than the checkpoint records "
            f"({len(stored)} recorded, {splits.num_poisoned} now); has the dataset changed?"
        )
