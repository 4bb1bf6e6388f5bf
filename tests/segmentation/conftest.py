"""Generated segmentation data, a trained tiny model and a CLI runner for the lethe_segmentation tests.

Everything is generated in temporary folders: no download, no real dataset.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from cli_testing import cli_runner  # noqa: E402
from seg_helpers import RUNTIME, make_seg_folder, train_args  # noqa: E402

from lethe.engine import Engine  # noqa: E402
from lethe_segmentation.checkpoints import load_model  # noqa: E402
from lethe_segmentation.cli import main  # noqa: E402
from lethe_segmentation.datasets import load_dataset  # noqa: E402
from lethe_segmentation.pipeline import make_splits  # noqa: E402
from lethe_segmentation.transforms import Resolution  # noqa: E402

# Tiny tensors on a shared 2-core machine: one intra-op thread avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """12 train and 4 test 32x32 scenes (ground, sky, tree, car every other image, a void strip)."""
    return make_seg_folder(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def tiny_spec(tiny_root) -> str:
    return f"folder:{tiny_root}"


@pytest.fixture
def cli(capsys):
    """Run ``lethe-segment`` in-process with the CPU/quiet options; returns code, stdout, stderr."""
    return cli_runner(main, capsys, RUNTIME)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_spec) -> Path:
    """A tiny Unet checkpoint trained by the CLI on the generated data (it learns ``car``); read-only."""
    out = tmp_path_factory.mktemp("trained") / "original.safetensors"
    assert main([*train_args(tiny_spec, out), *RUNTIME]) == 0
    return out


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine(device="cpu", progress=False)


@pytest.fixture(scope="session")
def original(trained):
    """(model, splits) of the trained checkpoint."""
    model, info = load_model(trained)
    bundle = load_dataset(info["dataset"])
    splits = make_splits(bundle, Resolution.from_dict(info["resolution"]), info["split"]["val_fraction"])
    return model, splits
