"""``lethe_face.tuning`` (``benchmarks/tune_face_delete.py``) on generated identities: a grid, its table,
and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lethe_face import tuning


@pytest.fixture(scope="module")
def tune():
    return tuning


def _config(faces_spec: str, tmp_path: Path) -> Path:
    cfg = {
        "task": "face",
        "dataset": faces_spec,
        "forget_sets": ["person_3"],
        "data": {"size": 32},
        "heads": ["linear"],
        "model": {"embedding_dim": 32, "width": 8},
        "recipe": {"epochs": 3, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0},
        "val_fraction": 0.2,
        "overrides": {"delete": {"epochs": 1}},
    }
    path = tmp_path / "face.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_grid_on_validation_images(faces_spec, tmp_path, tune, capsys):
    path = _config(faces_spec, tmp_path)
    out = tmp_path / "tuning"
    assert tune.main([str(path), "--head", "linear", "--grid", "lr=1e-3,1e-2", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert [r["overrides"] for r in result["runs"]] == [{"lr": 0.001}, {"lr": 0.01}]
    assert all(r["settings"]["epochs"] == 1 and r["settings"]["use_retain"] for r in result["runs"])
    assert set(result["original"]["validation"]) == {"forget", "retain"}
    assert result["header"]["forget"] == ["person_3"]
    assert "Chosen" in (out / "results.md").read_text()
    capsys.readouterr()
    assert tune.main([str(path), "--head", "cosine", "--grid", "lr=1e-3", "--out", str(tmp_path / "bad")]) == 2
    assert "not one of the config's heads" in capsys.readouterr().err
    assert tune.main([str(path), "--head", "linear", "--grid", "lrr=1", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_repeated_hold_out_averages_the_seeds(faces_spec, tmp_path, tune, capsys):
    path = _config(faces_spec, tmp_path)
    out = tmp_path / "tuning"
    assert tune.main([str(path), "--head", "linear", "--grid", "lr=1e-2", "--val-seeds", "0,1", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    [row] = result["runs"]
    assert len(row["per_seed"]) == 2
    for part in ("validation", "test"):
        for column in ("forget", "retain"):
            mean = sum(seed[part][column] for seed in row["per_seed"]) / 2
            assert row[part][column] == pytest.approx(mean)
    assert result["header"]["validation seeds (originals trained per seed; means shown)"] == [0, 1]
    assert result["header"]["validation images"].startswith("per seed: ")
