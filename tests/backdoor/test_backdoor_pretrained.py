"""``lethe-backdoor train --pretrained``: a backdoored model starting from packaged weights, and
one clean error for an unknown name."""

from __future__ import annotations

import functools

import pytest
from bd_helpers import RUNTIME, make_image_folder
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import cli_runner, listing

from lethe.checkpoint import read_spec
from lethe_backdoor.cli import main

assert_clean_failure = functools.partial(clean_failure, prog="lethe-backdoor")
LITE0 = ("--arch", "timm:tf_efficientnet_lite0", "--epochs", "1", "--batch-size", "16", "--lr", "0.01")


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    return f"imagefolder:{make_image_folder(tmp_path_factory.mktemp('bd-data') / 'data', 12, 4)}"


@pytest.fixture
def cli(capsys):
    return cli_runner(main, capsys, RUNTIME)


def test_train_from_packaged_weights(cli, spec, tmp_path):
    out = tmp_path / "m.safetensors"
    result = cli("train", "--dataset", spec, *LITE0, "--pretrained", "efficientnet-lite0", "--out", out)
    assert result.code == 0, result.err
    info = read_spec(out)
    assert info["model"]["pretrained"] == "efficientnet-lite0" and "backdoor" in info


def test_unknown_pretrained_name(cli, spec, tmp_path):
    result = cli("train", "--dataset", spec, *LITE0, "--pretrained", "nope", "--out", tmp_path / "m.safetensors")
    assert_clean_failure(result, "unknown pretrained weights 'nope'", "efficientnet-lite0")
    assert listing(tmp_path) == []
