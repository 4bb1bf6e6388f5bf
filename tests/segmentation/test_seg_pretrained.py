"""Pretrained encoders: lethe's packaged EfficientNet-Lite0 weights go into smp's timm-universal
encoder (classifier and head convolution dropped), and ``--pretrained`` fails cleanly."""

from __future__ import annotations

import functools

import pytest
import torch
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import listing
from seg_helpers import TINY_MODEL

from lethe.checkpoint import read_spec
from lethe.errors import ConfigError
from lethe.pretrained import pretrained_state
from lethe_segmentation.checkpoints import load_model
from lethe_segmentation.models import ModelSpec, build_model, initial_model

LITE0 = (
    "--arch",
    "Unet",
    "--encoder",
    "tu-tf_efficientnet_lite0",
    "--encoder-depth",
    "3",
    "--decoder-channels",
    "16,8,8",
)
assert_clean_failure = functools.partial(clean_failure, prog="lethe-segment")


def test_packaged_weights_fill_the_timm_encoder():
    reference = pretrained_state("efficientnet-lite0", "timm:tf_efficientnet_lite0")
    model = initial_model(ModelSpec("Unet", "tu-tf_efficientnet_lite0", 3, pretrained="efficientnet-lite0"))
    encoder = model.encoder.model.state_dict()
    assert encoder and all(torch.equal(v, reference[k]) for k, v in encoder.items())
    random = build_model(ModelSpec("Unet", "tu-tf_efficientnet_lite0", 3))
    assert not torch.equal(random.encoder.model.conv_stem.weight, reference["conv_stem.weight"])
    assert "pretrained" not in ModelSpec("Unet", "resnet18", 3).to_dict()


def test_file_weights_fill_an_smp_encoder(tmp_path):
    import torchvision

    resnet = torchvision.models.resnet18()
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    model = initial_model(ModelSpec("Unet", "resnet18", 3, pretrained=f"file:{tmp_path / 'resnet18.pth'}"))
    assert torch.equal(model.encoder.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    with pytest.raises(ConfigError, match="not both"):
        initial_model(ModelSpec("Unet", "resnet18", 3, encoder_weights="imagenet", pretrained="hub"))


def test_train_with_pretrained_encoder(cli, tiny_spec, tmp_path):
    out = tmp_path / "lite0.safetensors"
    result = cli(
        "train",
        "--dataset",
        tiny_spec,
        *LITE0,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--pretrained",
        "efficientnet-lite0",
        "--out",
        out,
    )
    assert result.code == 0, result.err
    assert read_spec(out)["model"]["pretrained"] == "efficientnet-lite0"
    model, _ = load_model(out)  # rebuilt without reading the pretrained weights
    assert model.encoder.model.conv_stem.weight.shape == (32, 3, 3, 3)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ((*LITE0, "--pretrained", "imagenet"), ("unknown pretrained weights 'imagenet'", "efficientnet-lite0")),
        ((*TINY_MODEL, "--pretrained", "efficientnet-lite0"), ("are for timm:tf_efficientnet_lite0", "mobilenet_v2")),
        ((*LITE0, "--pretrained", "efficientnet-lite0", "--encoder-weights", "imagenet"), ("give one",)),
        ((*LITE0, "--pretrained", "file:/no/such/weights.pth"), ("weights file not found",)),
        ((*TINY_MODEL, "--pretrained", "hub"), ("cannot get the hub weights of smp:mobilenet_v2",)),
    ],
)
def test_bad_pretrained_encoder(cli, tiny_spec, tmp_path, args, needles):
    out = tmp_path / "m.safetensors"
    result = cli("train", "--dataset", tiny_spec, *args, "--epochs", "1", "--out", out)
    assert_clean_failure(result, *needles)
    assert listing(tmp_path) == []
