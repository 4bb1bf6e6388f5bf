"""albumentations pipelines transforming image and mask together.

Training: optional resize to ``size``, random scale, pad (image 0, mask void) and random crop
to the crop size, horizontal flip, colour jitter, ImageNet normalisation -- the usual
semantic-segmentation recipe (e.g. torchvision ``references/segmentation``, DeepLab).
Evaluation: resize to ``size`` (labels by nearest neighbour), or at native resolution pad
bottom/right with void labels to the largest image size rounded up to the model's stride, so
padded pixels are ignored and every batch has one shape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from lethe.errors import ConfigError  # noqa: E402
from lethe_segmentation.datasets import VOID  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Resolution:
    """``size``: resize every image to (H, W) (None = native); ``crop``: training crop (H, W),
    default ``size`` (or the native size rounded down to ``divisor``); ``divisor``: the model's
    output stride (evaluation pads native images to a multiple of it)."""

    size: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    divisor: int = 32
    scale: tuple[float, float] = (0.75, 1.5)

    def to_dict(self) -> dict:
        return {
            "size": list(self.size) if self.size else None,
            "crop": list(self.crop) if self.crop else None,
            "divisor": self.divisor,
            "scale": list(self.scale),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Resolution:
        def pair(v):
            return tuple(int(x) for x in v) if v else None

        return cls(
            pair(d.get("size")),
            pair(d.get("crop")),
            int(d.get("divisor", 32)),
            tuple(float(x) for x in d.get("scale", (0.75, 1.5))),
        )

    def train_crop(self, native: tuple[int, int]) -> tuple[int, int]:
        """``crop``, else ``size``, else ``native`` (the smallest training image) rounded down to the stride."""
        if self.crop:
            return self.crop
        if self.size:
            return self.size
        h, w = (native[0] // self.divisor) * self.divisor, (native[1] // self.divisor) * self.divisor
        if h < self.divisor or w < self.divisor:
            raise ConfigError(f"images of {native[0]}x{native[1]} are smaller than the model stride {self.divisor}")
        return h, w


def parse_size(text: str | None, what: str = "--size") -> tuple[int, int] | None:
    """``"96x128"`` -> ``(96, 128)`` (height x width); ``None``/``""``/``native`` -> None."""
    if text is None or str(text).strip().lower() in ("", "none", "native"):
        return None
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{what} must be HEIGHTxWIDTH (e.g. 96x128), got {text!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"{what} must be positive, got {text!r}")
    return h, w


def train_transform(res: Resolution, native: tuple[int, int], seed: int | None = None) -> A.Compose:
    """Random scale + crop, flip and colour jitter for image and mask together."""
    crop_h, crop_w = res.train_crop(native)
    steps: list = []
    if res.size:
        steps.append(A.Resize(*res.size, area_for_downscale="image"))
    lo, hi = res.scale
    steps += [
        A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), p=1.0),
        A.PadIfNeeded(crop_h, crop_w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=VOID),
        A.RandomCrop(crop_h, crop_w),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
        A.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
    return A.Compose(steps, seed=seed)


def eval_transform(res: Resolution, largest: tuple[int, int]) -> A.Compose:
    """Resize to ``size``; or, at native resolution, pad (bottom/right, void labels) to the
    ``largest`` image size of the dataset rounded up to the stride, so batches share one shape."""
    if res.size:
        steps: list = [A.Resize(*res.size, area_for_downscale="image")]
    else:
        h, w = (-(-v // res.divisor) * res.divisor for v in largest)
        pad = A.PadIfNeeded(h, w, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=VOID)
        steps = [pad]
    return A.Compose([*steps, A.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def denormalize(x) -> object:
    """Undo the ImageNet normalisation of a ``[3, H, W]`` tensor -> ``H x W x 3`` floats in [0, 1]."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x.cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
