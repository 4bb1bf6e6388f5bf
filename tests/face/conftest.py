"""Generated identity folders and a CLI runner for the lethe_face tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from cli_testing import cli_runner
from face_helpers import make_identity_folder

from lethe_face.cli import main

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Tiny tensors on a shared 2-core machine: one intra-op thread avoids oversubscription.
torch.set_num_threads(1)

IDENTITIES = {f"person_{i}": 10 for i in range(6)}


@pytest.fixture(scope="session")
def faces_root(tmp_path_factory) -> Path:
    """Six learnable identities (colour + stripes), 10 images each at 32x32; one is grey PGM and
    one folder holds an undecodable file and a non-image."""
    root = make_identity_folder(tmp_path_factory.mktemp("faces") / "people", IDENTITIES, grey="person_5")
    (root / "person_0" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "person_0" / "notes.txt").write_text("ignored")
    return root


@pytest.fixture(scope="session")
def faces_spec(faces_root) -> str:
    return f"folder:{faces_root}"


@pytest.fixture
def cli(capsys):
    """Run ``lethe-face`` in-process; returns code, stdout, stderr."""
    return cli_runner(main, capsys, ())
