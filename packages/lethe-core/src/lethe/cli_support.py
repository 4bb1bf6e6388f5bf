"""Pieces every task CLI shares: runtime options, the engine they select, output checks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from lethe.engine import Engine
from lethe.errors import ConfigError, LetheError
from lethe.io import is_main_process


def add_runtime_args(p: argparse.ArgumentParser, seed_help: str = "seed for splits, initialisation and order") -> None:
    """``--data-root``, ``--device``, ``--seed``, ``--workers``, ``--compile`` and ``--no-progress``."""
    g = p.add_argument_group("runtime")
    g.add_argument("--data-root", default=None, help="dataset folder (default: $LETHE_DATA or ./data)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    g.add_argument("--seed", type=int, default=0, help=seed_help)
    g.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the trained network (pays on long trainings; off by default)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The Engine the runtime options ask for."""
    kwargs: dict = {"progress": not args.no_progress, "num_workers": args.workers, "seed": args.seed,
                    "compile": getattr(args, "compile", False)}
    if args.device:
        kwargs["device"] = args.device
    return Engine(**kwargs)


def check_new_output(out: str, *inputs: str | None) -> None:
    """Refuse an output path that names one of the inputs (inputs are never overwritten)."""
    target = Path(out).resolve()
    for item in inputs:
        if item and Path(item).resolve() == target:
            raise ConfigError(f"--out {out} would overwrite an input; choose a new file")


def one_line(err: BaseException) -> str:
    """The error as one line (errors re-raised from data-loader workers carry a traceback)."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    line = lines[-1] if len(lines) > 1 else lines[0]
    prefix, sep, rest = line.partition(": ")
    if sep and prefix.startswith("lethe.errors."):
        line = rest
    return line


def run_command(
    prog: str,
    parser: argparse.ArgumentParser,
    commands: Mapping[str, Callable[[argparse.Namespace], None]],
    argv: list[str] | None = None,
) -> int:
    """Parse ``argv`` and run its sub-command: a ``LetheError`` becomes one line on stderr and
    exit code 2 (no traceback), Ctrl-C exit code 130."""
    args = parser.parse_args(argv)
    try:
        commands[args.command](args)
    except LetheError as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


def print_report(path: str | Path) -> None:
    """Print a written report (``results.md``), on rank 0 only under ``torchrun``."""
    if is_main_process():
        print(Path(path).read_text())


def command_parser(prog: str, doc: str | None) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A task CLI's parser (its module docstring as description) and its sub-command group."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser, parser.add_subparsers(dest="command", required=True, metavar="COMMAND")


def add_unlearn_args(p: argparse.ArgumentParser, what: str, batch_size: int) -> None:
    """``unlearn``'s options shared by the task CLIs: checkpoint, what to forget, method and its
    settings, batch size, output checkpoint and run record (``what``: "classes", "identities")."""
    from lethe._registry import list_methods

    p.add_argument("--checkpoint", required=True, help="checkpoint written by 'train'")
    p.add_argument("--forget", required=True, help=f"{what} to forget: indices or names, comma separated")
    p.add_argument("--method", default="delete", help=f"one of: {', '.join(list_methods())}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a method setting, e.g. --set lr=1e-3 (repeatable)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--out", required=True, help="new checkpoint file for the unlearned model")
    p.add_argument("--record", default=None, help="also write the run record (JSON) here")
