"""The LiRA-style attack end to end on the tiny generated dataset (seconds)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

import lethe
from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe_classification.lira import LiraConfig, config_from_yaml, run_lira, write_lira
from lethe_vision.datasets import load_dataset
from lethe_vision.pipeline import TrainRecipe


def test_run_lira_rows_and_report(tiny_spec, tmp_path):
    bundle = load_dataset(tiny_spec)
    config = LiraConfig(
        arch="small-cnn",
        forget=(1,),
        methods=("gradient_ascent",),
        width=4,
        recipe=TrainRecipe(epochs=1, batch_size=16, warmup_epochs=0),
        pairs=3,
        samples=6,
    )
    result = run_lira(bundle, config, Engine(seed=0, progress=False), log=lambda *_: None)
    rows = {row["method"]: row for row in result["rows"]}
    assert list(rows) == ["original", "retrain", "retrain-2", "gradient_ascent"]
    assert "attack_acc" not in rows["retrain"]
    for role in ("original", "retrain-2", "gradient_ascent"):
        assert 0.0 <= rows[role]["attack_acc"] <= 100.0 and 0.0 <= rows[role]["attack_auc"] <= 100.0
        assert len(result["scores"][role]["method"]) == 3
    assert result["header"]["attacked forget-class training images"] == 6
    # each training of a pair from a seed of its own: neither oracle shares the original's init
    assert rows["original"]["seeds"] == [0, 1, 2] and rows["gradient_ascent"]["seeds"] == [0, 1, 2]
    assert rows["retrain"]["seeds"] == [1000, 1001, 1002] and rows["retrain-2"]["seeds"] == [2000, 2001, 2002]
    # what ran: the resolved settings and the epochs of every method row
    assert rows["gradient_ascent"]["settings"] == asdict(lethe.method_settings("gradient_ascent"))
    assert rows["gradient_ascent"]["epochs_per_pair"] == [rows["gradient_ascent"]["settings"]["epochs"]] * 3
    assert rows["original"]["epochs"] == 1 and "settings" not in rows["retrain"]
    assert 0.0 < rows["retrain-2"]["p_perm"] <= 1.0
    text = write_lira(result, tmp_path, "tiny")
    assert "| gradient_ascent |" in text and "Told apart from the retrain oracle" in text
    assert "Reference (oracle vs oracle, retrain-2)" in text and "- **gradient_ascent**: settings {" in text
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"])) and "phi" not in saved
    with np.load(tmp_path / "phi.npz") as phi:
        assert phi["retrain-2"].shape == (3, 6)


def test_config_from_yaml_checks_keys_and_pairs(tiny_spec):
    bundle = load_dataset(tiny_spec)
    base = {"dataset": tiny_spec, "model": {"arch": "small-cnn"}, "forget_sets": [2]}
    config = config_from_yaml({**base, "pairs": 4, "overrides": {"finetune": {"epochs": 2}}}, bundle)
    assert config.forget == (2,) and config.pairs == 4 and config.method_overrides["finetune"] == {"epochs": 2}
    assert config.variance == "pooled"
    for change, message in [
        ({"pair": 4}, "config has no key 'pair' (did you mean 'pairs'?)"),
        ({"pairs": 2}, "config.pairs must be an integer, at least 3, got 2"),
        ({"variance": "shared"}, "config.variance must be one of"),
        ({"forget_sets": [1, 2]}, "a LiRA config takes one forget set and one seed"),
        ({"forget": 2}, "config has no key 'forget'"),
    ]:
        with pytest.raises(ConfigError) as err:
            config_from_yaml({**base, **change}, bundle)
        assert str(err.value).startswith(message), str(err.value)
