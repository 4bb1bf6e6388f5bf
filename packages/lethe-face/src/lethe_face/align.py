"""Face alignment with facenet-pytorch's MTCNN (Zhang et al., 2016, "Joint face detection and
alignment using multitask cascaded convolutional networks"; weights ship in the wheel).

Two methods (``ALIGNMENTS``): ``mtcnn``, MTCNN's own crop of the largest face's box (with
``margin``); ``dlib-chip``, the chip dlib's face ResNet reads (``lethe_face.dlib_chip``, padding
0.25): MTCNN's five points of the face nearest the image centre, placed by a similarity transform
on ``MTCNN_CHIP_TEMPLATE`` (where dlib's chips put those points).

Run once per file list and settings, and cached as one safetensors file keyed by a hash of both.
Where MTCNN finds no face the image falls back to the dataset's centre crop; the count is returned
(and reported in the dataset record).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lethe.errors import ConfigError, DataError
from lethe.io import atomic_path
from lethe_face._facenet import facenet
from lethe_vision.images import centre_crop, decode_image

CACHE_VERSION = 1
ALIGNMENTS = ("mtcnn", "dlib-chip")
#: MTCNN's five points (left eye, right eye, nose tip, left and right mouth corner; x, y) in dlib's
#: 150 px chip: where the chips cut from dlib's own 5-point landmarks put them, averaged over the 24
#: LFW images of ``tests/face/fixtures/dlib_reference.json`` (``benchmarks/face/dlib_verification.py``
#: calibrates it; results/face/dlib-resnet-verification: 99.08 % on LFW pairs with it)
MTCNN_CHIP_TEMPLATE = np.array(
    [(48.037, 45.791), (102.006, 46.325), (74.928, 77.082), (50.706, 105.415), (98.063, 106.147)]
)
DLIB_CHIP_SIZE = 150


def alignment_method(align: bool | str | None) -> str | None:
    """The alignment a dataset option names: None (off), ``mtcnn`` (``True``) or ``dlib-chip``."""
    if align is None or align is False or str(align).lower() in ("false", "no", "off", "none", "0", ""):
        return None
    if align is True or str(align).lower() in ("true", "yes", "on", "1"):
        return "mtcnn"
    if align not in ALIGNMENTS:
        raise ConfigError(f"align must be true, false or one of {', '.join(ALIGNMENTS)}; got {align!r}")
    return str(align)


def cache_key(files: list[Path], size: int, margin: int, crop: float, method: str = "mtcnn") -> str:
    """Hash of the file list (path, byte size, modification time) and the alignment settings."""
    settings: dict = {"v": CACHE_VERSION, "size": size, "margin": margin, "crop": crop}
    if method != "mtcnn":  # keeps the keys of existing MTCNN caches
        settings["method"] = method
    h = hashlib.sha256(json.dumps(settings).encode())
    for path in files:
        st = path.stat()
        h.update(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def mtcnn_crop(detector, image: torch.Tensor) -> torch.Tensor | None:
    """The largest face MTCNN finds in uint8 ``[3, H, W]`` ``image``, as uint8; None if none."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image.permute(1, 2, 0).numpy()))
    face = detector(pil)
    if face is None:
        return None
    return face.round().clamp(0, 255).to(torch.uint8)


def mtcnn_points(detector, image: np.ndarray) -> np.ndarray | None:
    """MTCNN's five points ``[5, 2]`` (x, y) of the face whose box centre is nearest the centre of
    uint8 ``[H, W, 3]`` ``image`` (LFW centres the named person); None if it finds none."""
    from PIL import Image

    boxes, _, points = detector.detect(Image.fromarray(np.ascontiguousarray(image)), landmarks=True)
    if boxes is None or len(boxes) == 0:
        return None
    boxes = np.asarray(boxes, dtype=np.float64)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    offset = np.linalg.norm(centres - np.array([image.shape[1], image.shape[0]]) / 2, axis=1)
    return np.asarray(points[int(np.argmin(offset))], dtype=np.float64)


def dlib_chip(
    image: np.ndarray, points: np.ndarray, size: int = DLIB_CHIP_SIZE, template: np.ndarray | None = None
) -> np.ndarray:
    """The ``size`` x ``size`` dlib chip (uint8 ``[size, size, 3]``) of uint8 ``[H, W, 3]`` ``image``
    whose MTCNN points ``points`` land on ``template`` (default ``MTCNN_CHIP_TEMPLATE``, for 150 px;
    scaled to ``size``)."""
    from lethe_face.dlib_chip import chip_details_from_points, extract_chip

    chip_points = (MTCNN_CHIP_TEMPLATE if template is None else np.asarray(template)) * (size / DLIB_CHIP_SIZE)
    return extract_chip(image, chip_details_from_points(points, chip_points, size))


def face_cropper(method: str, size: int, margin: int) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """``crop(uint8 [3, H, W]) -> uint8 [3, size, size]`` or None (no face) for ``method``."""
    if method == "mtcnn":
        detector = facenet().MTCNN(
            image_size=size, margin=margin, post_process=False, select_largest=True, device="cpu"
        )
        return lambda image: mtcnn_crop(detector, image)
    if method == "dlib-chip":
        detector = facenet().MTCNN(select_largest=False, device="cpu")

        def chip(image: torch.Tensor) -> torch.Tensor | None:
            pixels = image.permute(1, 2, 0).numpy()
            points = mtcnn_points(detector, pixels)
            return None if points is None else torch.from_numpy(dlib_chip(pixels, points, size)).permute(2, 0, 1)

        return chip
    raise ConfigError(f"unknown alignment {method!r}; known: {', '.join(ALIGNMENTS)}")


def align_faces(
    files: list[Path], size: int, margin: int, crop: float, cache_dir: Path, method: str = "mtcnn"
) -> tuple[list[torch.Tensor | None], list[str], int]:
    """``(images, skipped files, no-face count)``: ``method`` crops (``ALIGNMENTS``) of ``files`` at
    ``size`` x ``size`` (``None`` for undecodable files), read from ``cache_dir`` when this exact job
    ran before."""
    cache = cache_dir / f"{cache_key(files, size, margin, crop, method)}.safetensors"
    if cache.is_file():
        try:
            return _from_cache(load_file(str(cache)), files)
        except (SafetensorError, OSError, KeyError, ValueError):
            pass  # a damaged cache is rebuilt
    cropper = face_cropper(method, size, margin)
    images: list[torch.Tensor | None] = []
    skipped, no_face = [], torch.zeros(len(files), dtype=torch.bool)
    for i, path in enumerate(files):
        try:
            image = decode_image(path, 3, None)
        except DataError:
            images.append(None)
            skipped.append(str(path))
            continue
        face = cropper(image)
        if face is None:
            no_face[i] = True
            face = centre_crop(image, size, crop)
        images.append(face)
    decoded = torch.tensor([img is not None for img in images])
    stack = torch.stack([img for img in images if img is not None]) if decoded.any() else torch.zeros(0, 3, size, size)
    with atomic_path(cache) as tmp:
        save_file({"images": stack.to(torch.uint8).contiguous(), "decoded": decoded, "no_face": no_face}, str(tmp))
    return images, skipped, int(no_face.sum())


def _from_cache(state: dict[str, torch.Tensor], files: list[Path]) -> tuple[list[torch.Tensor | None], list[str], int]:
    decoded, stack = state["decoded"], state["images"]
    if len(decoded) != len(files) or int(decoded.sum()) != len(stack):
        raise ValueError("cache does not match the file list")
    images: list[torch.Tensor | None] = []
    it = iter(stack)
    for ok in decoded.tolist():
        images.append(next(it) if ok else None)
    skipped = [str(p) for p, ok in zip(files, decoded.tolist(), strict=True) if not ok]
    return images, skipped, int(state["no_face"].sum())
