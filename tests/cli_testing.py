"""Running a task CLI in-process for the tests of every task package (``tests/`` is on sys.path
because of its conftest.py, so each task's conftest imports this module by name)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


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
