"""Safetensors checkpoints with the build spec in the metadata, and atomic writes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import lethe
from lethe.checkpoint import load_weights, read_spec, save_checkpoint, state_equal
from lethe.io import atomic_path, write_json_atomic, write_text_atomic


def net(width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.BatchNorm2d(width), nn.Flatten(), nn.Linear(width, 2))


SPEC = {"arch": "tiny", "num_classes": 2, "nested": {"forget": [1, 3]}, "lr": 0.1}


def test_round_trip(tmp_path):
    model = net()
    model[1].running_mean.uniform_()
    model[1].num_batches_tracked.fill_(7)
    path = save_checkpoint(model, tmp_path / "sub" / "model.safetensors", SPEC)
    assert path.is_file()
    assert read_spec(path) == SPEC

    fresh = net()
    assert not state_equal(fresh, model)
    loaded = load_weights(fresh, path)
    assert loaded is fresh
    assert state_equal(fresh, model)
    assert fresh[1].num_batches_tracked.item() == 7


def test_shared_tensors_are_saved(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model[1].weight = model[0].weight  # tied weights share storage
    save_checkpoint(model, tmp_path / "tied.safetensors", {})
    fresh = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    load_weights(fresh, tmp_path / "tied.safetensors")
    assert torch.equal(fresh[1].weight, model[0].weight)


@pytest.mark.parametrize(
    "other",
    [
        lambda: net(width=5),  # shape mismatch
        lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2)),  # missing keys
        lambda: nn.Sequential(*net(), nn.Linear(2, 2)),  # unexpected keys in the model
    ],
    ids=["shape", "keys", "extra-layer"],
)
def test_mismatch_raises_checkpoint_error(tmp_path, other):
    path = save_checkpoint(net(), tmp_path / "model.safetensors", SPEC)
    with pytest.raises(lethe.CheckpointError, match="does not match"):
        load_weights(other(), path)


def test_missing_file_raises(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(lethe.CheckpointError, match="not found"):
        read_spec(missing)
    with pytest.raises(lethe.CheckpointError):
        load_weights(net(), missing)


@pytest.mark.parametrize(
    "content",
    [b"", b"abc", b"\x08\x00\x00\x00\x00\x00\x00\x00{not json", b"x" * 100],
    ids=["empty", "short", "bad-header", "text"],
)
def test_garbage_file_raises(tmp_path, content):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(content)
    with pytest.raises(lethe.CheckpointError):
        read_spec(path)
    with pytest.raises(lethe.CheckpointError):
        load_weights(net(), path)


def test_safetensors_without_spec_raises(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(lethe.CheckpointError, match="no lethe build spec"):
        read_spec(path)


@pytest.mark.parametrize("spec_text", ["{not json", ""])
def test_corrupt_spec_raises_checkpoint_error(tmp_path, spec_text):
    """A corrupt build spec is a corrupt checkpoint: CheckpointError, not a JSONDecodeError."""
    path = tmp_path / "corrupt-spec.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"lethe_spec": spec_text})
    with pytest.raises(lethe.CheckpointError):
        read_spec(path)


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(lethe.CheckpointError):
        read_spec(tmp_path)
    with pytest.raises(lethe.CheckpointError):
        load_weights(net(), tmp_path)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    save_checkpoint(net(), tmp_path / "a.safetensors", SPEC)
    save_checkpoint(net(), tmp_path / "a.safetensors", {"v": 2})  # overwrite
    write_json_atomic(tmp_path / "r.json", {"x": [1, 2]})
    write_text_atomic(tmp_path / "t.txt", "hello")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "r.json", "t.txt"]
    assert read_spec(tmp_path / "a.safetensors") == {"v": 2}
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "t.txt").read_text() == "hello"


def test_atomic_write_keeps_default_permissions(tmp_path):
    """An atomically written file gets the same mode as a plainly written one (umask applies).

    ``tempfile.mkstemp`` creates its file with mode 0600; moved into place unchanged, results
    and checkpoints would be unreadable by the group and other users.
    """
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "atomic.txt", "x")
    save_checkpoint(net(), tmp_path / "m.safetensors", SPEC)
    expected = plain.stat().st_mode & 0o777
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == expected
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == expected


def test_failure_inside_atomic_path_keeps_old_file(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("half-written")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_failed_checkpoint_save_keeps_old_checkpoint(tmp_path):
    path = save_checkpoint(net(), tmp_path / "m.safetensors", SPEC)
    with pytest.raises(TypeError):
        save_checkpoint(net(), path, {"bad": object()})  # spec is not JSON-serialisable
    assert read_spec(path) == SPEC
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
