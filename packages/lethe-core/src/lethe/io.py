"""Atomic file output: a result appears complete or not at all, and inputs are never touched."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def is_main_process() -> bool:
    """True unless this is a non-zero rank under ``torchrun`` (``RANK`` set and not 0)."""
    return int(os.environ.get("RANK", 0)) == 0


def main_print(*args: Any, **kwargs: Any) -> None:
    """``print`` on the main process only: a benchmark's progress lines appear once under torchrun."""
    if is_main_process():
        print(*args, **kwargs)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    Under ``torchrun`` only rank 0 writes: other ranks get a scratch path that is discarded, so
    every output of a distributed run is written once."""
    if not is_main_process():
        with tempfile.TemporaryDirectory(prefix="lethe-rank-") as scratch:
            yield Path(scratch) / Path(path).name
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
