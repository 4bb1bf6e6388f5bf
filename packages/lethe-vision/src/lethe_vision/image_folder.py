"""Write a seeded sample of a registered dataset as an image folder (``<out>/{train,test}/<class>/*.png``).

The small image-folder dataset of issue 16's DELETE defaults check: ``python
benchmarks/make_image_folder.py fashion-mnist data/fashion-mnist-small --train 300 --test 100``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from lethe.errors import LetheError
from lethe_vision.data import per_class_sample
from lethe_vision.datasets import load_dataset


def write_folder(dataset: str, out: Path, train: int, test: int, seed: int = 0) -> None:
    """Write ``train`` / ``test`` images per class of ``dataset`` under ``out`` (replaced whole)."""
    bundle = load_dataset(dataset)
    tmp = out.with_name(out.name + ".tmp")
    for split, data, count in (("train", bundle.train, train), ("test", bundle.test, test)):
        sample = per_class_sample(data, count, seed)
        for i, (image, label) in enumerate(zip(sample.images, sample.labels.tolist(), strict=True)):
            folder = tmp / split / bundle.classes[label].replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            pixels = image.permute(1, 2, 0).numpy()
            Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(folder / f"{i:05d}.png")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=300, help="training images per class")
    parser.add_argument("--test", type=int, default=100, help="test images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        write_folder(args.dataset, args.out, args.train, args.test, args.seed)
    except LetheError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0
