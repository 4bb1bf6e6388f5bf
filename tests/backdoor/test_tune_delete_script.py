"""``lethe_backdoor.tuning`` (``benchmarks/tune_backdoor_delete.py``) on a tiny backdoored checkpoint."""

from __future__ import annotations

import json

import pytest
from bd_helpers import RUNTIME, make_image_folder

from lethe_backdoor import tuning
from lethe_backdoor.cli import main as backdoor_main


@pytest.fixture(scope="module")
def tune():
    return tuning


def test_tiny_run_writes_a_table_and_rejects_bad_settings(tmp_path, tune, capsys):
    root = make_image_folder(tmp_path / "data", 40, 10)
    ckpt = tmp_path / "bd.safetensors"
    train = [
        "train",
        "--dataset",
        f"imagefolder:{root}",
        "--arch",
        "small-cnn",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--val-fraction",
        "0.25",
        "--target",
        "1",
        "--out",
        str(ckpt),
        *RUNTIME,
    ]
    assert backdoor_main(train) == 0
    out = tmp_path / "tuning"
    args = [str(ckpt), "--budget", "4", "--grid", "lr=1e-3,1e-2", "--grid", "epochs=1", "--out", str(out), *RUNTIME]
    assert tune.main(args) == 0
    result = json.loads((out / "results.json").read_text())
    assert [r["overrides"] for r in result["runs"]] == [{"lr": 0.001, "epochs": 1}, {"lr": 0.01, "epochs": 1}]
    assert result["header"]["budget"]["stamped"] == 4
    for row in result["runs"]:
        assert set(row["validation"]) == set(row["test"]) == {"clean_acc", "asr", "robust_acc"}
    assert "Chosen" in (out / "results.md").read_text()
    capsys.readouterr()
    assert tune.main([str(ckpt), "--grid", "no_such_setting=1", "--out", str(tmp_path / "bad"), *RUNTIME]) == 2
    assert "no_such_setting" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
