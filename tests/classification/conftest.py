"""A CLI runner, a dataset with holes and trained checkpoints for the lethe_classification tests
(the tiny image-folder dataset is tests/conftest.py's).

Everything is generated in temporary folders: no download, no real dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_testing import cli_runner
from cls_helpers import RUNTIME, train_args
from image_folders import make_image_folder

from lethe_classification.cli import main

# Tiny tensors on a shared 2-core machine: one intra-op thread avoids oversubscription
# (measured here: SVD on small-cnn takes 8 s with the default threads and 0.2 s with one).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def gap_spec(tmp_path_factory) -> str:
    """A dataset with holes: ``c2`` has ONE training image (the stratified validation split takes
    it, so its forget split is empty) and ``c3`` has training images but no test images."""
    root = tmp_path_factory.mktemp("gap") / "data"
    make_image_folder(root, {"c0": (12, 4), "c1": (12, 4), "c2": (1, 4), "c3": (12, 0)})
    return f"imagefolder:{root}"


@pytest.fixture
def cli(capsys):
    """Run ``lethe-classify`` in-process with the CPU/quiet options; returns code, stdout, stderr."""
    return cli_runner(main, capsys, RUNTIME)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_spec) -> Path:
    """A small-cnn checkpoint trained (1 epoch) by the CLI on the tiny dataset; read-only."""
    out = tmp_path_factory.mktemp("trained") / "original.safetensors"
    assert main([*train_args(tiny_spec, out), *RUNTIME]) == 0
    return out


@pytest.fixture(scope="session")
def gap_trained(tmp_path_factory, gap_spec) -> Path:
    """A small-cnn checkpoint trained on the dataset with holes; read-only."""
    out = tmp_path_factory.mktemp("gap-trained") / "original.safetensors"
    assert main([*train_args(gap_spec, out), *RUNTIME]) == 0
    return out
