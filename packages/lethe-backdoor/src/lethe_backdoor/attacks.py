"""Backdoor attacks: triggers that stamp uint8 images ``[N, C, H, W]`` before normalisation.

Triggers act on the raw ``ImageData`` tensors of ``lethe_vision``, so a poisoned
dataset goes through the same augmentation and normalisation (``TensorImageDataset``) as a
clean one. Both attacks are all-to-one: every stamped training sample is relabelled with the
``target`` class.

- ``badnets``: Gu, Dolan-Gavitt, Garg, "BadNets: Identifying Vulnerabilities in the Machine
  Learning Model Supply Chain" (2017, arXiv 1708.06733): a small patch in a fixed corner or at a
  random position. Default: a 3x3 black/white checkerboard in the bottom-right corner
  (``pattern="white"`` gives BackdoorBench's 3x3 white square).
- ``blended``: Chen, Liu, Li, Lu, Song, "Targeted Backdoor Attacks on Deep Learning Systems Using
  Data Poisoning" (2017, arXiv 1712.05526): ``x' = (1 - alpha) x + alpha * pattern`` over the
  whole image, ``alpha = 0.2`` as in the paper's and BackdoorBench's training poison. The papers'
  Hello-Kitty image is not available offline; the pattern here is uniform random noise drawn
  from ``pattern_seed`` (Chen et al. also evaluate a random-noise pattern).

Defaults follow BackdoorBench (Wu et al., NeurIPS 2022 Datasets and Benchmarks, arXiv
2206.12654): target 0, poisoning rate 0.1.

Attacks are registered by name (``register_attack`` into ``ATTACKS``, the ``lethe.Registry``
pattern) with one settings dataclass each, an ``AttackSettings`` (target and rate) with the
trigger's own fields; ``build_attack("badnets", {"size": 4})`` builds one.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from lethe import Registry, build_settings
from lethe.errors import ConfigError

ATTACKS: Registry[type[Attack]] = Registry("attack")

POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "random")
PATCH_PATTERNS = ("checkerboard", "white", "random")


@dataclass
class AttackSettings:
    """What every attack sets, with BackdoorBench's defaults: the ``target`` label of all-to-one
    poisoning (0) and the poisoning ``rate`` (0.1). Each attack's settings add its trigger's fields."""

    target: int = 0
    rate: float = 0.1


class Attack(ABC):
    """An all-to-one poisoning attack: a trigger, a target label and a poisoning rate. Subclasses are
    registered with ``register_attack``, which sets ``name``, ``settings_cls`` and ``paper``."""

    name: ClassVar[str]
    settings_cls: ClassVar[type[AttackSettings]]
    paper: ClassVar[str] = ""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.validate()

    @property
    def target(self) -> int:
        return int(self.settings.target)

    @property
    def rate(self) -> float:
        return float(self.settings.rate)

    def validate(self) -> None:
        """Check the settings on their own (the image size and class count come later)."""
        rate = self.settings.rate
        if not 0.0 < rate <= 1.0:
            raise ConfigError(f"poisoning rate must be in (0, 1], got {rate}")

    def check(self, image_shape: tuple[int, int, int], num_classes: int) -> None:
        """Check the attack against a dataset: the target in range, the trigger fits the image."""
        if not 0 <= self.target < num_classes:
            raise ConfigError(
                f"target label {self.target} is out of range: the dataset has classes 0..{num_classes - 1}"
            )
        self._check_shape(tuple(int(s) for s in image_shape))

    def _check_shape(self, image_shape: tuple[int, int, int]) -> None:  # noqa: B027  (optional hook)
        """Subclasses refuse image shapes their trigger cannot be stamped on."""

    @abstractmethod
    def stamp(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return a stamped copy of uint8 ``images`` ``[N, C, H, W]`` (the input is not modified).

        ``generator`` draws whatever is random per image (BadNets' random position).
        """

    def describe(self) -> str:
        """One line for report headers."""
        return f"{self.name} ({', '.join(f'{k}={v}' for k, v in self.to_dict()['settings'].items())})"

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "settings": {...}}``: stored in checkpoints, rebuilt by ``attack_from_dict``."""
        return {"name": self.name, "settings": dataclasses.asdict(self.settings)}

    @staticmethod
    def _as_uint8(images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ConfigError(f"triggers stamp uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        return images


def register_attack(name: str, settings: type[AttackSettings], *, paper: str = "") -> Callable:
    """Class decorator registering an ``Attack`` subclass in ``ATTACKS`` as ``name``, with its
    settings dataclass and the paper it follows."""

    def decorator(cls: type[Attack]) -> type[Attack]:
        cls.name, cls.settings_cls, cls.paper = name, settings, paper
        ATTACKS.add(name, cls)
        return cls

    return decorator


@dataclass
class BadNetsSettings(AttackSettings):
    """BadNets (Gu et al., 2017) with BackdoorBench's defaults: all-to-one target 0, rate 0.1, a
    3x3 patch at the bottom-right corner. ``pattern``: ``checkerboard`` (black/white, default),
    ``white`` (BackdoorBench's square) or ``random`` (a black/white patch drawn from
    ``pattern_seed``). ``position``: a corner or ``random`` (a new position per stamped image).
    ``margin``: pixels between a corner patch and the image border."""

    size: int = 3
    pattern: str = "checkerboard"
    position: str = "bottom-right"
    margin: int = 0
    pattern_seed: int = 0


@register_attack("badnets", BadNetsSettings, paper="Gu et al., 2017 (arXiv 1708.06733)")
class BadNets(Attack):
    """A small patch stamped over the image (Gu et al., 2017, arXiv 1708.06733)."""

    def validate(self) -> None:
        super().validate()
        s = self.settings
        if s.size < 1:
            raise ConfigError(f"trigger size must be at least 1 pixel, got {s.size}")
        if s.margin < 0:
            raise ConfigError(f"trigger margin must not be negative, got {s.margin}")
        if s.pattern not in PATCH_PATTERNS:
            raise ConfigError(f"unknown trigger pattern {s.pattern!r}; choose from {', '.join(PATCH_PATTERNS)}")
        if s.position not in POSITIONS:
            raise ConfigError(f"unknown trigger position {s.position!r}; choose from {', '.join(POSITIONS)}")

    def _check_shape(self, image_shape: tuple[int, int, int]) -> None:
        _, h, w = image_shape
        s = self.settings
        need = s.size + (0 if s.position == "random" else s.margin)
        if need > h or need > w:
            what = f"{s.size}x{s.size}" + (f" (margin {s.margin})" if s.margin and s.position != "random" else "")
            raise ConfigError(f"trigger {what} is larger than the {h}x{w} image")

    def patch(self, channels: int) -> torch.Tensor:
        """The uint8 patch ``[C, size, size]``."""
        k = self.settings.size
        if self.settings.pattern == "white":
            bits = torch.ones(k, k, dtype=torch.bool)
        elif self.settings.pattern == "checkerboard":
            idx = torch.arange(k)
            bits = (idx[:, None] + idx[None, :]) % 2 == 0
        else:
            gen = torch.Generator().manual_seed(self.settings.pattern_seed)
            bits = torch.rand(k, k, generator=gen) < 0.5
        return (bits.to(torch.uint8) * 255).expand(channels, k, k).clone()

    def corner(self, height: int, width: int) -> tuple[int, int]:
        """Top-left pixel of a corner patch."""
        k, m = self.settings.size, self.settings.margin
        bottom, right = self.settings.position.split("-")
        row = height - k - m if bottom == "bottom" else m
        col = width - k - m if right == "right" else m
        return row, col

    def stamp(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        images = self._as_uint8(images)
        n, c, h, w = images.shape
        self._check_shape((c, h, w))
        k = self.settings.size
        out = images.clone()
        patch = self.patch(c)
        if self.settings.position == "random":
            rows = torch.randint(0, h - k + 1, (n,), generator=generator)
            cols = torch.randint(0, w - k + 1, (n,), generator=generator)
            for i, (r, col) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
                out[i, :, r : r + k, col : col + k] = patch
        else:
            r, col = self.corner(h, w)
            out[:, :, r : r + k, col : col + k] = patch
        return out


@dataclass
class BlendedSettings(AttackSettings):
    """Blended (Chen et al., 2017) with BackdoorBench's defaults: target 0, rate 0.1, blend ratio
    ``alpha = 0.2``. The pattern is uniform noise in [0, 255] drawn from ``pattern_seed`` (the
    papers' Hello-Kitty image is not available offline)."""

    alpha: float = 0.2
    pattern_seed: int = 0


@register_attack("blended", BlendedSettings, paper="Chen et al., 2017 (arXiv 1712.05526)")
class Blended(Attack):
    """A full-image pattern mixed in with blend ratio ``alpha`` (Chen et al., 2017, arXiv 1712.05526)."""

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.settings.alpha <= 1.0:
            raise ConfigError(f"blend ratio alpha must be in (0, 1], got {self.settings.alpha}")

    def pattern(self, channels: int, height: int, width: int) -> torch.Tensor:
        """The uint8 pattern ``[C, H, W]`` (the same for every image of that shape)."""
        gen = torch.Generator().manual_seed(self.settings.pattern_seed)
        return torch.randint(0, 256, (channels, height, width), generator=gen, dtype=torch.uint8)

    def stamp(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        images = self._as_uint8(images)
        alpha = self.settings.alpha
        pattern = self.pattern(*images.shape[1:]).float()
        mixed = (1.0 - alpha) * images.float() + alpha * pattern
        return mixed.round().clamp(0, 255).to(torch.uint8)


def list_attacks() -> list[str]:
    """Names of the registered attacks."""
    return ATTACKS.names()


def attack_settings(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The settings dataclass of attack ``name`` with its defaults and ``overrides`` (strings from
    a command line are converted to the fields' types)."""
    cls, _ = ATTACKS.get(name)
    return build_settings(cls.settings_cls, overrides or {}, context=f"attack {name!r}")


def build_attack(name: str, overrides: Mapping[str, Any] | None = None) -> Attack:
    """Build the registered attack ``name`` with its defaults and ``overrides``."""
    cls, _ = ATTACKS.get(name)
    return cls(attack_settings(name, overrides))


def attack_from_dict(spec: Mapping[str, Any]) -> Attack:
    """Rebuild an attack from ``Attack.to_dict()`` (as stored in a checkpoint)."""
    return build_attack(spec["name"], spec.get("settings", {}))
