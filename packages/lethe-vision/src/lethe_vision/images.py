"""Single images: decoding a file into uint8 ``[C, H, W]``, and a square centre crop resized to one size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision import io as tvio

from lethe.errors import DataError


def decode_image(path: Path, channels: int | None, size: int | None) -> torch.Tensor:
    """The image file ``path`` as uint8 ``[C, H, W]``: ``channels`` 1 (grey), 3 (RGB) or None (as
    stored); torchvision's decoder, else PIL's; resized to ``size`` x ``size`` when given. A
    DataError naming the file if neither can decode it."""
    mode = {1: tvio.ImageReadMode.GRAY, 3: tvio.ImageReadMode.RGB}.get(channels, tvio.ImageReadMode.UNCHANGED)
    try:
        img = tvio.decode_image(tvio.read_file(str(path)), mode=mode)
    except RuntimeError:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as pil:
                pil = pil.convert({1: "L", 3: "RGB"}.get(channels, "RGB"))
                img = torch.from_numpy(np.array(pil)).reshape(pil.height, pil.width, -1).permute(2, 0, 1)
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(f"cannot decode image {path}: {err}") from None
    if size is not None and tuple(img.shape[-2:]) != (size, size):
        from torchvision.transforms.v2 import functional as TF

        img = TF.resize(img, [size, size], antialias=True)
    return img


def centre_crop(image: torch.Tensor, size: int, crop: float = 1.0) -> torch.Tensor:
    """The centre square of side ``crop * min(H, W)`` resized to ``size``, as uint8 RGB."""
    from torchvision.transforms.v2 import functional as TF

    h, w = image.shape[-2:]
    side = max(1, round(crop * min(h, w)))
    image = TF.center_crop(image, [side, side])
    image = TF.resize(image, [size, size], antialias=True)
    return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image
