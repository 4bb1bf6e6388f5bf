"""``lethe-classify`` under ``torchrun``: 2 CPU processes (gloo) against one process.

The distributed run shards the training loaders (global batch kept), sums SVD's Gram matrices
across processes, evaluates on all data in every process and writes each output once, on rank 0.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from cli_testing import assert_printed_once, main_checked, torchrun_checked
from cls_helpers import RUNTIME, train_args
from image_folders import CLASSES, make_image_folder

from lethe_classification.cli import main
from lethe_vision.checkpoints import load_model

distributed = functools.partial(torchrun_checked, "lethe_classification.cli", extra=RUNTIME)
single = functools.partial(main_checked, main, extra=RUNTIME)


def evaluate(checkpoint: Path, out: Path) -> dict:
    single("evaluate", "--checkpoint", checkpoint, "--forget", "1", "--json", out)
    return json.loads(out.read_text())["metrics"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """21 training images a class (20 after the validation holdout): the two shards cover every
    sample once, with no DistributedSampler padding."""
    data = make_image_folder(tmp_path_factory.mktemp("even") / "data", {c: (21, 4) for c in CLASSES})
    tiny_spec = f"imagefolder:{data}"
    root = tmp_path_factory.mktemp("torchrun")
    trained = root.parent / "original.safetensors"
    single(*train_args(tiny_spec, trained, "--epochs", "6"))
    distributed(*train_args(tiny_spec, root / "train2.safetensors", "--epochs", "6"))
    single(*train_args(tiny_spec, root / "train1.safetensors", "--epochs", "6"))
    for n, run in ((2, distributed), (1, single)):
        run(
            "unlearn",
            "--checkpoint",
            trained,
            "--forget",
            "1",
            "--method",
            "svd",
            "--set",
            "tune=false",
            "--out",
            root / f"svd{n}.safetensors",
        )
    done = distributed(
        "bench",
        "--dataset",
        tiny_spec,
        "--arch",
        "small-cnn",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--forget",
        "1",
        "--methods",
        "delete,svd",
        "--set",
        "delete.epochs=2",
        "--out",
        root / "bench",
    )
    assert_printed_once(done.stdout, root / "bench" / "results.md")  # by rank 0 only
    return root


def test_outputs_are_written_once_by_rank_zero(runs):
    assert sorted(p.name for p in runs.iterdir()) == [
        "bench",
        "svd1.safetensors",
        "svd2.safetensors",
        "train1.safetensors",
        "train2.safetensors",
    ]
    assert sorted(p.name for p in (runs / "bench").iterdir()) == ["per_class.png", "results.json", "results.md"]
    rows = json.loads((runs / "bench" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["original", "retrain", "delete", "svd"]


def test_two_process_training_matches_one_process(runs, tmp_path):
    one = evaluate(runs / "train1.safetensors", tmp_path / "one.json")
    two = evaluate(runs / "train2.safetensors", tmp_path / "two.json")
    # Same global batch and steps; the sample order differs, so agreement is up to training noise.
    for key in ("retain_test", "forget_test"):
        assert abs(one[key] - two[key]) <= 10.0, (key, one[key], two[key])


def test_two_process_svd_matches_one_process(runs, tmp_path):
    """Each process streams half the samples and the Gram matrices are summed (their exact equality
    with one process is tested in tests/core/test_distributed.py); the forget images pass through
    the random training augmentation, so here the models agree up to that noise."""
    one, _ = load_model(runs / "svd1.safetensors")
    two, _ = load_model(runs / "svd2.safetensors")
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=5e-2, msg=name)
    m1 = evaluate(runs / "svd1.safetensors", tmp_path / "one.json")
    m2 = evaluate(runs / "svd2.safetensors", tmp_path / "two.json")
    for key in ("retain_test", "forget_test"):
        assert abs(m1[key] - m2[key]) <= 10.0, (key, m1[key], m2[key])
