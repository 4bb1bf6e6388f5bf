"""Tiny generated problems for the lethe_backdoor tests: nothing is downloaded."""

from __future__ import annotations

import contextlib

import pytest
import torch


@contextlib.contextmanager
def one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread avoids oversubscription.
    Restored afterwards, so other test directories are unaffected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield
