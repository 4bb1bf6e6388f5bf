"""Helpers shared by the lethe_segmentation tests: a generated images/ + labels/ dataset, CLI options.

Everything is generated in temporary folders: no download, no real dataset. Each class is a colour
(plus noise), so a tiny model learns it in a few steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("ground", "sky", "tree", "car")
COLOURS = ((120, 120, 120), (60, 90, 220), (40, 170, 40), (220, 40, 40))
SIZE = 32
VOID = 255
#: Options every CLI call in these tests gets: CPU, quiet.
RUNTIME = ("--device", "cpu", "--no-progress")
#: A tiny smp Unet: MobileNetV2 encoder cut to 3 stages, narrow decoder (small Gram matrices for SVD).
TINY_MODEL = ("--arch", "Unet", "--encoder", "mobilenet_v2", "--encoder-depth", "3", "--decoder-channels", "16,8,8")
#: A recipe that learns every class of the generated data (``car`` included) in about two seconds.
TINY_RECIPE = ("--epochs", "30", "--batch-size", "4", "--lr", "0.1", "--warmup-epochs", "0")


def scene(rng: np.random.Generator, with_car: bool, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One image and its label: sky on top, ground below, a tree, maybe a car, a void strip."""
    label = np.zeros((size, size), dtype=np.uint8)
    horizon = int(rng.integers(size // 4, size // 2))
    label[:horizon] = 1
    tx = int(rng.integers(0, size - 8))
    label[horizon - 6 : horizon + 6, tx : tx + 6] = 2
    if with_car:
        cx, cy = int(rng.integers(0, size - 14)), int(rng.integers(horizon + 2, size - 9))
        label[cy : cy + 8, cx : cx + 12] = 3
    label[:, -2:] = VOID
    colours = np.asarray(COLOURS + ((0, 0, 0),), dtype=np.float64)
    index = np.where(label == VOID, len(COLOURS), label)
    image = colours[index] + rng.normal(0, 12, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8), label


def make_seg_folder(root: Path, counts: dict[str, int] | None = None, seed: int = 0, car_every: int = 2) -> Path:
    """``root/{train,test}/{images,labels}`` plus ``classes.txt``; every ``car_every``-th image has a car."""
    counts = counts or {"train": 12, "test": 4}
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split, n in counts.items():
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, label = scene(rng, with_car=i % car_every == 0)
            Image.fromarray(image).save(root / split / "images" / f"{i:03d}.png")
            Image.fromarray(label).save(root / split / "labels" / f"{i:03d}.png")
    return root


def train_args(spec: str, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", spec, *TINY_MODEL, *TINY_RECIPE, "--out", str(out), *extra]
