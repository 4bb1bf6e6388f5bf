"""Forget one person from a trained face checkpoint, given a folder of their photos (``lethe-face forget``).

The photos are the forget set: cut as the checkpoint's training images were (its ``data`` options:
MTCNN's crop, dlib's chip or a centre crop, at its size), labelled with the person's identity (the
folder's name, or ``--person``), and handed to the method. DELETE (the default; Zhou et al., CVPR
2025) reads nothing else, so the person can be forgotten without the training data. A method that
reads retained data, or tunes on validation data (SVD), reads the checkpoint's dataset; the person's
training images there are replaced by the photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lethe.engine import Engine
from lethe.errors import ConfigError, DataError
from lethe_face.align import alignment_method, face_cropper
from lethe_face.datasets import FACE_MEAN, FACE_STD, FaceData, FaceOptions, decode_faces
from lethe_face.report import plot_face_grid
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.images import decode_image
from lethe_vision.pipeline import Splits, make_splits, outputs_on

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".webp")


def photo_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted; DataError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--photos {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not files:
        raise DataError(f"--photos {folder}: no photos ({', '.join(PHOTO_SUFFIXES)})")
    return files


def load_photos(files: Sequence[Path], options: FaceOptions, size: int, crop: float) -> torch.Tensor:
    """uint8 ``[N, 3, size, size]``: each photo cut as the checkpoint's images were; a photo that
    does not decode, or (with alignment) shows no face, is a DataError naming it."""
    method = alignment_method(options.align)
    if method is None:
        images, skipped = decode_faces(list(files), size, crop)
        if skipped:
            raise DataError(f"cannot read the photo {skipped[0]}")
        return torch.stack(images)
    cropper = face_cropper(method, size, options.margin)
    faces = []
    for path in files:
        face = cropper(decode_image(path, 3, None))
        if face is None:
            raise DataError(f"no face found in the photo {path}")
        faces.append(face)
    return torch.stack(faces)


def person_index(classes: Sequence[str], person: str) -> int:
    """The identity index of ``person``; ConfigError naming a few known people otherwise."""
    if person in classes:
        return list(classes).index(person)
    shown = ", ".join(list(classes)[:5]) + (", ..." if len(classes) > 5 else "")
    raise ConfigError(f"unknown person {person!r}: the checkpoint knows {len(classes)} people ({shown})")


def photo_splits(photos: ImageData, person: int, info: dict[str, Any], data: FaceData | None) -> Splits:
    """The protocol's splits with the photos as the person's training images: on the photos alone
    (``data`` None), or on the checkpoint's dataset with the person's training images replaced."""
    split = info.get("split", {})
    if data is None:
        bundle = DatasetBundle(info["dataset"], list(info["classes"]), photos, photos, FACE_MEAN, FACE_STD, 0, True)
        empty = photos.subset(torch.zeros(0, dtype=torch.long))
        return Splits(bundle, (person,), photos, empty, empty, 0.0, split.get("seed", 0))
    splits = make_splits(data.bundle, (person,), split.get("val_fraction", 0.1), split.get("seed", 0))
    kept = splits.train.of_classes((person,), keep=False)
    train = ImageData(torch.cat([kept.images, photos.images]), torch.cat([kept.labels, photos.labels]))
    return replace(splits, train=train)


def photo_data(images: torch.Tensor, person: int) -> ImageData:
    """The photos labelled as ``person``."""
    return ImageData(images, torch.full((len(images),), person, dtype=torch.long))


def write_grid(
    path: str | Path,
    before: nn.Module,
    after: nn.Module,
    splits: Splits,
    person: int,
    engine: Engine,
    head: str,
    count: int = 6,
) -> None:
    """A picture grid (``plot_face_grid``): up to ``count`` of the person's photos and as many test
    images of kept people (when the dataset was read), each titled with both models' top prediction."""
    forgotten = splits.train.of_classes((person,))
    shown = forgotten.subset(torch.arange(min(count, len(forgotten))))
    kept = splits.test.of_classes((person,), keep=False)
    if len(kept):
        order = torch.randperm(len(kept), generator=torch.Generator().manual_seed(splits.seed))[:count]
        kept = kept.subset(order)
        shown = ImageData(torch.cat([shown.images, kept.images]), torch.cat([shown.labels, kept.labels]))
    names = splits.bundle.classes
    predictions = {
        name: [names[i] for i in outputs_on(model, shown, splits.bundle, engine).logits.argmax(1).tolist()]
        for name, model in (("before", before), ("after", after))
    }
    plot_face_grid(
        path,
        shown.images,
        [names[i] for i in shown.labels.tolist()],
        [label == person for label in shown.labels.tolist()],
        {head: predictions},
        f"Forgetting {names[person]}: top prediction before and after",
    )
