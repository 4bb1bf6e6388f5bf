"""lethe_face's PyTorch port of dlib's face recognition ResNet against dlib's own outputs
(``fixtures/dlib_reference.json``, written by ``benchmarks/face/make_dlib_fixture.py`` with dlib 20.0.1),
and its reader's errors on damaged files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lethe.errors import CheckpointError, ConfigError
from lethe_face.dlib_chip import face_chip, face_chip_details
from lethe_face.dlib_format import DlibReader
from lethe_face.dlib_resnet import MODEL_NAME, DlibResNet, load_dlib_resnet, model_files, read_dlib_resnet
from lethe_face.models import FaceModelSpec, build_face_model

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "dlib_reference.json").read_text())
REPO = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("LETHE_MODELS", REPO / "data" / "models"))
DAT = MODELS / f"{MODEL_NAME}.dat"
LFW = REPO / FIXTURE["lfw_root"]
TOLERANCE = 1e-4  # cosine distance, port against dlib

needs_model = pytest.mark.skipif(
    not (DAT.is_file() or (MODELS / f"{MODEL_NAME}.safetensors").is_file()),
    reason=f"dlib's model is not in {MODELS} (make dlib-models)",
)


def synthetic_chip(kind: str, seed: int, size: int = 150) -> np.ndarray:
    """The same chips as benchmarks/face/make_dlib_fixture.py (integer arithmetic only)."""
    rs = np.random.RandomState(seed)
    if kind == "noise":
        return rs.randint(0, 256, (size, size, 3)).astype(np.uint8)
    y, x = np.mgrid[0:size, 0:size].astype(np.int64)
    a, b, c = rs.randint(-3, 4, (3, 3)), rs.randint(0, 256, 3), rs.randint(-2, 3, 3)
    chans = [(a[i, 0] * x + a[i, 1] * y + (c[i] * x * y) // size + b[i]) for i in range(3)]
    return np.clip(np.stack(chans, axis=-1), 0, 255).astype(np.uint8)


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def cosine_distances(net: DlibResNet, chips: list[np.ndarray], reference: list[list[float]]) -> np.ndarray:
    batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2)
    with torch.no_grad():
        ours = net.embed_images(batch).double()
    ref = torch.tensor(reference, dtype=torch.float64)
    return (1 - torch.nn.functional.cosine_similarity(ours, ref, dim=1)).numpy()


@pytest.fixture(scope="module")
def net() -> DlibResNet:
    return load_dlib_resnet(models_dir=MODELS)


@needs_model
def test_synthetic_chips_match_dlib(net):
    chips = [synthetic_chip(s["kind"], s["seed"]) for s in FIXTURE["synthetic"]]
    assert [sha256(c) for c in chips] == [s["chip_sha256"] for s in FIXTURE["synthetic"]]
    dist = cosine_distances(net, chips, [s["descriptor"] for s in FIXTURE["synthetic"]])
    assert dist.max() < TOLERANCE, dist


@needs_model
@pytest.mark.skipif(not LFW.is_dir(), reason=f"LFW is not in {LFW} (make faces)")
def test_lfw_chips_and_descriptors_match_dlib(net):
    """Chips cut by our geometry from dlib's landmarks are dlib's chips, pixel for pixel, and give
    dlib's descriptors."""
    from PIL import Image

    chips = []
    for face in FIXTURE["lfw"]:
        with Image.open(LFW / face["path"]) as pil:
            image = np.asarray(pil.convert("RGB"))
        chip = face_chip(image, np.array(face["landmarks"], dtype=np.float64))
        chips.append(chip)
        if sha256(image) == face["pixels_sha256"]:  # the same JPEG decoding as when the fixture was made
            assert sha256(chip) == face["chip_sha256"], face["path"]
    dist = cosine_distances(net, chips, [f["descriptor"] for f in FIXTURE["lfw"]])
    assert len(chips) >= 20 and dist.max() < TOLERANCE, dist


def test_chip_geometry_of_an_upright_face():
    """Landmarks at dlib's mean face (padding 0.25, 150 px) give a shift by half a pixel: dlib's
    ``centered_drect`` makes the rectangle one pixel narrower than the chip, centred on (75, 75)."""
    from lethe_face.dlib_chip import MEAN_FACE_5, chip_to_image

    points = (0.25 + MEAN_FACE_5) / 1.5 * 150
    details = face_chip_details(points)
    assert abs(details.angle) < 1e-12
    np.testing.assert_allclose(chip_to_image(details), [[1, 0, 0.5], [0, 1, 0.5]], atol=1e-9)
    image = np.random.RandomState(0).randint(0, 256, (150, 150, 3)).astype(np.uint8)
    chip = face_chip(image, points)
    pixels = image.astype(np.int64)
    mean4 = (pixels[:-1, :-1] + pixels[1:, :-1] + pixels[:-1, 1:] + pixels[1:, 1:]) / 4
    diff = chip[:-1, :-1] - mean4  # truncated, as dlib's assign_pixel (the half is 0.5 + 3e-14: x.99.. happens)
    assert diff.max() <= 0 and diff.min() >= -1
    assert not chip[-1].any() and not chip[:, -1].any()  # no right or lower neighbour: 0, as dlib


def test_reader_decodes_dlib_encodings():
    # 0, 150, -28, 256 as integers; 0.04 as mantissa 10737418 and exponent -28; '1', '0'; the string "relu_"
    data = bytes.fromhex("0100 0196 811c 020001 030ad7a3 811c 31 30 0105") + b"relu_"
    r = DlibReader(data, "mem")
    assert [r.integer() for _ in range(4)] == [0, 150, -28, 256]
    assert r.real() == pytest.approx(0.04, rel=1e-7)
    assert (r.boolean(), r.boolean(), r.string()) == (True, False, "relu_")
    assert r.at_end()
    with pytest.raises(CheckpointError, match="truncated"):
        r.integer()


@pytest.mark.parametrize(
    "content",
    [b"", b"\x01\x01\x01\x0dloss_metric_2", b"\xff" * 64, b"garbage text"],
    ids=["empty", "cut", "ff", "text"],
)
def test_reader_rejects_damaged_files(tmp_path, content):
    path = tmp_path / "bad.dat"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"bad\.dat is not a valid dlib model file") as err:
        read_dlib_resnet(path)
    assert "\n" not in str(err.value)


@needs_model
@pytest.mark.skipif(not DAT.is_file(), reason="needs dlib's .dat")
def test_reader_on_a_truncated_and_on_another_dlib_file(tmp_path):
    head = tmp_path / "head.dat"
    head.write_bytes(DAT.read_bytes()[:1_000_000])
    with pytest.raises(CheckpointError, match=r"head\.dat is not a valid dlib model file: file ends inside"):
        read_dlib_resnet(head)
    other = MODELS / "shape_predictor_5_face_landmarks.dat"
    if other.is_file():  # a shape predictor, not a network: refused at its first bytes
        with pytest.raises(CheckpointError, match="shape_predictor_5_face_landmarks.dat is not a valid dlib"):
            read_dlib_resnet(other)


def test_missing_model_names_the_make_target(tmp_path):
    with pytest.raises(CheckpointError, match="make dlib-models"):
        load_dlib_resnet(models_dir=tmp_path)
    with pytest.raises(CheckpointError, match="cannot read the dlib model file"):
        load_dlib_resnet(path=tmp_path / "absent.dat")


def test_damaged_safetensors_is_one_error(tmp_path):
    weights, _ = model_files(models_dir=tmp_path)
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(CheckpointError, match="is not a converted dlib face ResNet"):
        load_dlib_resnet(models_dir=tmp_path)
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(1)}, str(weights))
    with pytest.raises(CheckpointError, match="is not a converted dlib face ResNet"):
        load_dlib_resnet(models_dir=tmp_path)


@needs_model
@pytest.mark.skipif(not DAT.is_file(), reason="needs dlib's .dat")
def test_load_by_name_converts_once(tmp_path, net):
    shutil.copy(DAT, tmp_path / DAT.name)
    first = load_dlib_resnet(models_dir=tmp_path)
    weights, _ = model_files(models_dir=tmp_path)
    assert weights.is_file() and not list(tmp_path.glob("*.tmp*"))
    (tmp_path / DAT.name).unlink()  # the second load reads the safetensors file alone
    second = load_dlib_resnet(models_dir=tmp_path)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, net.state_dict()[name]), name


@needs_model
def test_embedder_gives_dlib_descriptors_from_lethe_normalised_images(net, monkeypatch):
    monkeypatch.setenv("LETHE_MODELS", str(MODELS))
    spec = FaceModelSpec(num_classes=3, embedder="dlib-resnet", image_size=150, pretrained="dlib")
    model = build_face_model(spec).eval()
    chip = synthetic_chip("noise", 0)
    x = (torch.from_numpy(chip).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.502
    with torch.no_grad():
        emb = model.embed(x)[0].double()
    ref = torch.tensor(FIXTURE["synthetic"][0]["descriptor"], dtype=torch.float64)
    assert 1 - torch.nn.functional.cosine_similarity(emb, ref, dim=0) < TOLERANCE


def test_embedder_settings_are_checked():
    with pytest.raises(ConfigError, match="128 dimensions"):
        build_face_model(FaceModelSpec(num_classes=3, embedder="dlib-resnet", embedding_dim=64))
    with pytest.raises(ConfigError, match="'dlib' or none"):
        build_face_model(FaceModelSpec(num_classes=3, embedder="dlib-resnet", pretrained="vggface2"))
    with pytest.raises(ConfigError, match="150x150"):
        build_face_model(FaceModelSpec(num_classes=3, embedder="dlib-resnet", image_size=112, pretrained="dlib"))
    model = build_face_model(FaceModelSpec(num_classes=3, embedder="dlib-resnet", image_size=150))  # untrained
    assert model.embed(torch.zeros(2, 3, 150, 150)).shape == (2, 128)


def test_cli_reports_a_missing_model_in_one_line(cli, faces_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("LETHE_MODELS", str(tmp_path / "none"))
    r = cli(
        "train",
        "--dataset",
        faces_spec,
        "--embedder",
        "dlib-resnet",
        "--pretrained",
        "dlib",
        "--size",
        "150",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "m.safetensors"),
    )
    assert r.code == 2 and "make dlib-models" in r.err and len(r.err_lines) == 1, r.err
