"""Shared test setup: offline model hubs and a seeded torch for every test."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def seed_torch():
    """Every test starts from the same torch RNG state."""
    torch.manual_seed(0)
    yield
