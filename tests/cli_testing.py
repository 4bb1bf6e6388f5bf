"""Running a task CLI in-process for the tests of every task package (``tests/`` is on sys.path
because of its conftest.py, so each task's conftest imports this module by name)."""

from __future__ import annotations

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
