"""Face alignment with facenet-pytorch's MTCNN (Zhang et al., 2016, "Joint face detection and
alignment using multitask cascaded convolutional networks"; weights ship in the wheel).

Run once per file list and settings, and cached as one safetensors file keyed by a hash of both.
Where MTCNN finds no face the image falls back to the dataset's centre crop; the count is returned
(and reported in the dataset record).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lethe.errors import DataError
from lethe.io import atomic_path
from lethe_face._facenet import facenet
from lethe_vision.images import centre_crop, decode_image

CACHE_VERSION = 1


def cache_key(files: list[Path], size: int, margin: int, crop: float) -> str:
    """Hash of the file list (path, byte size, modification time) and the alignment settings."""
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "size": size, "margin": margin, "crop": crop}).encode())
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


def align_faces(
    files: list[Path], size: int, margin: int, crop: float, cache_dir: Path
) -> tuple[list[torch.Tensor | None], list[str], int]:
    """``(images, skipped files, no-face count)``: MTCNN crops of ``files`` at ``size`` x ``size``
    (``None`` for undecodable files), read from ``cache_dir`` when this exact job ran before."""
    cache = cache_dir / f"{cache_key(files, size, margin, crop)}.safetensors"
    if cache.is_file():
        try:
            return _from_cache(load_file(str(cache)), files)
        except (SafetensorError, OSError, KeyError, ValueError):
            pass  # a damaged cache is rebuilt
    detector = facenet().MTCNN(image_size=size, margin=margin, post_process=False, select_largest=True, device="cpu")
    images: list[torch.Tensor | None] = []
    skipped, no_face = [], torch.zeros(len(files), dtype=torch.bool)
    for i, path in enumerate(files):
        try:
            image = decode_image(path, 3, None)
        except DataError:
            images.append(None)
            skipped.append(str(path))
            continue
        face = mtcnn_crop(detector, image)
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
