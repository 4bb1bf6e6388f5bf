"""``lethe-face`` under ``torchrun``: 2 CPU processes (gloo) against one process.

Training and DELETE/SVD shard their shuffled loaders across processes (same global batch and
steps, another sample order), so the models agree with one process up to training noise; every
output is written once, by rank 0.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import yaml
from cli_testing import assert_metrics_agree, assert_printed_once, listing, main_checked, torchrun, torchrun_checked
from face_helpers import RUNTIME

from lethe_face.cli import main

#: Long enough for both runs to learn the generated identities' training images (shorter recipes
#: land anywhere between 20 and 100 % with the sample order). Batch 16: BatchNorm statistics are
#: per process under DDP, and batches of 4 per process left the 2-process model at 40 %.
TRAIN = (
    "--size",
    "32",
    "--embedder",
    "light-resnet",
    "--head",
    "linear",
    "--width",
    "8",
    "--embedding-dim",
    "32",
    "--epochs",
    "30",
    "--batch-size",
    "16",
    "--lr",
    "0.05",
)
#: Points of identification accuracy on the training images by which the 2-process models may
#: differ from the 1-process ones (another sample order; one image is worth 2-10 points here).
#: Both DELETE runs unlearn the same one-process checkpoint.
TOLERANCE = 20.0

distributed = functools.partial(torchrun_checked, "lethe_face.cli", extra=RUNTIME)
single = functools.partial(main_checked, main, extra=RUNTIME)


def evaluate(checkpoint: Path, out: Path) -> dict:
    single("evaluate", "--checkpoint", checkpoint, "--forget", "person_2", "--json", out, "--pairs-per-identity", "5")
    return json.loads(out.read_text())["metrics"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, faces_spec) -> tuple[Path, Path]:
    """(folder written under torchrun, folder of the one-process runs)."""
    root, work = tmp_path_factory.mktemp("face-torchrun"), tmp_path_factory.mktemp("face-single")
    for folder, run in ((root, distributed), (work, single)):
        run("train", "--dataset", faces_spec, *TRAIN, "--out", folder / "train.safetensors")
    for folder, run in ((root, distributed), (work, single)):  # both unlearn the one-process model
        run(
            "unlearn",
            "--checkpoint",
            work / "train.safetensors",
            "--forget",
            "person_2",
            "--method",
            "delete",
            "--out",
            folder / "delete.safetensors",
        )
    config = work / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": faces_spec,
                "forget_sets": ["person_3"],
                "data": {"size": 32},
                "heads": ["linear"],
                "model": {"embedding_dim": 32, "width": 8},
                "recipe": {"epochs": 2, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0},
                "examples": 1,
                "evaluation": {"relearn_per_class": 0, "probe": False},
                "verification": {"pairs_per_identity": 5},
                "overrides": {"delete": {"epochs": 1, "lr": 0.01}},
                "progress": False,
            }
        )
    )
    done = torchrun("lethe_face.cli", ["bench", config, "--out", root / "bench"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert_printed_once(done.stdout, root / "bench" / "results.md")  # by rank 0 only
    return root, work


def test_outputs_are_written_once_by_rank_zero(runs):
    root, _ = runs
    assert listing(root) == [
        "bench",
        "bench/faces.png",
        "bench/results.json",
        "bench/results.md",
        "delete.safetensors",
        "train.safetensors",
    ]
    rows = json.loads((root / "bench" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["original", "retrain", "delete", "svd"]


@pytest.mark.parametrize("model", ["train", "delete"])
def test_two_processes_match_one_process(runs, model, tmp_path):
    metrics = [evaluate(folder / f"{model}.safetensors", tmp_path / f"{i}.json") for i, folder in enumerate(runs)]
    assert_metrics_agree(*metrics, ("retain_train", "forget_train"), TOLERANCE)
