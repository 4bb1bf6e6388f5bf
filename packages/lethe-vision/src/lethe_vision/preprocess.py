"""What a classifier expects of its input: image size, channels and normalisation.

Given on the command line (``--image-size``, ``--mean``, ``--std``) they replace what the dataset
would give (its stored size, its bundled or computed statistics); a checkpoint records the values
it was trained (or imported) with, and ``unlearn``/``evaluate`` reuse them unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from lethe.errors import CheckpointError, ConfigError
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.datasets import load_dataset

#: ITU-R BT.601 luma weights: RGB to grey
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Preprocess:
    """Input size (square), channels and per-channel mean/std; None: what the dataset gives."""

    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.image_size is not None and self.image_size < 1:
            raise ConfigError(f"image size must be at least 1, got {self.image_size}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")
        if self.std is not None and not all(v > 0 for v in self.std):
            raise ConfigError(f"std values must be positive, got {list(self.std)}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and (not values or (self.channels and len(values) not in (1, self.channels))):
                raise ConfigError(f"{name} needs 1 or {self.channels or 'one per channel'} values, got {list(values)}")

    def over(self, base: Preprocess) -> Preprocess:
        """These values where given, ``base``'s elsewhere."""
        return Preprocess(
            **{
                f.name: getattr(self, f.name) if getattr(self, f.name) is not None else getattr(base, f.name)
                for f in fields(self)
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """The given values (JSON-ready)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, where: str = "checkpoint") -> Preprocess:
        """The values a checkpoint recorded (none: an empty ``Preprocess``)."""
        try:
            values = dict(values or {})
            for key in ("mean", "std"):
                if values.get(key) is not None:
                    values[key] = tuple(float(v) for v in values[key])
            return cls(**values)
        except (TypeError, ValueError, ConfigError) as err:
            raise CheckpointError(f"{where} records invalid preprocessing: {err}") from None

    @classmethod
    def of(cls, bundle: DatasetBundle) -> Preprocess:
        """What ``bundle`` gives the model (recorded in checkpoints)."""
        return cls(bundle.image_size, tuple(bundle.mean), tuple(bundle.std), bundle.channels)


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated numbers, got {text!r}") from None


def add_preprocess_args(p: argparse.ArgumentParser, *, default_help: str = "the dataset's") -> None:
    """``--image-size``, ``--mean`` and ``--std``."""
    g = p.add_argument_group("input preprocessing")
    g.add_argument(
        "--image-size", type=int, default=None, help=f"resize images to SIZE x SIZE on load (default: {default_help})"
    )
    g.add_argument("--mean", default=None, help=f"per-channel mean, e.g. 0.5,0.5,0.5 (default: {default_help})")
    g.add_argument("--std", default=None, help=f"per-channel std, e.g. 0.5,0.5,0.5 (default: {default_help})")


def preprocess_from_args(args: argparse.Namespace) -> Preprocess:
    """The ``Preprocess`` of ``--image-size``, ``--mean``, ``--std`` (and ``--channels`` if present)."""
    return Preprocess(
        args.image_size,
        _floats(args.mean, "--mean") if args.mean is not None else None,
        _floats(args.std, "--std") if args.std is not None else None,
        getattr(args, "channels", None),
    )


def to_channels(data: ImageData, channels: int) -> ImageData:
    """Grey images repeated to RGB, or RGB images to grey (luma); unchanged if they match."""
    have = data.images.shape[1]
    if have == channels:
        return data
    if channels == 3 and have == 1:
        return ImageData(data.images.repeat(1, 3, 1, 1), data.labels)
    weights = torch.tensor(LUMA).view(1, 3, 1, 1)
    grey = (data.images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    return ImageData(grey, data.labels)


def _per_channel(
    given: Sequence[float] | None, dataset: Sequence[float], channels: int, what: str
) -> tuple[float, ...]:
    """Given values (one, or one per channel), else the dataset's adapted to ``channels``
    (repeated from grey, averaged to grey)."""
    values = tuple(float(v) for v in (given if given is not None else dataset))
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    if given is None and channels == 1:
        return (round(sum(values) / len(values), 4),)
    raise ConfigError(f"{what} has {len(values)} values but the images have {channels} channel(s)")


def apply_preprocess(bundle: DatasetBundle, pre: Preprocess) -> DatasetBundle:
    """``bundle`` with ``pre``'s channels and mean/std (size is applied when loading)."""
    channels = pre.channels or bundle.channels
    train, test = to_channels(bundle.train, channels), to_channels(bundle.test, channels)
    mean = _per_channel(pre.mean, bundle.mean, channels, "--mean")
    std = _per_channel(pre.std, bundle.std, channels, "--std")
    return replace(bundle, train=train, test=test, mean=mean, std=std)


def load_preprocessed(spec: str, root: str | os.PathLike | None, pre: Preprocess) -> DatasetBundle:
    """``load_dataset(spec)`` at ``pre.image_size``, with ``pre``'s channels and normalisation."""
    return apply_preprocess(load_dataset(spec, root, image_size=pre.image_size), pre)
