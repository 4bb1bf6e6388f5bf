"""Dataset registry: ``fashion-mnist``, ``cifar10``, ``cifar100`` and ``imagefolder:<root>``.

Every loader returns a ``DatasetBundle`` of uint8 tensors held in memory (these datasets are
small); augmentation and normalisation happen per sample in ``TensorImageDataset``. Every loader
takes ``image_size``: images resized to that square size on load (None: as stored).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lethe import Registry
from lethe.errors import DataError
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.images import decode_image

DATASETS: Registry[Callable[..., DatasetBundle]] = Registry("dataset")

#: Where the Debian package ``dataset-fashion-mnist`` puts the idx files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".gif", ".tif", ".tiff", ".webp"}

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def default_data_root() -> Path:
    """``$LETHE_DATA`` or ``./data``."""
    return Path(os.environ.get("LETHE_DATA", "data"))


def load_dataset(
    spec: str, root: str | os.PathLike | None = None, download: bool = True, image_size: int | None = None
) -> DatasetBundle:
    """Load a registered dataset by name (``cifar10``) or family (``imagefolder:/path``), its images
    resized to ``image_size`` x ``image_size`` when given."""
    loader, arg = DATASETS.get(spec)
    root = Path(root) if root is not None else default_data_root()
    kwargs = {"download": download, "image_size": image_size}
    return loader(root, arg, **kwargs) if arg is not None else loader(root, **kwargs)


def resize_images(data: ImageData, size: int | None, chunk: int = 1024) -> ImageData:
    """``data`` with every image resized to ``size`` x ``size`` (bilinear, antialiased, as image
    folders are decoded); unchanged when ``size`` is None or already the images' size."""
    if size is None or tuple(data.images.shape[-2:]) == (size, size):
        return data
    from torchvision.transforms.v2 import functional as TF

    parts = [TF.resize(data.images[i : i + chunk], [size, size], antialias=True) for i in range(0, len(data), chunk)]
    return ImageData(
        torch.cat(parts) if parts else data.images.new_zeros(0, data.images.shape[1], size, size), data.labels
    )


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if len(raw) < 4 or raw[:3] != b"\0\0\x08" or len(raw) < 4 + 4 * raw[3]:
        raise DataError(f"{path} is truncated or not an idx file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated or not an idx file")
    return data.reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


@DATASETS.register("fashion-mnist")
def fashion_mnist(root: Path, download: bool = True, image_size: int | None = None) -> DatasetBundle:
    """Fashion-MNIST (Xiao et al., 2017): the Debian package's idx files, else torchvision's."""
    folders = [DEBIAN_FASHION_MNIST, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    splits = {}
    for folder in folders:
        files = {
            s: (_find_idx(folder, f"{p}-images-idx3-ubyte"), _find_idx(folder, f"{p}-labels-idx1-ubyte"))
            for s, p in (("train", "train"), ("test", "t10k"))
        }
        if all(a and b for a, b in files.values()):
            splits = {
                s: ImageData(
                    torch.from_numpy(_read_idx(a).copy()).unsqueeze(1), torch.from_numpy(_read_idx(b).astype(np.int64))
                )
                for s, (a, b) in files.items()
            }
            break
    if not splits:
        from torchvision.datasets import FashionMNIST

        splits = {s: _from_torchvision(FashionMNIST, root, s == "train", download) for s in ("train", "test")}
    return DatasetBundle(
        "fashion-mnist",
        FASHION_CLASSES,
        resize_images(splits["train"], image_size),
        resize_images(splits["test"], image_size),
        mean=(0.2860,),
        std=(0.3530,),
        crop_padding=2,
        flip=True,
    )


def _from_torchvision(cls, root: Path, train: bool, download: bool) -> ImageData:
    try:
        ds = cls(str(root), train=train, download=download)
    except (RuntimeError, OSError) as err:
        raise DataError(f"{cls.__name__} is not under {root} and could not be downloaded ({err})") from None
    images = torch.as_tensor(np.asarray(ds.data))
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    return ImageData(images.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long))


def read_image_folder(
    folder: Path, classes: list[str] | None = None, channels: int | None = None, size: int | None = None
) -> tuple[ImageData, list[str]]:
    """Decode ``folder/<class>/<image>`` into memory. All images must share one size unless
    ``size`` is given (then each is resized to ``size`` x ``size``)."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    classes = classes or found
    if not classes:
        raise DataError(f"{folder} has no class folders (expected {folder}/<class>/<image>)")
    images, labels = [], []
    for index, name in enumerate(classes):
        files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            images.append(decode_image(path, channels, size))
            labels.append(index)
    if not images:
        raise DataError(f"{folder} has class folders but no images")
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) > 1:
        raise DataError(f"images under {folder} differ in size {sorted(shapes)[:3]}; pass an image size (--image-size)")
    return ImageData(torch.stack(images), torch.tensor(labels, dtype=torch.long)), classes


def folder_fingerprint(folder: Path, classes: list[str]) -> str:
    """A hash of the images under ``folder/<class>/`` (relative paths, sizes, modification times)."""
    digest = hashlib.sha256()
    for name in classes:
        for path in sorted((folder / name).glob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                stat = path.stat()
                digest.update(f"{name}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cached_image_folder(folder: Path, classes: list[str], channels: int, cache: Path) -> ImageData:
    """``read_image_folder`` decoded once: the uint8 tensors are kept in
    ``cache/<folder name>-<fingerprint>.safetensors`` and read back while the images are unchanged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from lethe.io import atomic_path

    path = cache / f"{folder.parent.name}-{folder.name}-{folder_fingerprint(folder, classes)}.safetensors"
    if path.is_file():
        try:
            tensors = load_file(str(path))
            return ImageData(tensors["images"], tensors["labels"])
        except (OSError, KeyError, RuntimeError, SafetensorError, DataError):
            pass  # a damaged cache is decoded again and replaced
    data, _ = read_image_folder(folder, classes, channels=channels)
    try:
        with atomic_path(path) as tmp:
            save_file({"images": data.images.contiguous(), "labels": data.labels}, str(tmp))
    except OSError:
        pass  # a read-only data folder: decode again next time
    return data


def _channel_stats(data: ImageData) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = data.images.float() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


@DATASETS.register("imagefolder", family=True)
def image_folder(
    root: Path, folder: str, download: bool = True, name: str | None = None, image_size: int | None = None
) -> DatasetBundle:
    """Any ``<folder>/train/<class>/*`` + ``<folder>/test/<class>/*`` tree (classes sorted)."""
    base = Path(folder)
    train, classes = read_image_folder(base / "train", channels=3, size=image_size)
    test, _ = read_image_folder(base / "test", classes=classes, channels=3, size=image_size)
    mean, std = _channel_stats(train)
    return DatasetBundle(name or f"imagefolder:{folder}", classes, train, test, mean, std)


CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@DATASETS.register("cifar10")
def cifar10(root: Path, download: bool = True, image_size: int | None = None) -> DatasetBundle:
    """CIFAR-10: the folder copy ``<root>/cifar10/{train,test}/<class>/*.jpg`` if present (decoded
    once into ``<root>/cache/decoded/``), else torchvision's ``CIFAR10`` under ``<root>`` (downloaded when allowed)."""
    folder = root / "cifar10"
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        cache = root / "cache" / "decoded"
        train = cached_image_folder(folder / "train", CIFAR10_CLASSES, 3, cache)
        test = cached_image_folder(folder / "test", CIFAR10_CLASSES, 3, cache)
    else:
        from torchvision.datasets import CIFAR10

        train = _from_torchvision(CIFAR10, root, True, download)
        test = _from_torchvision(CIFAR10, root, False, download)
    train, test = resize_images(train, image_size), resize_images(test, image_size)
    return DatasetBundle("cifar10", CIFAR10_CLASSES, train, test, CIFAR_MEAN, CIFAR_STD)


@DATASETS.register("cifar100")
def cifar100(root: Path, download: bool = True, image_size: int | None = None) -> DatasetBundle:
    """CIFAR-100 through torchvision (downloaded when allowed)."""
    from torchvision.datasets import CIFAR100

    train = resize_images(_from_torchvision(CIFAR100, root, True, download), image_size)
    test = resize_images(_from_torchvision(CIFAR100, root, False, download), image_size)
    classes = CIFAR100(str(root), train=False, download=False).classes
    return DatasetBundle("cifar100", classes, train, test, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
