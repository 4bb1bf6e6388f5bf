"""lethe_classification.bench: the original model is cached by what it was trained from."""

from lethe.checkpoint import state_equal
from lethe.engine import Engine
from lethe_classification.bench import cached_original
from lethe_classification.datasets import load_dataset
from lethe_classification.pipeline import TrainRecipe


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
