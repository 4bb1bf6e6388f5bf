"""Identity-folder face datasets: ``lfw``, ``att`` (ORL) and ``folder:<root>``.

Layout ``root/<identity>/*.{jpg,jpeg,png,pgm}`` (LFW, VGGFace2, CASIA-WebFace, Pins). Identities
with fewer than ``min_images`` decodable images are dropped; each remaining identity's images are
split into train and test with a seeded permutation (at least one image on each side). Images are
decoded once into uint8 ``[N, 3, S, S]`` tensors (centre crop, resize; grey repeated to RGB) or,
with ``align``, cropped by MTCNN (``true`` / ``mtcnn``) or cut as dlib's face chips from MTCNN's five
points (``dlib-chip``, what the ``dlib-resnet`` embedder reads, at size 150); see
``lethe_face.align``. Undecodable files are skipped and counted in ``FaceData.record``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lethe import Registry
from lethe.errors import ConfigError, DataError
from lethe_face.align import align_faces, alignment_method
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.datasets import default_data_root
from lethe_vision.images import centre_crop, decode_image

FACE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm"}
#: facenet-pytorch's fixed standardisation, (x - 127.5) / 128, as a mean/std normalisation.
FACE_MEAN, FACE_STD = (0.5, 0.5, 0.5), (0.502, 0.502, 0.502)


@dataclass
class FaceOptions:
    """How a face dataset is read: ``None`` fields take the dataset's default."""

    min_images: int | None = None
    size: int | None = None
    crop: float | None = None
    test_fraction: float = 0.25
    seed: int = 0
    #: False, True (= ``mtcnn``) or a method of ``lethe_face.align.ALIGNMENTS`` (``dlib-chip``)
    align: bool | str = False
    margin: int = 14

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaceDefaults:
    """A named dataset's folder and reading defaults."""

    folder: Path
    min_images: int = 2
    size: int = 112
    crop: float = 1.0


@dataclass
class FaceData:
    """A loaded face dataset: the classification bundle plus what happened while reading it."""

    bundle: DatasetBundle
    record: dict[str, Any] = field(default_factory=dict)
    pairs_file: Path | None = None
    folder: Path | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def identities(self, text: str | int | list | tuple) -> tuple[int, ...]:
        """``parse_identities`` with a clear error for identities dropped for having too few images."""
        items = text if isinstance(text, (list, tuple)) else str(text).split(",")
        for item in (str(t).strip() for t in items):
            if item in self.dropped:
                raise DataError(
                    f"identity {item!r} has {self.dropped[item]} usable images, too few for the train/test split "
                    f"(min_images {self.record.get('min_images')})"
                )
        return parse_identities(text, self.bundle.classes)


FACE_DATASETS: Registry[Callable[..., FaceDefaults]] = Registry("face dataset")


def sklearn_lfw_home() -> Path:
    """sklearn's ``fetch_lfw_people`` cache: ``$SCIKIT_LEARN_DATA/lfw_home`` (default ``~/scikit_learn_data``)."""
    return Path(os.environ.get("SCIKIT_LEARN_DATA", "~/scikit_learn_data")).expanduser() / "lfw_home"


@FACE_DATASETS.register("lfw")
def lfw(root: Path) -> FaceDefaults:
    """Labeled Faces in the Wild (Huang et al., 2007): the shared deep-funneled copy
    ``<root>/lfw/images``, else sklearn's ``lfw_home/lfw_funneled``; 250x250 with the face in the
    centre, so a 0.6 centre crop keeps the face. ``min_images`` 20 gives the classic 62 people."""
    candidates = [root / "lfw" / "images", root / "lfw_home" / "lfw_funneled", sklearn_lfw_home() / "lfw_funneled"]
    for folder in candidates:
        if folder.is_dir():
            return FaceDefaults(folder, min_images=20, size=112, crop=0.6)
    raise DataError(
        f"LFW not found (looked in {', '.join(map(str, candidates))}); run 'make faces' or "
        "sklearn.datasets.fetch_lfw_people(funneled=True) with internet"
    )


@FACE_DATASETS.register("att")
def att(root: Path) -> FaceDefaults:
    """The ORL / AT&T database (Samaria & Harter, 1994; credit: Olivetti Research Laboratory):
    40 people x 10 grey 92x112 images under ``<root>/att_faces/s<k>``."""
    folder = root / "att_faces"
    if not folder.is_dir():
        raise DataError(f"ORL / AT&T faces not found at {folder}; run 'make faces'")
    return FaceDefaults(folder, min_images=2, size=96, crop=1.0)


@FACE_DATASETS.register("folder", family=True)
def identity_folder(root: Path, path: str) -> FaceDefaults:
    """Any ``<path>/<identity>/<image>`` tree."""
    return FaceDefaults(Path(path))


def list_identities(folder: Path) -> dict[str, list[Path]]:
    """``{identity: sorted image files}`` of ``folder/<identity>/*`` (identities sorted by name)."""
    if not folder.is_dir():
        raise DataError(f"face folder not found: {folder}")
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in FACE_SUFFIXES and p.is_file())
        if files:
            found[sub.name] = files
    if not found:
        raise DataError(f"{folder} has no identities (expected {folder}/<identity>/<image>.jpg|png|pgm)")
    return found


def decode_faces(files: list[Path], size: int, crop: float) -> tuple[list[torch.Tensor | None], list[str]]:
    """Decode and centre-crop every file; ``None`` (and the file in the skip list) where it fails."""
    images: list[torch.Tensor | None] = []
    skipped = []
    for path in files:
        try:
            images.append(centre_crop(decode_image(path, 3, None), size, crop))
        except DataError:
            images.append(None)
            skipped.append(str(path))
    return images, skipped


def split_identities(counts: list[int], test_fraction: float, seed: int) -> list[tuple[list[int], list[int]]]:
    """Seeded per-identity split of image positions: ``(train, test)`` for each identity."""
    gen = torch.Generator().manual_seed(seed)
    result = []
    for n in counts:
        order = torch.randperm(n, generator=gen).tolist()
        n_test = min(n - 1, max(1, round(test_fraction * n)))
        result.append((sorted(order[n_test:]), sorted(order[:n_test])))
    return result


def cache_folder(spec: str, method: str, size: int) -> str:
    """The alignment cache's folder name under the data root (``lfw-aligned-112``, ``lfw-dlib-chip-150``)."""
    name = spec.replace("/", "_").replace(":", "-")
    return f"{name}-aligned-{size}" if method == "mtcnn" else f"{name}-{method}-{size}"


def load_faces(
    spec: str,
    root: str | os.PathLike | None = None,
    options: FaceOptions | None = None,
    *,
    cache_root: str | os.PathLike | None = None,
) -> FaceData:
    """Load the face dataset ``spec`` (``lfw``, ``att`` or ``folder:<path>``) as a ``FaceData``."""
    opts = options or FaceOptions()
    base = Path(root) if root is not None else default_data_root()
    entry, arg = FACE_DATASETS.get(spec)
    defaults = entry(base, arg) if arg is not None else entry(base)
    min_images = defaults.min_images if opts.min_images is None else opts.min_images
    size = opts.size or defaults.size
    crop = defaults.crop if opts.crop is None else opts.crop
    if min_images < 2:
        raise ConfigError(f"min_images must be at least 2 (one train and one test image), got {min_images}")
    if not 0.0 < opts.test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {opts.test_fraction}")
    if size < 8 or not 0.0 < crop <= 1.0:
        raise ConfigError(f"image size must be at least 8 and crop in (0, 1]; got size {size}, crop {crop}")
    listing = list_identities(defaults.folder)
    # Cheap pre-filter on the file count, so large trees are not decoded for nothing.
    dropped = {k: len(v) for k, v in listing.items() if len(v) < min_images}
    listing = {k: v for k, v in listing.items() if len(v) >= min_images}
    if not listing:
        raise DataError(f"no identity under {defaults.folder} has {min_images} or more images; lower min_images")
    files = [p for paths in listing.values() for p in paths]
    record: dict[str, Any] = {"folder": str(defaults.folder), "size": size, "crop": crop, "min_images": min_images}
    method = alignment_method(opts.align)
    if method is not None:
        cache = (Path(cache_root) if cache_root is not None else base) / cache_folder(spec, method, size)
        images, skipped, fallback = align_faces(files, size, opts.margin, crop, cache, method)
        record["align"] = {"method": method, "no_face_centre_crop": fallback}
        record["align"].update({"margin": opts.margin} if method == "mtcnn" else {"chip_padding": 0.25})
    else:
        images, skipped = decode_faces(files, size, crop)
    record["skipped_undecodable"] = len(skipped)
    record["skipped_files"] = skipped[:50]
    data = _assemble(spec, listing, images, min_images, opts, record, defaults.folder)
    data.dropped.update(dropped)
    return data


def _assemble(
    spec: str,
    listing: dict[str, list[Path]],
    images: list[torch.Tensor | None],
    min_images: int,
    opts: FaceOptions,
    record: dict[str, Any],
    folder: Path,
) -> FaceData:
    per_identity: dict[str, list[torch.Tensor]] = {}
    dropped: dict[str, int] = {}
    position = 0
    for name, paths in listing.items():
        decoded = [img for img in images[position : position + len(paths)] if img is not None]
        position += len(paths)
        if len(decoded) >= min_images:
            per_identity[name] = decoded
        else:
            dropped[name] = len(decoded)
    if not per_identity:
        raise DataError(f"no identity under {folder} has {min_images} or more decodable images")
    names = list(per_identity)
    splits = split_identities([len(per_identity[n]) for n in names], opts.test_fraction, opts.seed)
    parts: dict[str, tuple[list[torch.Tensor], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, (name, (train_idx, test_idx)) in enumerate(zip(names, splits, strict=True)):
        for split, idx in (("train", train_idx), ("test", test_idx)):
            parts[split][0].extend(per_identity[name][i] for i in idx)
            parts[split][1].extend([label] * len(idx))
    train, test = (ImageData(torch.stack(parts[s][0]), torch.tensor(parts[s][1], dtype=torch.long)) for s in parts)
    bundle = DatasetBundle(spec, names, train, test, FACE_MEAN, FACE_STD, crop_padding=0, flip=True)
    record.update(identities=len(names), train_images=len(train), test_images=len(test))
    pairs = next((p for p in (folder.parent / "pairs.txt", folder / "pairs.txt") if p.is_file()), None)
    return FaceData(bundle, record, pairs, folder, dropped)


def identity_subset(bundle: DatasetBundle, identities: list[int], name: str | None = None) -> DatasetBundle:
    """The bundle restricted to ``identities`` (indices), relabelled ``0..k-1`` in that order."""
    index = torch.as_tensor(identities, dtype=torch.long)
    remap = torch.full((bundle.num_classes,), -1, dtype=torch.long)
    remap[index] = torch.arange(len(index))

    def part(data: ImageData) -> ImageData:
        sub = data.of_classes(identities)
        return ImageData(sub.images, remap[sub.labels])

    classes = [bundle.classes[i] for i in identities]
    return DatasetBundle(
        name or bundle.name,
        classes,
        part(bundle.train),
        part(bundle.test),
        bundle.mean,
        bundle.std,
        bundle.crop_padding,
        bundle.flip,
    )


def parse_identities(text: str | int | list | tuple, identities: list[str]) -> tuple[int, ...]:
    """Identity names or indices (``"Ariel_Sharon,3"`` or a list) as sorted unique indices."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    result = []
    for item in (str(t).strip() for t in items):
        if not item:
            continue
        if item in identities:
            result.append(identities.index(item))
        elif item.lstrip("-").isdigit():
            index = int(item)
            if not 0 <= index < len(identities):
                raise ConfigError(f"identity index {index} is out of range 0..{len(identities) - 1}")
            result.append(index)
        else:
            close = [n for n in identities if n.lower().startswith(item.lower()[:3])][:5]
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise ConfigError(f"unknown identity {item!r} ({len(identities)} identities in the dataset{hint})")
    if not result:
        raise ConfigError("name at least one identity to forget")
    if len(set(result)) >= len(identities):
        raise ConfigError("cannot forget every identity")
    return tuple(sorted(set(result)))
