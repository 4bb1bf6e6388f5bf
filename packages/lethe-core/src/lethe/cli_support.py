"""Pieces every task CLI shares: runtime options, the engine they select, output checks, and the
one-line error report.

Each sub-command is declared with the function that runs it (``command_parser``), each of its
outputs with ``add_output_arg`` (which also gives the command ``--overwrite``); ``run_command``
checks the runtime options and every declared output before the command runs
(``check_new_output``) and turns an error the user can fix (a ``LetheError``, an ``OSError`` such
as a full disk or a read-only folder, a device this machine does not have) into one line on
stderr and exit code 2. Commands write their outputs through ``lethe.io.atomic_paths`` /
``atomic_folder`` (a bench's folder through ``write_results``), so a run writes all of them or
none."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lethe._registry import method_settings
from lethe.engine import Engine
from lethe.errors import ConfigError, LetheError
from lethe.io import atomic_folder, is_main_process

#: namespace attribute holding a command's declared outputs: ``(dest, flag, folder)`` triples
OUTPUTS = "_lethe_outputs"
#: namespace attribute holding the function that runs the parsed sub-command (``command_parser``)
RUN = "_lethe_run"
#: whole-number options that must be at least 1 wherever a command has them
POSITIVE_OPTIONS = ("batch_size", "unlearn_batch_size")


def add_runtime_args(p: argparse.ArgumentParser, seed_help: str = "seed for splits, initialisation and order") -> None:
    """``--data-root``, ``--device``, ``--seed``, ``--workers``, ``--compile`` and ``--no-progress``."""
    g = p.add_argument_group("runtime")
    g.add_argument("--data-root", default=None, help="dataset folder (default: $LETHE_DATA or ./data)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    g.add_argument("--seed", type=int, default=0, help=seed_help)
    g.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the trained network (pays on long trainings; off by default)",
    )
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def parse_device(text: str, flag: str = "--device") -> torch.device:
    """The torch device ``text`` names, if this machine has it; a ConfigError otherwise."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{flag} {text!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{flag} {text}: this machine has no CUDA GPU (or no driver for it); use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{flag} {text}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{flag} {text}: Apple's MPS backend is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{flag} {text}: lethe runs on cpu, cuda or cuda:N (and mps)")
    return device


def check_runtime(args: argparse.Namespace) -> None:
    """Check the options every command shares, where it has them: ``--device`` (a device of this
    machine), ``--workers`` (0 or more), batch sizes (at least 1)."""
    if getattr(args, "device", None) is not None:
        parse_device(args.device)
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {workers}")
    for dest in POSITIVE_OPTIONS:
        value = getattr(args, dest, None)
        if value is not None and value < 1:
            raise ConfigError(f"--{dest.replace('_', '-')} must be at least 1, got {value}")


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The Engine the runtime options ask for."""
    check_runtime(args)
    kwargs: dict = {
        "progress": not args.no_progress,
        "num_workers": args.workers,
        "seed": args.seed,
        "compile": getattr(args, "compile", False),
    }
    if args.device:
        kwargs["device"] = args.device
    return Engine(**kwargs)


def add_output_arg(
    p: argparse.ArgumentParser, flag: str = "--out", *, help: str, required: bool = False, folder: bool = False
) -> None:
    """Add an output option (a new file, or with ``folder`` a new folder) that ``run_command``
    checks before the command runs; the first one also adds ``--overwrite`` to the command."""
    action = p.add_argument(flag, required=required, default=None, help=help)
    outputs = p.get_default(OUTPUTS)
    if outputs is None:
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="replace existing output files (an output folder: write into it, replacing files of "
            "the same names); inputs are never replaced",
        )
        outputs = ()
    p.set_defaults(**{OUTPUTS: (*outputs, (action.dest, flag, folder))})


Input = str | os.PathLike | None | tuple[str, str | os.PathLike | None]


def check_new_output(
    out: str | os.PathLike,
    *inputs: Input,
    overwrite: bool = False,
    flag: str = "--out",
    folder: bool = False,
    outputs: Sequence[tuple[str, str | os.PathLike]] = (),
) -> None:
    """Refuse an output (option ``flag``) that would lose data or cannot be written: one of
    ``inputs`` (paths, or ``(flag, path)`` pairs to name them: an input is never overwritten) or
    of the run's other ``outputs`` (``(flag, path)`` pairs), an existing file unless ``overwrite``
    (a ``folder`` output: a folder that holds files), a folder where a file is to be written (a
    file where a folder is), or a place that cannot be written (a read-only folder, a file
    standing where a folder should be)."""
    text = str(out)
    kind = "folder" if folder else "file"
    if not text.strip():
        raise ConfigError(f"{flag} is empty; name a new {kind}")
    target = Path(out).expanduser()
    resolved = target.resolve()
    for other, path in outputs:
        if Path(path).expanduser().resolve() == resolved:
            raise ConfigError(f"{flag} {text} would overwrite {other} (the same file); give each output its own file")
    for item in inputs:
        name, path = item if isinstance(item, tuple) else (None, item)
        if path is not None and str(path) and Path(path).expanduser().resolve() == resolved:
            what = f" ({name})" if name else ""
            raise ConfigError(f"{flag} {text} would overwrite an input{what}; choose a new {kind}")
    if folder:
        if target.exists() and not target.is_dir():
            raise ConfigError(f"{flag} {text} is a file, not a folder; name a new folder")
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise ConfigError(
                f"{flag} {text} is a folder that already holds files; choose a new folder, "
                "or pass --overwrite to write into it"
            )
        if target.is_dir() and not os.access(target, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {text}: the folder is not writable")
    else:
        if target.is_dir():
            raise ConfigError(f"{flag} {text} is a folder; name a new file")
        if target.exists() and not overwrite:
            raise ConfigError(f"{flag} {text} already exists; choose a new file, or pass --overwrite to replace it")
    parent = next(p for p in (target.absolute().parent, *target.absolute().parents) if p.exists())
    if not parent.is_dir():
        raise ConfigError(f"{flag} {text}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {text}: the folder {parent} is not writable (read-only, or not yours)")


def check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``check_new_output`` for every output the command declared (``add_output_arg``), against
    the existing files and folders its other options name and against the outputs before it."""
    outputs = getattr(args, OUTPUTS, None) or ()
    if not outputs:
        return
    dests = {dest for dest, _, _ in outputs}
    inputs: list[Input] = []
    for action in _command_parser(parser, args)._actions:
        value = getattr(args, action.dest, None)
        if action.dest in dests or not isinstance(value, str) or not value or not Path(value).exists():
            continue
        inputs.append((max(action.option_strings, key=len) if action.option_strings else action.dest, value))
    before: list[tuple[str, str]] = []
    for dest, flag, folder in outputs:
        value = getattr(args, dest)
        if value is not None:
            check_new_output(
                value, *inputs, overwrite=getattr(args, "overwrite", False), flag=flag, folder=folder, outputs=before
            )
            before.append((flag, value))


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The sub-parser of ``args.command`` (``parser`` itself when it has no sub-commands)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(getattr(args, "command", None), parser)
    return parser


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


def error_line(err: BaseException) -> str | None:
    """The one line reporting an error the user can fix: a ``LetheError`` (bad input), an
    ``OSError`` (a full disk, a read-only folder, a file that cannot be read), a GPU out of
    memory; None for anything else (a bug: its traceback is wanted)."""
    if isinstance(err, LetheError):
        return one_line(err)
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return f"the GPU ran out of memory ({one_line(err)[:200]}); try a smaller --batch-size"
    if isinstance(err, OSError):
        if err.filename and err.strerror:
            other = f" -> {err.filename2}" if err.filename2 else ""
            return f"{err.filename}{other}: {err.strerror}"
        return one_line(err)
    return None


def run_command(
    prog: str,
    parser: argparse.ArgumentParser,
    commands: Mapping[str, Callable[[argparse.Namespace], None]] | None = None,
    argv: list[str] | None = None,
) -> int:
    """Parse ``argv``, check its runtime options and outputs, and run its sub-command
    (``commands[args.command]``, or without ``commands`` the function it was declared with in
    ``command_parser``): an error the user can fix (``error_line``) becomes one line on stderr and
    exit code 2 (no traceback), Ctrl-C exit code 130."""
    args = parser.parse_args(argv)
    try:
        check_runtime(args)
        check_outputs(parser, args)
        run = getattr(args, RUN) if commands is None else commands[args.command]
        run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        line = error_line(err)
        if line is None:
            raise
        print(f"{prog}: error: {line}", file=sys.stderr)
        return 2
    return 0


def print_report(path: str | Path) -> None:
    """Print a written report (``results.md``), on rank 0 only under ``torchrun``."""
    if is_main_process():
        print(Path(path).read_text())


def write_results(folder: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Write a bench command's output folder ``folder`` (``write(path)`` fills it; every file or
    none, ``lethe.io.atomic_folder``), then print its ``results.md``."""
    with atomic_folder(folder) as out:
        write(out)
    print_report(Path(folder) / "results.md")


def check_method_settings(
    methods: Sequence[str], overrides: Mapping[str, Mapping[str, Any]] | None, settings: Callable | None = None
) -> None:
    """Every method is registered and every override names a setting of it (``settings(name,
    values)``: ``lethe.method_settings`` unless a task has its own registry, such as the backdoor
    defences); the benchmark configs' ``--check``."""
    settings = settings or method_settings
    for method in methods:
        settings(method)
    for method, values in (overrides or {}).items():
        settings(method, values)


def command_parser(
    prog: str, doc: str | None
) -> tuple[argparse.ArgumentParser, Callable[..., argparse.ArgumentParser]]:
    """A task CLI's parser (its module docstring as description) and the function that adds its
    sub-commands: ``command(name, run, help=..., aliases=...)`` returns the sub-command's parser,
    and ``run_command`` runs that sub-command as ``run(args)``."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], None], **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, **kwargs)
        p.set_defaults(**{RUN: run})
        return p

    return parser, command


def add_unlearn_args(p: argparse.ArgumentParser, what: str, batch_size: int) -> None:
    """``unlearn``'s options shared by the task CLIs: checkpoint, what to forget, method and its
    settings, batch size, output checkpoint and run record (``what``: "classes", "identities")."""
    from lethe._registry import list_methods

    p.add_argument("--checkpoint", required=True, help="checkpoint written by 'train'")
    p.add_argument("--forget", required=True, help=f"{what} to forget: indices or names, comma separated")
    p.add_argument("--method", default="delete", help=f"one of: {', '.join(list_methods())}")
    add_set_arg(p, "lr=1e-3")
    p.add_argument("--batch-size", type=int, default=batch_size)
    add_output_arg(p, "--out", required=True, help="new checkpoint file for the unlearned model")
    add_output_arg(p, "--record", help="also write the run record (JSON) here")


def add_set_arg(p: argparse.ArgumentParser, example: str, per_method: bool = False) -> None:
    """The repeatable ``--set`` option: ``KEY=VALUE`` overrides of the method's settings, or with
    ``per_method`` (a benchmark running several methods) ``METHOD.KEY=VALUE``."""
    metavar = "METHOD.KEY=VALUE" if per_method else "KEY=VALUE"
    help_text = f"override a method setting, e.g. --set {example} (repeatable)"
    p.add_argument("--set", action="append", default=[], metavar=metavar, help=help_text)


def save_unlearned(
    model: torch.nn.Module,
    record: Any,
    info: Mapping[str, Any],
    args: argparse.Namespace,
    save: Callable[[torch.nn.Module, Path, dict], None],
    *,
    extra: Sequence[tuple[str | None, Callable[[Path], None]]] = (),
    **forgotten: Any,
) -> None:
    """Write ``unlearn``'s outputs: the checkpoint ``args.out`` (``save``: the task's checkpoint
    writer) with ``info`` plus an ``unlearned`` entry (method, ``forgotten``, settings, seconds,
    source), the run record ``args.record`` if given and each ``extra`` ``(path or None, write)``
    given a path (e.g. a figure); all the files or none."""
    from lethe.io import atomic_paths, write_json_atomic

    unlearned = {"method": record.method, **forgotten}
    unlearned |= {"settings": record.settings, "seconds": record.seconds, "source": str(args.checkpoint)}
    with atomic_paths(args.out, args.record, *(path for path, _ in extra)) as (out, record_path, *paths):
        save(model, out, {**info, "unlearned": unlearned})
        if record_path:
            write_json_atomic(record_path, record.to_dict())
        for path, (_, write) in zip(paths, extra, strict=True):
            if path:
                write(path)
