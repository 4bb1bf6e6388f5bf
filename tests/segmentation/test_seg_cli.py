"""``lethe-segment`` end to end on a generated images/ + labels/ folder, and its handling of bad input.

Bad input must give exactly one line on stderr naming the problem, exit code 2, and leave no
output (nor a stray temporary file) behind.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import listing, weights_differ
from PIL import Image
from seg_helpers import CLASSES, TINY_MODEL, make_seg_folder, train_args

from lethe.checkpoint import read_spec
from lethe.cli_support import one_line
from lethe.errors import DataError
from lethe_segmentation.cli import build_parser

SVD_FAST = ("--set", "tune=false", "--set", "num_forget=4", "--retain-images", "4")


assert_clean_failure = functools.partial(clean_failure, prog="lethe-segment")


def test_console_script_help():
    script = Path(sys.executable).with_name("lethe-segment")
    assert script.is_file(), script
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("train", "unlearn", "evaluate", "bench"):
        assert command in done.stdout


@pytest.mark.parametrize("command", ["train", "unlearn", "evaluate", "bench"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--out" in out or command == "evaluate"
    if command == "unlearn":
        assert "delete" in out and "svd" in out and "random_label" in out


# --- end to end -------------------------------------------------------------------------------------


def test_train_oracle_unlearn_evaluate(cli, tiny_spec, trained, tmp_path):
    oracle = tmp_path / "oracle.safetensors"
    deleted = tmp_path / "delete.safetensors"
    svd = tmp_path / "svd.safetensors"
    record = tmp_path / "svd-record.json"
    report = tmp_path / "eval.json"

    info = read_spec(trained)
    assert info["task"] == "segmentation" and info["dataset"] == tiny_spec
    assert info["classes"] == list(CLASSES)
    assert info["model"]["arch"] == "Unet" and info["model"]["encoder"] == "mobilenet_v2"
    assert info["model"]["num_classes"] == 4 and info["model"]["encoder_weights"] is None
    assert info["ignored_classes"] == [] and len(info["train_log"]) == 30

    result = cli(*train_args(tiny_spec, oracle, "--forget-as-ignore", "car"))
    assert result.code == 0, result.err
    assert read_spec(oracle)["ignored_classes"] == [3]

    before = trained.read_bytes()
    result = cli(
        "unlearn",
        "--checkpoint",
        trained,
        "--forget",
        "car",
        "--method",
        "delete",
        "--set",
        "epochs=10",
        "--set",
        "lr=0.01",
        "--set",
        "forget_pixel_weight=5",
        "--batch-size",
        "4",
        "--out",
        deleted,
    )
    assert result.code == 0, result.err
    assert "delete forgot car" in result.out
    assert trained.read_bytes() == before and weights_differ(trained, deleted)
    unlearned = read_spec(deleted)["unlearned"]
    assert unlearned["method"] == "delete" and unlearned["forget_classes"] == [3]
    assert unlearned["settings"]["forget_pixel_weight"] == 5.0 and unlearned["source"] == str(trained)

    result = cli(
        "unlearn",
        "--checkpoint",
        trained,
        "--forget",
        "3",
        "--method",
        "svd",
        *SVD_FAST,
        "--batch-size",
        "4",
        "--out",
        svd,
        "--record",
        record,
    )
    assert result.code == 0, result.err
    data = json.loads(record.read_text())
    assert data["method"] == "svd" and data["extra"]["forget_samples"] == 4 and data["extra"]["retain_images"] == 4
    assert weights_differ(trained, svd)

    result = cli("evaluate", "--checkpoint", deleted, "--oracle", oracle, "--json", report)
    assert result.code == 0, result.err
    output = json.loads(report.read_text())
    assert output["forget"] == [3]  # taken from the checkpoint's record
    metrics = output["metrics"]
    for key in (
        "miou_retain",
        "iou_forget",
        "recall_forget",
        "recall_forget_train",
        "pixel_accuracy",
        "predicted_forget",
        "forget_to_gap",
    ):
        assert 0.0 <= metrics[key] <= 100.0, key
    assert len(metrics["iou"]) == 4 and sum(metrics["forget_to"]) == pytest.approx(100.0)
    assert np.array(metrics["confusion"]).shape == (4, 4)
    assert metrics["oracle"]["recall_forget"] < 5.0  # the oracle never learnt car
    assert "recall_forget" in result.out and "forgotten pixels predicted as" in result.out
    assert listing(tmp_path) == sorted(p.name for p in (oracle, deleted, svd, record, report))


def test_evaluate_without_forget_classes(cli, trained):
    result = cli("evaluate", "--checkpoint", trained)
    assert result.code == 0, result.err
    assert "miou_retain" in result.out and "iou: ground" in result.out


def test_bench_writes_tables_and_overlays(cli, tiny_spec, tmp_path):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--dataset",
        tiny_spec,
        *TINY_MODEL,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--forget",
        "car",
        "--forget",
        "tree",
        "--methods",
        "delete,svd,random_label",
        "--set",
        "delete.epochs=1",
        "--set",
        "random_label.epochs=1",
        "--set",
        "svd.grid_r=10,100",
        "--set",
        "svd.grid_f=3",
        "--retain-images",
        "4",
        "--overlays",
        "2",
        "--unlearn-batch-size",
        "4",
        "--cache",
        tmp_path / "cache",
        "--out",
        out,
    )
    assert result.code == 0, result.err
    assert listing(out) == [
        "iou_car.png",
        "iou_tree.png",
        "overlays_car.png",
        "overlays_tree.png",
        "results.json",
        "results.md",
    ]
    cached = ["original.safetensors", "retrain_car.safetensors", "retrain_tree.safetensors"]
    assert listing(tmp_path / "cache") == cached
    data = json.loads((out / "results.json").read_text())
    assert [run["forget"] for run in data["runs"]] == [[3], [2]]
    for run in data["runs"]:
        rows = {row["method"]: row for row in run["rows"]}
        assert list(rows) == ["original", "delete", "svd", "random_label", "retrain"]
        for row in rows.values():
            for key in (
                "miou_retain",
                "recall_forget",
                "iou",
                "forget_to",
                "forget_to_gap",
                "seconds",
                "seconds_vs_retrain",
                "miou_retain_drop",
            ):
                assert key in row, (row["method"], key)
        assert rows["retrain"]["forget_to_gap"] == 0.0 and rows["retrain"]["seconds_vs_retrain"] == 1.0
        assert rows["original"]["miou_retain_drop"] == 0.0
        assert rows["svd"]["extra"]["tuned"] is True
    header = data["header"]
    assert "Unet, encoder mobilenet_v2" in header["model"] and header["test images"] == 4
    report = (out / "results.md").read_text()
    assert report.startswith("# Class forgetting in segmentation")
    assert "## Forgetting car (3)" in report and "## Forgetting tree (2)" in report
    assert "| retrain |" in report and "Where the car (3) test pixels went" in report
    assert (out / "overlays_car.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second run reuses the cached original and oracles
    again = tmp_path / "again"
    result = cli(
        "bench",
        "--dataset",
        tiny_spec,
        *TINY_MODEL,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--forget",
        "car",
        "--methods",
        "delete",
        "--set",
        "delete.epochs=1",
        "--overlays",
        "0",
        "--cache",
        tmp_path / "cache",
        "--out",
        again,
    )
    assert result.code == 0, result.err
    rows = json.loads((again / "results.json").read_text())["runs"][0]["rows"]
    first = json.loads((out / "results.json").read_text())["runs"][0]["rows"]
    assert rows[0]["seconds"] == first[0]["seconds"] and rows[-1]["seconds"] == first[-1]["seconds"]
    assert listing(again) == ["iou_car.png", "results.json", "results.md"]


# --- bad input: one line, exit 2, nothing written ------------------------------------------------------


@pytest.fixture
def broken(tmp_path):
    """A fresh copy of the tiny dataset that a test may damage."""
    return make_seg_folder(tmp_path / "broken", {"train": 4, "test": 2})


def test_unknown_class_name(cli, trained, tmp_path):
    out = tmp_path / "x.safetensors"
    result = cli("unlearn", "--checkpoint", trained, "--forget", "truck", "--out", out)
    assert_clean_failure(result, "unknown class 'truck'", "ground, sky, tree, car")
    assert not out.exists()


def test_class_index_out_of_range(cli, trained, tmp_path):
    result = cli("unlearn", "--checkpoint", trained, "--forget", "7", "--out", tmp_path / "x.safetensors")
    assert_clean_failure(result, "class index 7 is out of range", "0..3")
    result = cli("evaluate", "--checkpoint", trained, "--forget", "car,9")
    assert_clean_failure(result, "class index 9")


def test_oracle_class_name_is_checked(cli, tiny_spec, tmp_path):
    result = cli(*train_args(tiny_spec, tmp_path / "o.safetensors", "--forget-as-ignore", "bus"))
    assert_clean_failure(result, "unknown class 'bus'")
    assert listing(tmp_path) == []


def test_label_value_beyond_class_count(cli, broken, tmp_path):
    label = broken / "train" / "labels" / "002.png"
    raw = np.array(Image.open(label))
    raw[3, 3] = 9
    Image.fromarray(raw).save(label)
    out = tmp_path / "m.safetensors"
    result = cli(*train_args(f"folder:{broken}", out))
    assert_clean_failure(result, str(label), "value 9", "4 classes")
    assert not out.exists()


def test_image_and_label_of_different_sizes(cli, broken, tmp_path):
    label = broken / "test" / "labels" / "001.png"
    Image.fromarray(np.zeros((32, 20), dtype=np.uint8)).save(label)
    result = cli(*train_args(f"folder:{broken}", tmp_path / "m.safetensors"))
    assert_clean_failure(result, str(broken / "test" / "images" / "001.png"), str(label), "32x20")


def test_bench_bad_class_fails_before_training(cli, tiny_spec, tmp_path):
    result = cli(
        "bench", "--dataset", tiny_spec, *TINY_MODEL, "--forget", "car", "--forget", "Truck", "--out", tmp_path / "b"
    )
    assert_clean_failure(result, "unknown class 'truck'")
    assert listing(tmp_path) == []


def test_bad_model_and_size(cli, tiny_spec, tmp_path):
    out = tmp_path / "m.safetensors"
    result = cli("train", "--dataset", tiny_spec, "--arch", "Unet", "--encoder", "resnet7", "--out", out)
    assert_clean_failure(result, "unknown encoder 'resnet7'")
    result = cli(
        "train", "--dataset", tiny_spec, "--arch", "FPN", "--encoder", "resnet18", "--size", "40x40", "--out", out
    )
    assert_clean_failure(result, "size 40x40 is not divisible by the model stride 32")
    result = cli("train", "--dataset", tiny_spec, "--arch", "Segnet", "--out", out)
    assert_clean_failure(result, "unknown architecture 'Segnet'")
    result = cli("train", "--dataset", tiny_spec, "--size", "32", "--out", out)
    assert_clean_failure(result, "--size must be HEIGHTxWIDTH")
    assert not out.exists()


def test_missing_dataset_checkpoint_and_method(cli, trained, tmp_path):
    result = cli("train", "--dataset", f"folder:{tmp_path / 'none'}", "--out", tmp_path / "m.safetensors")
    assert_clean_failure(result, "dataset folder not found")
    result = cli("evaluate", "--checkpoint", tmp_path / "none.safetensors")
    assert_clean_failure(result, "checkpoint not found")
    result = cli(
        "unlearn", "--checkpoint", trained, "--forget", "car", "--method", "scrub", "--out", tmp_path / "x.safetensors"
    )
    assert_clean_failure(result, "'scrub' has no per-pixel form")
    result = cli(
        "unlearn", "--checkpoint", trained, "--forget", "car", "--set", "nope=1", "--out", tmp_path / "x.safetensors"
    )
    assert_clean_failure(result, "no setting 'nope'")
    result = cli("unlearn", "--checkpoint", trained, "--forget", "car", "--out", trained)
    assert_clean_failure(result, "would overwrite an input")
    assert listing(tmp_path) == []


def test_worker_errors_become_one_line():
    wrapped = DataError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        "last):\n  File x\nlethe.errors.DataError: label /d/a.png has value 9"
    )
    assert one_line(wrapped) == "label /d/a.png has value 9"
    assert one_line(DataError("plain")) == "plain"
