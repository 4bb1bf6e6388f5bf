"""timm embedders (``timm:<name>``) with lethe's pretrained weights in their backbone, and
``--pretrained`` on ``lethe-face train``."""

from __future__ import annotations

import pytest
import torch
from face_helpers import RUNTIME

from lethe.checkpoint import read_spec
from lethe.errors import ConfigError
from lethe.pretrained import pretrained_state
from lethe_face import FaceModelSpec, build_face_model
from lethe_face.checkpoints import load_face_model

LITE0 = "timm:tf_efficientnet_lite0"
TRAIN = (
    "--size",
    "32",
    "--head",
    "linear",
    "--embedding-dim",
    "16",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--lr",
    "0.01",
)


def test_timm_embedder_takes_packaged_weights():
    reference = pretrained_state("efficientnet-lite0", LITE0)
    spec = FaceModelSpec(3, LITE0, "linear", image_size=32, embedding_dim=16, pretrained="efficientnet-lite0")
    model = build_face_model(spec).eval()
    backbone = model.embedder.backbone.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in backbone.items())
    assert "classifier.weight" not in backbone and model.embed(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    random = build_face_model(FaceModelSpec(3, LITE0, "linear", embedding_dim=16))
    assert not torch.equal(random.embedder.backbone.conv_stem.weight, reference["conv_stem.weight"])


def test_timm_embedder_bad_settings():
    with pytest.raises(ConfigError, match="timm has no model 'nonesuch'"):
        build_face_model(FaceModelSpec(3, "timm:nonesuch"))
    with pytest.raises(ConfigError, match="unknown pretrained weights 'vgg'"):
        build_face_model(FaceModelSpec(3, LITE0, pretrained="vgg"), load_pretrained=False)


def test_train_with_pretrained_timm_embedder(cli, faces_spec, tmp_path):
    out = tmp_path / "lite0.safetensors"
    r = cli(
        "train",
        "--dataset",
        faces_spec,
        *TRAIN,
        "--embedder",
        LITE0,
        "--pretrained",
        "efficientnet-lite0",
        "--out",
        out,
        *RUNTIME,
    )
    assert r.code == 0, r.err
    assert read_spec(out)["model"]["pretrained"] == "efficientnet-lite0"
    model, _ = load_face_model(out)
    assert model.embedder.fc.out_features == 16


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--embedder", "light-resnet", "--pretrained", "efficientnet-lite0"), "light-resnet has no pretrained"),
        (("--embedder", LITE0, "--pretrained", "nope"), "unknown pretrained weights 'nope'"),
        (("--embedder", "timm:resnet18", "--pretrained", "efficientnet-lite0"), "not timm:resnet18"),
        (("--embedder", "inception-resnet-v1", "--embedding-dim", "512", "--pretrained", "hub"), "'vggface2' or none"),
    ],
)
def test_train_bad_pretrained(cli, faces_spec, tmp_path, args, message):
    out = tmp_path / "o.safetensors"
    r = cli("train", "--dataset", faces_spec, *TRAIN, *args, "--out", out, *RUNTIME)
    assert r.code == 2 and len(r.err_lines) == 1 and message in r.err, r.err
    assert not out.exists()
