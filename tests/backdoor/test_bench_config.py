"""Benchmark configs from YAML mappings (``benchmarks/run.py`` with ``task: backdoor``)."""

from __future__ import annotations

import json

import pytest
from bd_helpers import make_image_folder
from cli_testing import listing

from lethe.errors import ConfigError
from lethe_backdoor.bench import DEFAULT_METHODS, config_from_mapping, run_config


def test_config_from_a_yaml_mapping():
    config = config_from_mapping(
        {
            "task": "backdoor",
            "title": "t",
            "out": "backdoor/x",
            "dataset": "cifar10",
            "note": "n",
            "_path": "c.yaml",
            "arch": "cifar-resnet18",
            "width": 16,
            "attack": "blended",
            "attack_settings": {"alpha": 0.1},
            "recipe": {"epochs": 3, "batch_size": 64},
            "budgets": [0.01, "200"],
            "budget": 0.01,
            "overrides": {"delete": {"epochs": 5}},
            "sweep_methods": ["delete", "svd"],
        }
    )
    assert config.arch == "cifar-resnet18" and config.width == 16 and config.attack == "blended"
    assert config.attack_overrides == {"alpha": 0.1} and config.method_overrides == {"delete": {"epochs": 5}}
    assert config.recipe.epochs == 3 and config.recipe.batch_size == 64 and config.recipe.lr == 0.1
    assert config.budgets == ("0.01", "200") and config.budget == "0.01"
    assert config.methods == DEFAULT_METHODS and config.sweep_methods == ("delete", "svd")


def test_unknown_config_key():
    with pytest.raises(ConfigError, match="unknown backdoor benchmark setting.*budjet"):
        config_from_mapping({"arch": "small-cnn", "budjet": "0.01"})


def test_run_config_writes_the_results(tmp_path):
    root = make_image_folder(tmp_path / "data", 30, 5)
    out = tmp_path / "results"
    cfg = {
        "task": "backdoor",
        "dataset": f"imagefolder:{root}",
        "arch": "small-cnn",
        "title": "Tiny",
        "note": "a note",
        "recipe": {"epochs": 1, "batch_size": 16},
        "val_fraction": 0.3,
        "methods": ["delete"],
        "budget": "4",
        "budgets": ["4", "2"],
        "overrides": {"delete": {"epochs": 1}},
        "batch_size": 16,
        "_path": "benchmarks/configs/tiny.yaml",
    }
    lines = []
    run_config(cfg, out, log=lines.append)
    assert listing(out) == ["asr_vs_budget.png", "examples.png", "results.json", "results.md"]
    data = json.loads((out / "results.json").read_text())
    assert data["header"]["config"] == "benchmarks/configs/tiny.yaml" and data["header"]["note"] == "a note"
    assert [r["stamped"] for r in data["sweep"]] == [4, 2]
    assert (out / "results.md").read_text().startswith("# Tiny")
    assert any("delete" in line for line in lines)
