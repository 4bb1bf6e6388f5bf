"""Running a task CLI in-process for the tests of every task package (``tests/`` is on sys.path
because of its conftest.py, so each task's conftest imports this module by name)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file


@dataclass
class Result:
    """Exit code and captured output of one CLI call."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def cli_runner(main: Callable[[list[str]], int], capsys, extra: Sequence[str] = ()) -> Callable[..., Result]:
    """``run(*args)``: call ``main`` with ``args`` (and ``extra``) and capture what it printed."""

    def run(*args: object) -> Result:
        capsys.readouterr()  # drop anything printed before
        code = main([*map(str, args), *extra])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_clean_failure(result: Result, *needles: str, prog: str) -> str:
    """Exit 2 and exactly one stderr line, starting with ``prog``, naming the problem: each needle
    appears in it (``"a|b"``: either may name it). Returns the line."""
    assert result.code == 2, (result.code, result.err)
    lines = result.err_lines
    assert len(lines) == 1, result.err
    line = lines[0]
    assert line.startswith(f"{prog}: error: "), line
    for needle in needles:
        assert any(n.lower() in line.lower() for n in needle.split("|")), (needle, line)
    assert "Traceback" not in result.err
    return line


def listing(folder: Path) -> list[str]:
    """Every file under ``folder`` (hidden temporaries included), relative names."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def weights_differ(a: Path, b: Path) -> bool:
    """Whether two safetensors checkpoints with the same tensor names hold different weights."""
    sa, sb = load_file(str(a)), load_file(str(b))
    assert sa.keys() == sb.keys()
    return any(not torch.equal(sa[k], sb[k]) for k in sa)


def free_port() -> int:
    """A TCP port nobody listens on now (for torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(module: str, args: Sequence[object], nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m module args`` under ``torchrun --nproc_per_node nproc``: CPU processes with the
    gloo backend, one intra-op thread each, offline."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_port",
        str(free_port()),
        "-m",
        module,
        *map(str, args),
    ]
    env = {
        "OMP_NUM_THREADS": "1",
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "MPLBACKEND": "Agg",
    }
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def torchrun_checked(module: str, *args: object, extra: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """``torchrun`` of ``module`` with ``args`` then ``extra``, asserting that it succeeded."""
    done = torchrun(module, [*args, *extra])
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def main_checked(main: Callable[[list[str]], int], *args: object, extra: Sequence[str] = ()) -> None:
    """Call a CLI's ``main`` in-process with ``args`` then ``extra``, asserting exit code 0."""
    assert main([*map(str, args), *extra]) == 0


def assert_metrics_agree(one: dict, two: dict, keys: Sequence[str], tolerance: float) -> None:
    """Each of ``keys`` differs by at most ``tolerance`` (points) between two metric dicts."""
    for key in keys:
        assert abs(one[key] - two[key]) <= tolerance, (key, one[key], two[key])


def assert_printed_once(stdout: str, report: Path) -> None:
    """The report's title line appears exactly once in ``stdout`` (only rank 0 prints it)."""
    title = report.read_text().splitlines()[0]
    assert title.startswith("# ") and stdout.count(title) == 1, (title, stdout[-2000:])
