"""``--image-size``, ``--mean`` and ``--std``: given, they replace the dataset's size and
statistics; a checkpoint records them and ``unlearn``/``evaluate`` reuse them."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import listing
from cls_helpers import train_args, write_images

from lethe.checkpoint import read_spec, save_checkpoint
from lethe.errors import CheckpointError, ConfigError
from lethe_classification.checkpoints import load_model
from lethe_classification.data import DatasetBundle, ImageData, align_classes
from lethe_classification.datasets import load_dataset, resize_images
from lethe_classification.preprocess import Preprocess, apply_preprocess

assert_clean_failure = functools.partial(clean_failure, prog="lethe-classify")


def _bundle(channels: int = 1) -> DatasetBundle:
    data = ImageData(torch.randint(0, 256, (6, channels, 8, 8), dtype=torch.uint8), torch.tensor([0, 1, 2] * 2))
    return DatasetBundle("toy", ["a", "b", "c"], data, data, (0.3,) * channels, (0.2,) * channels)


def test_preprocess_values_and_records():
    given = Preprocess(mean=(0.5,))
    recorded = Preprocess(32, (0.1, 0.2, 0.3), (0.3, 0.3, 0.3), 3)
    assert given.over(recorded) == Preprocess(32, (0.5,), (0.3, 0.3, 0.3), 3)
    assert Preprocess.from_dict(recorded.to_dict()) == recorded
    assert Preprocess().to_dict() == {} and Preprocess.from_dict(None) == Preprocess()
    with pytest.raises(CheckpointError, match="invalid preprocessing"):
        Preprocess.from_dict({"image_size": 0})
    with pytest.raises(ConfigError, match="channels must be 1 or 3"):
        Preprocess(channels=2)
    with pytest.raises(ConfigError, match="mean needs 1 or 3 values"):
        Preprocess(mean=(0.1, 0.2), channels=3)


def test_apply_converts_channels_and_normalisation():
    grey = _bundle(1)
    rgb = apply_preprocess(grey, Preprocess(channels=3))
    assert rgb.channels == 3 and torch.equal(rgb.train.images[:, 2], grey.train.images[:, 0])
    assert rgb.mean == (0.3,) * 3 and rgb.std == (0.2,) * 3
    back = apply_preprocess(_bundle(3), Preprocess(channels=1, mean=(0.5,), std=(0.25,)))
    assert back.channels == 1 and back.mean == (0.5,) and back.std == (0.25,)
    with pytest.raises(ConfigError, match="3 values but the images have 1"):
        apply_preprocess(grey, Preprocess(mean=(0.1, 0.2, 0.3)))


def test_resize_and_class_alignment():
    data = _bundle(3).train
    assert resize_images(data, 8) is data
    assert resize_images(data, 20).images.shape == (6, 3, 20, 20)
    aligned = align_classes(_bundle(), ["c", "a", "b"])
    assert aligned.classes == ["c", "a", "b"] and aligned.train.labels.tolist() == [1, 2, 0] * 2
    with pytest.raises(ConfigError, match="only in the data: \\['c'\\]"):
        align_classes(_bundle(), ["a", "b", "d"])


def test_train_records_options_and_unlearn_evaluate_reuse_them(cli, tiny_spec, tmp_path):
    original = tmp_path / "original.safetensors"
    result = cli(*train_args(tiny_spec, original, "--image-size", "24", "--mean", "0.5", "--std", "0.25"))
    assert result.code == 0, result.err
    info = read_spec(original)
    assert info["model"]["image_size"] == 24
    assert info["preprocess"] == {"image_size": 24, "mean": [0.5] * 3, "std": [0.25] * 3, "channels": 3}

    forgot = tmp_path / "forgot.safetensors"
    result = cli("unlearn", "--checkpoint", original, "--forget", "1", "--set", "epochs=1", "--batch-size", "16",
                 "--out", forgot)  # fmt: skip
    assert result.code == 0, result.err
    assert read_spec(forgot)["preprocess"] == info["preprocess"]

    result = cli("evaluate", "--checkpoint", original, "--forget", "1", "--image-size", "20")
    assert_clean_failure(result, "small-cnn cannot take 3x20x20 inputs")
    scores = []
    for extra in ((), ("--mean", "0.1")):
        report = tmp_path / f"eval{len(scores)}.json"
        result = cli("evaluate", "--checkpoint", original, "--forget", "1", "--no-probe", "--relearn-per-class", "0",
                     "--json", report, *extra)  # fmt: skip
        assert result.code == 0, result.err
        scores.append(json.loads(report.read_text())["metrics"])
    assert scores[0] != scores[1]  # another mean changes what the model sees


def test_checkpoint_without_recorded_preprocessing_uses_the_dataset(cli, trained, tmp_path):
    model, info = load_model(trained)
    old = tmp_path / "in" / "old.safetensors"
    save_checkpoint(model, old, {k: v for k, v in info.items() if k != "preprocess"})
    reports = []
    for path in (trained, old):
        reports.append(tmp_path / f"{path.stem}.json")
        result = cli("evaluate", "--checkpoint", path, "--forget", "1", "--no-probe", "--relearn-per-class", "0",
                     "--json", reports[-1])  # fmt: skip
        assert result.code == 0, result.err
    metrics = [json.loads(r.read_text())["metrics"] for r in reports]
    assert metrics[0] == metrics[1]


def test_image_folder_of_mixed_sizes_needs_an_image_size(cli, tmp_path):
    root = tmp_path / "mixed"
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 2)):
        for index, name in enumerate(("a", "b")):
            write_images(root / split / name, (200 * index, 100, 50), count, rng, size=12 + 4 * index)
    assert load_dataset(f"imagefolder:{root}", image_size=10).train.images.shape[-2:] == (10, 10)
    out = tmp_path / "out" / "m.safetensors"
    assert_clean_failure(cli(*train_args(f"imagefolder:{root}", out)), "differ in size", "--image-size")
    result = cli(*train_args(f"imagefolder:{root}", out, "--image-size", "16"))
    assert result.code == 0, result.err
    assert listing(tmp_path / "out") == ["m.safetensors"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--image-size", "0"), "image size must be at least 1"),
        (("--mean", "0.5,x"), "--mean takes comma-separated numbers"),
        (("--std", "0.5,0,0.5"), "std values must be positive"),
        (("--mean", "0.1,0.2"), "--mean has 2 values but the images have 3"),
    ],
)
def test_bad_preprocessing_options(cli, tiny_spec, tmp_path, args, needle):
    result = cli(*train_args(tiny_spec, tmp_path / "m.safetensors", *args))
    assert_clean_failure(result, needle)
    assert listing(tmp_path) == []
