"""Generated image-folder datasets for the tests of the image tasks: ``root/{train,test}/<class>/*.png``,
each class a colour plus noise (no download, no real dataset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: Base colour of each class in the generated dataset (a class is its colour plus noise).
COLOURS = ((220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 220, 40))
CLASSES = ("c0", "c1", "c2", "c3")
IMAGE_SIZE = 16
TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 8


def write_images(folder: Path, colour, count: int, rng: np.random.Generator, size: int = IMAGE_SIZE):
    """``count`` RGB PNGs of ``colour`` plus Gaussian noise in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.asarray(colour, dtype=np.float64)[None, None, :] + rng.normal(0, 25, (size, size, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


def make_image_folder(root: Path, counts: dict[str, tuple[int, int]], seed: int = 0) -> Path:
    """``root/{train,test}/<class>/*.png`` with ``counts[class] = (train, test)`` images."""
    rng = np.random.default_rng(seed)
    for index, (name, (n_train, n_test)) in enumerate(counts.items()):
        colour = COLOURS[index % len(COLOURS)]
        if n_train:
            write_images(root / "train" / name, colour, n_train, rng)
        if n_test:
            write_images(root / "test" / name, colour, n_test, rng)
    return root
