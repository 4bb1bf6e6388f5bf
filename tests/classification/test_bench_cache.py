"""lethe_classification.bench: the original model and the oracles are cached by what they were
trained from, and their evaluations by their weights and the evaluation's settings."""

import copy
import threading
import time
from dataclasses import replace

import torch
from torch import nn

from lethe.checkpoint import state_equal
from lethe.engine import Engine
from lethe.relearn import RelearnSettings
from lethe_classification import bench
from lethe_classification.bench import BenchConfig, cached_oracle, cached_original, run_bench, weights_digest
from lethe_vision.datasets import load_dataset
from lethe_vision.pipeline import EvalOptions, Evaluation, TrainRecipe, make_splits


def test_cached_original_is_trained_once_per_recipe_and_seed(tiny_spec, tmp_path):
    bundle = load_dataset(tiny_spec)
    engine = Engine(device="cpu", progress=False)
    recipe = TrainRecipe(epochs=1, batch_size=16, lr=0.05, warmup_epochs=0)
    said: list[str] = []
    args = (bundle, "small-cnn", 4, recipe, 0, 0.1, engine, tmp_path / "cache", said.append)
    first, info = cached_original(*args)
    assert "cached" not in info and info["train_seconds"] > 0 and said[-1].startswith("original model saved")
    again, again_info = cached_original(*args)
    assert said[-1].startswith("original model loaded") and again_info["cached"].startswith(str(tmp_path))
    assert state_equal(first, again)
    assert again_info["train_seconds"] == info["train_seconds"]
    other_seed = (*args[:4], 1, *args[5:])
    cached_original(*other_seed)
    assert said[-1].startswith("original model saved")  # another seed is another model
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_cached_oracle_is_trained_once_per_forget_set(tiny_spec, tmp_path):
    bundle = load_dataset(tiny_spec)
    engine = Engine(device="cpu", progress=False)
    recipe = TrainRecipe(epochs=1, batch_size=16, lr=0.05, warmup_epochs=0)
    config = BenchConfig(
        arch="small-cnn", width=4, forget=(0,), methods=(), val_fraction=0.1, recipe=recipe, cache=str(tmp_path)
    )
    said: list[str] = []
    splits = make_splits(bundle, (0,), 0.1, 0)
    first, info = cached_oracle(bundle, config, splits, engine, said.append)
    assert said[-1].startswith("retrain model saved") and info["forget"] == [0]
    again, again_info = cached_oracle(bundle, config, splits, engine, said.append)
    assert said[-1].startswith("retrain model loaded") and state_equal(first, again)
    assert again_info["train_seconds"] == info["train_seconds"]
    cached_oracle(bundle, config, make_splits(bundle, (1,), 0.1, 0), engine, said.append)
    assert said[-1].startswith("retrain model saved")  # another forget set is another oracle
    assert len(list(tmp_path.glob("retrain-*.safetensors"))) == 2


def test_original_and_oracle_are_evaluated_once_per_weights_and_options(tiny_spec, tmp_path):
    bundle = load_dataset(tiny_spec)
    engine = Engine(device="cpu", progress=False)
    recipe = TrainRecipe(epochs=1, batch_size=16, lr=0.05, warmup_epochs=0)
    evaluation = EvalOptions(probe=False, relearn_per_class=2, relearn_settings=RelearnSettings(steps=3))
    config = BenchConfig(
        arch="small-cnn",
        width=4,
        forget=(0,),
        methods=(),
        val_fraction=0.1,
        recipe=recipe,
        cache=str(tmp_path),
        evaluation=evaluation,
    )
    said: list[str] = []
    first = run_bench(bundle, config, engine, said.append)
    assert not any(s.startswith("evaluation loaded") for s in said)
    assert len(list(tmp_path.glob("evaluation-*.json"))) == 2  # original and oracle
    said.clear()
    again = run_bench(bundle, config, engine, said.append)
    assert sum(s.startswith("evaluation loaded") for s in said) == 2
    assert [r["forget_test"] for r in again["rows"]] == [r["forget_test"] for r in first["rows"]]
    assert again["rows"][1]["per_class_test"] == first["rows"][1]["per_class_test"]
    said.clear()
    other = replace(config, evaluation=replace(evaluation, relearn_per_class=0))
    run_bench(bundle, other, engine, said.append)
    assert not any(s.startswith("evaluation loaded") for s in said)  # other options: evaluated again


def test_weights_digest_follows_the_values_not_the_memory_format():
    model = nn.Conv2d(3, 4, 3)
    digest = weights_digest(model)
    assert weights_digest(copy.deepcopy(model).to(memory_format=torch.channels_last)) == digest
    with torch.no_grad():
        model.bias[0] += 1e-6
    assert weights_digest(model) != digest


def test_parts_started_together_evaluate_the_original_once(tiny_spec, tmp_path, monkeypatch):
    """Two parts of a suite that start at once: the second waits for the first's evaluation."""
    bundle = load_dataset(tiny_spec)
    engine = Engine(device="cpu", progress=False)
    splits = make_splits(bundle, (0,), 0.1, 0)
    model = nn.Linear(4, len(bundle.classes))  # only its weights' digest is read: the evaluation is faked
    second_waits = threading.Event()
    evaluated, results, said = [], [], []

    def evaluation_the_second_part_waits_for(*args):
        second_waits.wait(10)
        evaluated.append(1)
        return Evaluation({"forget_test": 1.0}, [1.0] * len(bundle.classes))

    def log(line: str) -> None:
        said.append(line)
        second_waits.set()

    def part() -> None:
        results.append(bench.cached_evaluation(model, splits, engine, EvalOptions(), tmp_path, log))

    monkeypatch.setattr(bench, "evaluate_model", evaluation_the_second_part_waits_for)
    first = threading.Thread(target=part)
    first.start()
    deadline = time.monotonic() + 10
    while not list(tmp_path.glob(".evaluation-*.lock")) and time.monotonic() < deadline:  # the first has it
        time.sleep(0.01)
    part()
    first.join()
    assert len(evaluated) == 1 and results[0] == results[1]
    assert said[0].startswith("waiting for another process making") and said[1].startswith("evaluation loaded")
