"""Benchmark configs from YAML mappings (``benchmarks/run.py`` with ``task: backdoor``, ``lethe.tasks``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bd_helpers import make_image_folder
from cli_testing import listing

from lethe.errors import ConfigError
from lethe.tasks import RunOptions, get_task
from lethe_backdoor.bench import DEFAULT_METHODS, TASK, BackdoorTaskConfig, bench_config, run_benchmark

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "benchmarks" / "configs").glob("backdoor-*.yaml"))


def _read(**values):
    return TASK.read({"dataset": "cifar10", "model": {"arch": "small-cnn"}, **values})


def test_the_task_is_registered():
    assert get_task("backdoor") is TASK and TASK.config is BackdoorTaskConfig


def test_config_from_a_yaml_mapping():
    config = TASK.read(
        {
            "task": "backdoor",
            "title": "t",
            "out": "backdoor/x",
            "dataset": "cifar10",
            "note": "n",
            "model": {"arch": "cifar-resnet18", "width": 16},
            "attack": "blended",
            "attack_settings": {"alpha": 0.1},
            "recipe": {"epochs": 3, "batch_size": 64},
            "budgets": [0.01, "200"],
            "budget": 0.01,
            "overrides": {"delete": {"epochs": 5}},
            "sweep_methods": ["delete", "svd"],
            "batch_size": 32,
            "seeds": [3],
        }
    )
    run = bench_config(config)
    assert run.arch == "cifar-resnet18" and run.width == 16 and run.attack == "blended"
    assert run.attack_overrides == {"alpha": 0.1} and run.method_overrides == {"delete": {"epochs": 5}}
    assert run.recipe.epochs == 3 and run.recipe.batch_size == 64 and run.recipe.lr == 0.1
    assert run.batch_size == 32 and run.seed == 3
    assert run.budgets == ("0.01", "200") and run.budget == "0.01"
    assert run.methods == DEFAULT_METHODS and run.sweep_methods == ("delete", "svd")
    assert config.forget_sets == () and config.title == "t" and config.out == "backdoor/x"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"budjet": "0.01"}, "config has no key 'budjet' (did you mean 'budget'?)"),
        ({"arch": "small-cnn"}, "config has no key 'arch'"),
        ({"seed": 0}, "config has no key 'seed' (did you mean 'seeds'?)"),
        ({"budget_source": "guess"}, "config.budget_source must be one of 'stamp', 'poisoned'"),
        ({"methods": []}, "config.methods must be a non-empty"),
        ({"examples": -1}, "config.examples must be an integer, at least 0"),
        ({"budget": "2.5"}, "budget share must be in (0, 1]"),
        ({"budgets": ["0.01", "lots"]}, "budget 'lots' is neither"),
        ({"seeds": [0, 1]}, "seeds: a backdoor run takes one seed"),
        ({"forget_sets": [0]}, "forget_sets: a backdoor run forgets the attack's target class"),
        ({"model": {"arch": "small-cnn", "pretrained": "x"}}, "model.pretrained: the backdoor benchmark"),
        ({"attack": "sleeper"}, "unknown attack 'sleeper'"),
        ({"attack_settings": {"sise": 4}}, "sise"),
        ({"methods": ["delete", "scrubb"]}, "scrubb"),
        ({"overrides": {"delete": {"lrr": 0.1}}}, "lrr"),
        ({"overrides": {"svd": {"exact": True}}, "methods": ["delete"]}, "settings are given for 'svd'"),
    ],
)
def test_bad_configs_fail_in_one_line(values, message):
    with pytest.raises(ConfigError) as err:
        _read(**values)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_committed_configs_check(path):
    config = TASK.read(yaml.safe_load(path.read_text()))
    assert config.out.startswith("backdoor/") and config.model.width == 8 and config.seeds == (0,)


def test_runner_checks_a_committed_config_and_refuses_a_misspelt_key(tmp_path):
    runner = [sys.executable, str(ROOT / "benchmarks" / "run.py")]
    good = subprocess.run([*runner, str(CONFIGS[0]), "--check"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIGS[0].read_text().replace("sweep_methods:", "sweep_method:"))
    result = subprocess.run([*runner, str(bad), "--check"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "did you mean 'sweep_methods'?" in result.stderr


def test_run_benchmark_writes_the_results(tmp_path):
    root = make_image_folder(tmp_path / "data", 30, 5)
    out = tmp_path / "results"
    config = TASK.read(
        {
            "task": "backdoor",
            "dataset": f"imagefolder:{root}",
            "model": {"arch": "small-cnn"},
            "title": "Tiny",
            "note": "a note",
            "recipe": {"epochs": 1, "batch_size": 16},
            "val_fraction": 0.3,
            "methods": ["delete"],
            "budget": "4",
            "budgets": ["4", "2"],
            "overrides": {"delete": {"epochs": 1}},
            "batch_size": 16,
        }
    )
    with pytest.raises(ConfigError, match="this config runs seed 0"):
        run_benchmark(config, out, RunOptions(seeds=(1,)))
    lines = []
    run_benchmark(config, out, RunOptions(config_path="benchmarks/configs/tiny.yaml", seeds=(0,)), log=lines.append)
    assert listing(out) == ["asr_vs_budget.png", "examples.png", "results.json", "results.md"]
    data = json.loads((out / "results.json").read_text())
    assert data["header"]["config"] == "benchmarks/configs/tiny.yaml" and data["header"]["note"] == "a note"
    assert data["header"]["seed"] == 0 and data["header"]["budget"] == "4"
    assert [r["stamped"] for r in data["sweep"]] == [4, 2]
    assert (out / "results.md").read_text().startswith("# Tiny")
    assert any("delete" in line for line in lines)
