"""Shared test setup: offline model hubs, a seeded torch for every test, and the tiny generated
image-folder dataset of the image-task tests (vision, classification)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from image_folders import CLASSES, TEST_PER_CLASS, TRAIN_PER_CLASS, make_image_folder  # noqa: E402


@pytest.fixture(autouse=True)
def seed_torch():
    """Every test starts from the same torch RNG state."""
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """Four learnable classes (colours), 20 train and 8 test 16x16 RGB images each."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    return make_image_folder(root, {c: (TRAIN_PER_CLASS, TEST_PER_CLASS) for c in CLASSES})


@pytest.fixture(scope="session")
def tiny_spec(tiny_root) -> str:
    return f"imagefolder:{tiny_root}"
