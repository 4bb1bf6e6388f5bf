"""lethe.io.file_lock: processes (here threads, each with its own lock file handle) that would make
the same cached file take turns, and the lock leaves nothing behind."""

import threading

import pytest

from lethe.io import file_lock, write_text_atomic


def test_the_second_maker_waits_and_finds_the_file_made(tmp_path):
    target = tmp_path / "cache" / "model.json"
    inside, second_waits = threading.Event(), threading.Event()
    made: list[str] = []
    said: list[str] = []

    def make(name: str, before_making=lambda: None) -> None:
        with file_lock(target, lambda line: (said.append(line), second_waits.set())):
            inside.set()
            before_making()
            if not target.exists():
                write_text_atomic(target, name)
                made.append(name)

    first = threading.Thread(target=make, args=("first", lambda: second_waits.wait(10)))
    first.start()
    inside.wait(10)
    make("second")
    first.join()
    assert made == ["first"] and target.read_text() == "first"
    assert said == [f"waiting for another process making {target}"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.json"]  # no lock file left


def test_a_failed_block_leaves_no_lock_and_no_folder(tmp_path):
    target = tmp_path / "new" / "cache" / "model.json"
    with pytest.raises(RuntimeError), file_lock(target):
        raise RuntimeError("training failed")
    assert not (tmp_path / "new").exists()
    with file_lock(target):  # and the next process is not kept waiting
        write_text_atomic(target, "made")
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.json"]


def test_ranks_other_than_zero_never_wait(tmp_path, monkeypatch):
    """Under torchrun the ranks of one run make a file together: a non-zero rank takes no lock."""
    target = tmp_path / "model.json"
    with file_lock(target):
        monkeypatch.setenv("RANK", "1")
        with file_lock(target, lambda line: pytest.fail(line)):  # would block if it took the lock
            pass
