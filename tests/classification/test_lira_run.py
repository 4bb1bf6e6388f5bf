"""The LiRA-style attack end to end on the tiny generated dataset (seconds)."""

from __future__ import annotations

import json

import pytest

from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe_classification.lira import LiraConfig, config_from_yaml, run_lira, write_lira
from lethe_vision.datasets import load_dataset
from lethe_vision.pipeline import TrainRecipe


def test_run_lira_rows_and_report(tiny_spec, tmp_path):
    bundle = load_dataset(tiny_spec)
    config = LiraConfig(arch="small-cnn", forget=(1,), methods=("gradient_ascent",), width=4,
                        recipe=TrainRecipe(epochs=1, batch_size=16, warmup_epochs=0), pairs=3, samples=6)  # fmt: skip
    result = run_lira(bundle, config, Engine(seed=0, progress=False), log=lambda *_: None)
    rows = {row["method"]: row for row in result["rows"]}
    assert list(rows) == ["original", "retrain", "retrain-2", "gradient_ascent"]
    assert "attack_acc" not in rows["retrain"]
    for role in ("original", "retrain-2", "gradient_ascent"):
        assert 0.0 <= rows[role]["attack_acc"] <= 100.0 and 0.0 <= rows[role]["attack_auc"] <= 100.0
        assert len(result["scores"][role]["method"]) == 3
    assert result["header"]["attacked forget-class training images"] == 6
    text = write_lira(result, tmp_path, "tiny")
    assert "| gradient_ascent |" in text and "Told apart from the retrain oracle" in text
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == json.loads(json.dumps(result["rows"]))


def test_config_from_yaml_checks_keys_and_pairs(tiny_spec):
    bundle = load_dataset(tiny_spec)
    config = config_from_yaml({"arch": "small-cnn", "forget": 2, "pairs": 4, "overrides": {"finetune": {"epochs": 2}}},
                              bundle)  # fmt: skip
    assert config.forget == (2,) and config.pairs == 4 and config.method_overrides["finetune"] == {"epochs": 2}
    with pytest.raises(ConfigError, match="unknown LiRA config keys"):
        config_from_yaml({"arch": "small-cnn", "forget": 2, "pair": 4}, bundle)
    with pytest.raises(ConfigError, match="pairs must be at least 3"):
        config_from_yaml({"arch": "small-cnn", "forget": 2, "pairs": 2}, bundle)
