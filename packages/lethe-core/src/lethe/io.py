"""Atomic file output: a result appears complete or not at all, and inputs are never touched.

``atomic_path`` stages one file, ``atomic_paths`` several (all are moved into place together, or
none), ``atomic_folder`` a whole output folder. Each writes to temporaries beside the targets and
moves them into place only when its block succeeds; a failure removes every temporary and every
folder it created, so a failed run leaves nothing behind. ``file_lock`` lets processes that would
make the same cached file take turns, so the second loads what the first made."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: file_lock runs its block unlocked
    fcntl = None


def is_main_process() -> bool:
    """True unless this is a non-zero rank under ``torchrun`` (``RANK`` set and not 0)."""
    return int(os.environ.get("RANK", 0)) == 0


def main_print(*args: Any, **kwargs: Any) -> None:
    """``print`` on the main process only: a benchmark's progress lines appear once under torchrun."""
    if is_main_process():
        print(*args, **kwargs)


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    missing = []
    for item in (folder, *folder.parents):
        if item.exists():
            break
        missing.append(item)
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_folders(created: list[Path]) -> None:
    """Remove folders made by ``_make_parents``, deepest first, as far as they are empty."""
    for folder in sorted(set(created), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            continue


def _default_mode(path: Path) -> None:
    """Give a ``mkstemp`` file (mode 0600) the mode a plain ``open`` would have given it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _default_folder_mode(folder: Path) -> None:
    """Give a ``mkdtemp`` folder (mode 0700) the mode a plain ``mkdir`` would have given it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def _rename_error(err: OSError, renames: dict[str, str]) -> None:
    """Name the target instead of a temporary in ``err`` (what failed is writing the target)."""
    for attr in ("filename", "filename2"):
        name = getattr(err, attr, None)
        if not name:
            continue
        for tmp, target in renames.items():
            if str(name) == tmp or str(name).startswith(tmp + os.sep):
                setattr(err, attr, target + str(name)[len(tmp) :])
                break


@contextmanager
def atomic_paths(*paths: str | os.PathLike | None) -> Iterator[tuple[Path | None, ...]]:
    """Yield one temporary path beside each of ``paths`` (None for None); when the block succeeds,
    move them all into place, else remove them all: a run writes all of its outputs or none.

    Under ``torchrun`` only rank 0 writes: other ranks get scratch paths that are discarded, so
    every output of a distributed run is written once."""
    if not is_main_process():
        with tempfile.TemporaryDirectory(prefix="lethe-rank-") as scratch:
            yield tuple(None if p is None else Path(scratch) / f"{i}-{Path(p).name}" for i, p in enumerate(paths))
        return
    staged: list[tuple[Path, Path]] = []  # (temporary, target)
    temps: list[Path | None] = []
    created: list[Path] = []
    moved: list[tuple[Path, bool]] = []  # (target, existed before)
    done = False
    try:
        for path in paths:
            if path is None:
                temps.append(None)
                continue
            target = Path(path)
            try:
                created = _make_parents(target.parent) + created
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            except OSError as err:  # name the output, not the temporary tried for it
                if err.filename and Path(err.filename).name.startswith(f".{target.name}."):
                    err.filename = str(target)
                raise
            os.close(fd)
            staged.append((Path(tmp), target))
            temps.append(Path(tmp))
        yield tuple(temps)
        for tmp, _ in staged:
            _default_mode(tmp)
        for tmp, target in staged:
            existed = target.exists()
            os.replace(tmp, target)
            moved.append((target, existed))
        done = True
    except OSError as err:
        _rename_error(err, {str(tmp): str(target) for tmp, target in staged})
        raise
    finally:
        if not done:
            for target, existed in moved:  # a later move failed: take back the new files
                if not existed:
                    target.unlink(missing_ok=True)
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            _remove_folders(created)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block succeeds its files are moved into
    ``path`` (the folder itself when ``path`` does not exist yet, else file by file, replacing
    files of the same names and keeping the others), else it is removed with everything in it.

    Under ``torchrun``, ranks other than 0 get a scratch folder that is discarded."""
    if not is_main_process():
        with tempfile.TemporaryDirectory(prefix="lethe-rank-") as scratch:
            yield Path(scratch)
        return
    target = Path(path)
    created = _make_parents(target.parent)
    done = False
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as err:  # name the output, not the temporary tried for it
        if err.filename and Path(err.filename).name.startswith(f".{target.name}."):
            err.filename = str(target)
        _remove_folders(created)
        raise
    try:
        yield tmp
        _default_folder_mode(tmp)
        if target.is_dir():
            _merge_into(tmp, target)
        else:
            os.replace(tmp, target)
        done = True
    except OSError as err:
        _rename_error(err, {str(tmp): str(target)})
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_folders(created)


def _merge_into(source: Path, target: Path) -> None:
    """Move the files under ``source`` into the existing folder ``target`` (same relative names)."""
    for item in sorted(source.iterdir()):
        dest = target / item.name
        if item.is_dir() and dest.is_dir():
            _merge_into(item, dest)
        else:
            os.replace(item, dest)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def file_lock(path: str | os.PathLike, on_wait: Callable[[str], Any] | None = None) -> Iterator[None]:
    """Hold an exclusive lock for making ``path`` (on ``.<name>.lock`` beside it) while the block
    runs: a process that comes second waits (telling ``on_wait``) until the first is done, then
    finds the file made. The operating system drops the lock of a process that dies. Only saves
    duplicate work; what is written stays safe without it (atomic writes), so where ``fcntl`` is
    missing (Windows) the block runs unlocked. Under ``torchrun`` only rank 0 takes the lock: the
    ranks of one run make the file together (collectives), so none may wait for another."""
    if fcntl is None or not is_main_process():
        yield
        return
    target = Path(path)
    created = _make_parents(target.parent)
    lock = target.parent / f".{target.name}.lock"
    try:
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(f"waiting for another process making {target}")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:  # unless another process has put a lock file of its own there since
                with suppress(FileNotFoundError):
                    if os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                        lock.unlink()
    finally:
        if not target.exists():
            _remove_folders(created)
