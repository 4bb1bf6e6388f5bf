"""Pieces every task CLI shares: runtime options, the engine they select, output checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from lethe.engine import Engine
from lethe.errors import ConfigError


def add_runtime_args(p: argparse.ArgumentParser, seed_help: str = "seed for splits, initialisation and order") -> None:
    """``--data-root``, ``--device``, ``--seed``, ``--workers`` and ``--no-progress``."""
    g = p.add_argument_group("runtime")
    g.add_argument("--data-root", default=None, help="dataset folder (default: $LETHE_DATA or ./data)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    g.add_argument("--seed", type=int, default=0, help=seed_help)
    g.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The Engine the runtime options ask for."""
    kwargs: dict = {"progress": not args.no_progress, "num_workers": args.workers, "seed": args.seed}
    if args.device:
        kwargs["device"] = args.device
    return Engine(**kwargs)


def check_new_output(out: str, *inputs: str | None) -> None:
    """Refuse an output path that names one of the inputs (inputs are never overwritten)."""
    target = Path(out).resolve()
    for item in inputs:
        if item and Path(item).resolve() == target:
            raise ConfigError(f"--out {out} would overwrite an input; choose a new file")
