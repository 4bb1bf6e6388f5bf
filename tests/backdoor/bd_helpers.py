"""Helpers shared by the lethe_backdoor tests: tiny generated datasets, CLI options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lethe_vision.data import DatasetBundle, ImageData

#: Options every CLI call in these tests gets: CPU, quiet.
RUNTIME = ("--device", "cpu", "--no-progress")
COLOURS = ((220, 40, 40), (40, 200, 40), (40, 40, 220), (200, 200, 200))


def colour_images(per_class: int, generator: torch.Generator, size: int = 16, classes: int = 4) -> ImageData:
    """``per_class`` images of each class: its colour plus Gaussian noise (uint8 [N, 3, size, size])."""
    labels = torch.arange(classes).repeat_interleave(per_class)
    base = torch.tensor(COLOURS[:classes], dtype=torch.float)[labels][:, :, None, None]
    pixels = base + 25 * torch.randn(len(labels), 3, size, size, generator=generator)
    return ImageData(pixels.round().clamp(0, 255).to(torch.uint8), labels)


def colour_bundle(
    train_per_class: int = 40,
    test_per_class: int = 10,
    size: int = 16,
    seed: int = 0,
    crop_padding: int = 0,
    flip: bool = False,
) -> DatasetBundle:
    """An in-memory 4-class colour dataset."""
    gen = torch.Generator().manual_seed(seed)
    train, test = colour_images(train_per_class, gen, size), colour_images(test_per_class, gen, size)
    return DatasetBundle(
        "colours",
        ["c0", "c1", "c2", "c3"],
        train,
        test,
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        crop_padding=crop_padding,
        flip=flip,
    )


def make_image_folder(root: Path, train_per_class: int, test_per_class: int, size: int = 16, seed: int = 0) -> Path:
    """``root/{train,test}/c<k>/*.png`` of the colour classes."""
    rng = np.random.default_rng(seed)
    for k, colour in enumerate(COLOURS):
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            folder = root / split / f"c{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.asarray(colour, dtype=np.float64)[None, None, :] + rng.normal(0, 25, (size, size, 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root
