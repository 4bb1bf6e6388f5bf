"""dlib chips from MTCNN's five points (``align: dlib-chip``) and the ``dlib-resnet`` embedder's
frozen trunk (``frozen_blocks``): synthetic images and random weights, no LFW or dlib model needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from face_helpers import make_identity_folder

from lethe.errors import ConfigError
from lethe_face.align import MTCNN_CHIP_TEMPLATE, alignment_method, cache_key, dlib_chip
from lethe_face.datasets import FaceOptions, cache_folder, load_faces
from lethe_face.dlib_resnet import DlibEmbedder, DlibResNet
from lethe_face.models import FaceModelSpec, build_face_model


def gradient_image(size: int = 400) -> np.ndarray:
    """uint8 ``[size, size, 3]``: red = x / 2, green = y / 2, blue 0."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.stack([xs / 2, ys / 2, np.zeros_like(xs)], axis=2).astype(np.uint8)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(False, None), (None, None), ("false", None), (True, "mtcnn"), ("true", "mtcnn"), ("mtcnn", "mtcnn")]
    + [("dlib-chip", "dlib-chip")],
)
def test_alignment_method_names(value, expected):
    assert alignment_method(value) == expected


def test_alignment_method_rejects_unknown():
    with pytest.raises(ConfigError, match="dlib-chip"):
        alignment_method("dlib")


def test_dlib_chip_places_points_on_the_template():
    # the points are the template scaled by 2 and shifted by (10, 20): chip pixel (u, v) reads
    # image (2u + 10, 2v + 20), whose red and green are u + 5 and v + 10
    points = MTCNN_CHIP_TEMPLATE * 2 + np.array([10.0, 20.0])
    chip = dlib_chip(gradient_image(), points)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    vs, us = np.mgrid[0:150, 0:150]
    assert np.abs(chip[..., 0].astype(float) - (us + 5)).max() <= 1.5
    assert np.abs(chip[..., 1].astype(float) - (vs + 10)).max() <= 1.5


def test_dlib_chip_scales_the_template_to_its_size():
    points = MTCNN_CHIP_TEMPLATE * 2 + np.array([10.0, 20.0])
    small = dlib_chip(gradient_image(), points, size=50)
    assert small.shape == (50, 50, 3)
    # three times coarser: chip pixel (u, v) reads image (6u + 10, 6v + 20)
    assert abs(int(small[25, 25, 0]) - (3 * 25 + 5)) <= 2 and abs(int(small[25, 25, 1]) - (3 * 25 + 10)) <= 2


def test_mtcnn_cache_key_is_unchanged_by_the_method_option(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"x")
    assert cache_key([path], 16, 14, 1.0) == cache_key([path], 16, 14, 1.0, "mtcnn")
    assert cache_key([path], 16, 14, 1.0) != cache_key([path], 16, 14, 1.0, "dlib-chip")


def test_dlib_chip_alignment_falls_back_and_caches(tmp_path, monkeypatch):
    root = make_identity_folder(tmp_path / "p", {"a": 2, "b": 2})
    opts = FaceOptions(size=24, align="dlib-chip")
    data = load_faces(f"folder:{root}", options=opts, cache_root=tmp_path / "cache")
    assert data.record["align"] == {"method": "dlib-chip", "no_face_centre_crop": 4, "chip_padding": 0.25}
    assert data.bundle.train.images.shape[1:] == (3, 24, 24)
    folder = tmp_path / "cache" / cache_folder(f"folder:{root}", "dlib-chip", 24)
    assert folder.name.endswith("-dlib-chip-24") and len(list(folder.glob("*.safetensors"))) == 1

    import lethe_face.align as align

    monkeypatch.setattr(align, "facenet", lambda: pytest.fail("MTCNN ran again instead of the cache"))
    again = load_faces(f"folder:{root}", options=opts, cache_root=tmp_path / "cache")
    assert torch.equal(again.bundle.train.images, data.bundle.train.images)


def test_frozen_blocks_give_the_same_embedding():
    torch.manual_seed(0)
    net = DlibResNet().eval()
    x = torch.randn(2, 3, 150, 150)
    assert torch.allclose(DlibEmbedder(net, frozen_blocks=10)(x), DlibEmbedder(net)(x), atol=1e-5)


def test_frozen_blocks_reach_only_the_later_blocks():
    torch.manual_seed(0)
    net = DlibResNet().eval()
    DlibEmbedder(net, frozen_blocks=10)(torch.randn(2, 3, 150, 150)).sum().backward()
    with_grad = {name for name, p in net.named_parameters() if p.grad is not None}
    assert with_grad and all(
        name.startswith(("blocks.10.", "blocks.11.", "blocks.12.", "blocks.13.", "fc.")) for name in with_grad
    )
    assert "fc.weight" in with_grad and "conv.weight" not in with_grad


def test_frozen_blocks_is_checked():
    with pytest.raises(ConfigError, match="dlib-resnet option"):
        build_face_model(FaceModelSpec(num_classes=3, embedder="light-resnet", frozen_blocks=2))
    with pytest.raises(ConfigError, match="frozen_blocks"):
        build_face_model(FaceModelSpec(num_classes=3, embedder="dlib-resnet", image_size=150, frozen_blocks=15))
    model = build_face_model(FaceModelSpec(num_classes=3, embedder="dlib-resnet", image_size=150, frozen_blocks=7))
    assert model.embedder.frozen_blocks == 7
