"""lethe_classification.bench: the original model and the oracles are cached by what they were
trained from."""

from lethe.checkpoint import state_equal
from lethe.engine import Engine
from lethe_classification.bench import BenchConfig, cached_oracle, cached_original
from lethe_vision.datasets import load_dataset
from lethe_vision.pipeline import TrainRecipe, make_splits


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
