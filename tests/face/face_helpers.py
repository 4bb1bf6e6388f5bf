"""Helpers for the lethe_face tests: generated identity folders (no real faces, no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = ((220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 220, 40), (200, 40, 200), (40, 200, 200))
SIZE = 32
#: Options every CLI call gets: CPU, quiet.
RUNTIME = ("--device", "cpu", "--no-progress")


def face_image(identity: int, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """An identity's colour with stripes of identity-specific period and direction, plus noise."""
    grid = np.arange(size)
    period = 3 + identity % 4
    stripes = ((grid // period) % 2)[None, :] if identity % 2 else ((grid // period) % 2)[:, None]
    pixels = np.asarray(COLOURS[identity % len(COLOURS)], dtype=np.float64) * (0.6 + 0.4 * stripes[..., None])
    pixels = pixels + rng.normal(0, 15, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_identity_folder(root: Path, counts: dict[str, int], seed: int = 0, grey: str | None = None) -> Path:
    """``root/<identity>/NNN.png`` with ``counts[identity]`` images; ``grey`` names one identity
    written as grey PGM files instead."""
    rng = np.random.default_rng(seed)
    for index, (name, count) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = face_image(index, rng)
            if name == grey:
                Image.fromarray(pixels.mean(axis=2).astype(np.uint8), mode="L").save(folder / f"{i:03d}.pgm")
            else:
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root
