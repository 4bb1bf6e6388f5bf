"""lethe-classify and preprocessing: train records --image-size, --mean and --std, unlearn and
evaluate reuse them, and bad values fail cleanly."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import listing
from cls_helpers import train_args
from image_folders import write_images

from lethe.checkpoint import read_spec, save_checkpoint
from lethe_vision.checkpoints import load_model
from lethe_vision.datasets import load_dataset

assert_clean_failure = functools.partial(clean_failure, prog="lethe-classify")


def test_train_records_options_and_unlearn_evaluate_reuse_them(cli, tiny_spec, tmp_path):
    original = tmp_path / "original.safetensors"
    result = cli(*train_args(tiny_spec, original, "--image-size", "24", "--mean", "0.5", "--std", "0.25"))
    assert result.code == 0, result.err
    info = read_spec(original)
    assert info["model"]["image_size"] == 24
    assert info["preprocess"] == {"image_size": 24, "mean": [0.5] * 3, "std": [0.25] * 3, "channels": 3}

    forgot = tmp_path / "forgot.safetensors"
    result = cli(
        "unlearn", "--checkpoint", original, "--forget", "1", "--set", "epochs=1", "--batch-size", "16", "--out", forgot
    )
    assert result.code == 0, result.err
    assert read_spec(forgot)["preprocess"] == info["preprocess"]

    result = cli("evaluate", "--checkpoint", original, "--forget", "1", "--image-size", "20")
    assert_clean_failure(result, "small-cnn cannot take 3x20x20 inputs")
    scores = []
    for extra in ((), ("--mean", "0.1")):
        report = tmp_path / f"eval{len(scores)}.json"
        result = cli(
            "evaluate",
            "--checkpoint",
            original,
            "--forget",
            "1",
            "--no-probe",
            "--relearn-per-class",
            "0",
            "--json",
            report,
            *extra,
        )
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
        result = cli(
            "evaluate",
            "--checkpoint",
            path,
            "--forget",
            "1",
            "--no-probe",
            "--relearn-per-class",
            "0",
            "--json",
            reports[-1],
        )
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
