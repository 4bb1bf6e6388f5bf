"""``lethe-segment`` under ``torchrun``: 2 CPU processes (gloo) against one process.

Training shards the images across processes (same global batch and steps, another sample order,
so the models agree up to training noise). SVD streams each process's share of the forget and
retained images, in order, and sums the Gram matrices, so it matches one process up to float
rounding. Every output is written once, by rank 0.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from cli_testing import assert_metrics_agree, assert_printed_once, listing, torchrun_checked
from seg_helpers import RUNTIME, TINY_MODEL, train_args

from lethe_segmentation.checkpoints import load_model
from lethe_segmentation.cli import main

SVD = (
    "--forget",
    "car",
    "--method",
    "svd",
    "--set",
    "tune=false",
    "--set",
    "num_forget=4",
    "--retain-images",
    "4",
    "--batch-size",
    "4",
)

#: Points by which the 2-process training may differ from the 1-process one (another sample order).
TOLERANCE = 15.0

distributed = functools.partial(torchrun_checked, "lethe_segmentation.cli", extra=RUNTIME)


def evaluate(checkpoint: Path, out: Path) -> dict:
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--forget", "car", "--json", str(out), *RUNTIME]) == 0
    return json.loads(out.read_text())["metrics"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_spec, trained) -> Path:
    root = tmp_path_factory.mktemp("seg-torchrun")
    distributed(*train_args(tiny_spec, root / "train2.safetensors"))
    distributed("unlearn", "--checkpoint", trained, *SVD, "--out", root / "svd2.safetensors")
    assert main(["unlearn", "--checkpoint", str(trained), *SVD, "--out", str(root / "svd1.safetensors"), *RUNTIME]) == 0
    done = distributed(
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
        "delete,svd",
        "--set",
        "delete.epochs=1",
        "--set",
        "svd.tune=false",
        "--retain-images",
        "4",
        "--overlays",
        "1",
        "--unlearn-batch-size",
        "4",
        "--out",
        root / "bench",
    )
    assert_printed_once(done.stdout, root / "bench" / "results.md")  # by rank 0 only
    return root


def test_outputs_are_written_once_by_rank_zero(runs):
    bench = ["bench", "bench/iou_car.png", "bench/overlays_car.png", "bench/results.json", "bench/results.md"]
    assert listing(runs) == [*bench, "svd1.safetensors", "svd2.safetensors", "train2.safetensors"]
    rows = json.loads((runs / "bench" / "results.json").read_text())["runs"][0]["rows"]
    assert [r["method"] for r in rows] == ["original", "delete", "svd", "retrain"]


def test_two_process_training_matches_one_process(runs, trained, tmp_path):
    one = evaluate(trained, tmp_path / "one.json")
    two = evaluate(runs / "train2.safetensors", tmp_path / "two.json")
    assert_metrics_agree(one, two, ("miou_retain", "recall_forget"), TOLERANCE)


def test_two_process_svd_equals_one_process(runs):
    one, _ = load_model(runs / "svd1.safetensors")
    two, _ = load_model(runs / "svd2.safetensors")
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
