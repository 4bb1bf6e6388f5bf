"""Helpers shared by the lethe_classification tests: the CLI options every call gets, a train command."""

from __future__ import annotations

from pathlib import Path

#: Options every CLI call in these tests gets: CPU, quiet.
RUNTIME = ("--device", "cpu", "--no-progress")


def train_args(spec: str, out: Path, *extra: str, arch: str = "small-cnn") -> list[str]:
    return [
        "train",
        "--dataset",
        spec,
        "--arch",
        arch,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        str(out),
        *extra,
    ]
