"""``lethe-backdoor`` under ``torchrun``: 2 CPU processes (gloo) against one process.

Poisoned training and the defences shard their shuffled loaders across processes (same global
batch and steps, another sample order), so the models agree with one process up to training
noise; every output is written once, by rank 0.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from bd_helpers import RUNTIME, make_image_folder
from cli_testing import assert_metrics_agree, assert_printed_once, listing, main_checked, torchrun_checked

from lethe_backdoor.cli import main

TRAIN = ("--arch", "small-cnn", "--epochs", "2", "--batch-size", "16", "--val-fraction", "0.25", "--target", "1")
DELETE = ("--method", "delete", "--budget", "0.1", "--set", "epochs=2", "--batch-size", "16")

#: Points of accuracy by which the 2-process models may differ from the 1-process ones: the sample
#: order differs, and a test image of these tiny sets is worth several points.
TOLERANCE = 25.0

distributed = functools.partial(torchrun_checked, "lethe_backdoor.cli", extra=RUNTIME)
single = functools.partial(main_checked, main, extra=RUNTIME)


def evaluate(checkpoint: Path, out: Path) -> dict:
    single("evaluate", "--checkpoint", checkpoint, "--json", out)
    return json.loads(out.read_text())["metrics"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """(folder written under torchrun, folder of the one-process runs)."""
    spec = f"imagefolder:{make_image_folder(tmp_path_factory.mktemp('bd-data') / 'data', 40, 10)}"
    root, work = tmp_path_factory.mktemp("bd-torchrun"), tmp_path_factory.mktemp("bd-single")
    for folder, run in ((root, distributed), (work, single)):
        run("train", "--dataset", spec, *TRAIN, "--out", folder / "train.safetensors")
        run("unlearn", "--checkpoint", folder / "train.safetensors", *DELETE, "--out", folder / "delete.safetensors")
    done = distributed(
        "bench",
        "--dataset",
        spec,
        *TRAIN[:-2],
        "--budget",
        "0.1",
        "--budgets",
        "0.1",
        "--methods",
        "delete,svd",
        "--set",
        "delete.epochs=1",
        "--set",
        "svd.tune=false",
        "--unlearn-batch-size",
        "16",
        "--examples",
        "1",
        "--out",
        root / "bench",
    )
    assert_printed_once(done.stdout, root / "bench" / "results.md")  # by rank 0 only
    return root, work


def test_outputs_are_written_once_by_rank_zero(runs):
    root, _ = runs
    assert listing(root) == [
        "bench",
        "bench/asr_vs_budget.png",
        "bench/examples.png",
        "bench/results.json",
        "bench/results.md",
        "delete.safetensors",
        "train.safetensors",
    ]
    rows = json.loads((root / "bench" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["backdoored", "delete", "svd"]


@pytest.mark.parametrize("model", ["train", "delete"])
def test_two_processes_match_one_process(runs, model, tmp_path):
    metrics = [evaluate(folder / f"{model}.safetensors", tmp_path / f"{i}.json") for i, folder in enumerate(runs)]
    assert_metrics_agree(*metrics, ("clean_acc", "asr"), TOLERANCE)
