"""``lethe_segmentation.speed`` (``task: speed-segmentation`` of benchmarks/run.py) end to end on generated
scenes with a tiny smp Unet."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from seg_helpers import make_seg_folder

from lethe.errors import ConfigError
from lethe.tasks import RunOptions, get_task
from lethe_segmentation import speed

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def one_thread():
    threads, _ = torch.get_num_threads(), torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(root: Path, cache: Path, **extra) -> dict:
    """A segmentation speed config mapping; ``extra`` replaces top-level keys, ``svd_steps`` entries
    are merged into the defaults here."""
    cfg = {
        "task": "speed-segmentation",
        "title": "tiny seg speed",
        "out": "unused",
        "dataset": f"folder:{root}",
        "forget_sets": ["car"],
        "model": {"arch": "Unet", "encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 8, 8]},
        "recipe": {"epochs": 1, "batch_size": 4, "lr": 0.1, "warmup_epochs": 0},
        "cache": str(cache),
        "svd_steps": {"samples": [2, 4], "batch_size": 2, "reference_max_patches": 50, "isolate": False},
    }
    cfg["svd_steps"].update(extra.pop("svd_steps", {}))
    return {**cfg, **extra}


def _run(cfg: dict, out: Path, options: RunOptions = RunOptions()) -> dict:
    return speed.run_benchmark(speed.TASK.read(cfg), out, options, log=lambda _: None)


def test_segmentation_speed_run_writes_tables(tmp_path):
    root = make_seg_folder(tmp_path / "data")
    out = tmp_path / "out"
    result = _run(_cfg(root, tmp_path / "cache"), out, RunOptions(config_path="seg.yaml"))
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md"]
    saved = json.loads((out / "results.json").read_text())
    steps = [(m, n) for n in (2, 4) for m in ("ours", "reference")]
    assert [(r["method"], r["samples"]) for r in saved["svd"]] == steps
    assert all(r["retain_samples"] == r["forget_samples"] == r["samples"] for r in saved["svd"])
    assert all(0 <= r["recall_forget"] <= 100 and 0 <= r["miou_retain"] <= 100 for r in saved["svd"])
    assert all(r["vs_original_training"] > 0 for r in saved["svd"])
    names = [t["method"] for t in saved["targets"]]
    assert names[0].startswith("SVD ours >= 3x faster") and names[-1].startswith("SVD ours peak memory")
    text = (out / "results.md").read_text()
    assert text.startswith("# tiny seg speed") and "recall_forget_std" in text and "met_within_spread" in text
    assert saved["header"]["config"] == "seg.yaml" and saved["header"]["SVD alphas (fixed, no tuning)"] == [100, 3]
    assert (tmp_path / "cache" / "original.safetensors").is_file()  # the segmentation bench's cache file
    again = _run(_cfg(root, tmp_path / "cache", svd_steps={"samples": [2]}), tmp_path / "b")
    assert again["original"] == result["original"]  # the cached original, not a new one


def test_sides_are_disjoint_and_ordered_by_class_share(tmp_path):
    root = make_seg_folder(tmp_path / "data")
    with pytest.raises(ConfigError, match="do not fit"):
        _run(_cfg(root, tmp_path / "cache", svd_steps={"samples": [7]}), tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"svd_steps": {"samplez": [9]}}, "samplez"),
        ({"svd_steps": {"samples": [4, 0]}}, "svd_steps.samples"),
        ({"overrides": {"svd": {"alpha_r": -1}}}, "overrides.svd: .*alpha"),
        ({"svd_samples": [4]}, "svd_samples"),
        ({"batch_size": 8}, "svd_steps.batch_size"),
        ({"forget_sets": ["car", "road"]}, "one forget set"),
        ({"overrides": {"delete": {"epochs": 1}}}, "measures only svd"),
        ({"model": {"encoder": "nonesuch"}}, "encoder"),
        ({"data": {"size": "96by128"}}, "data.size"),
    ],
)
def test_check_rejects_bad_configs(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        speed.TASK.read(_cfg(tmp_path, tmp_path, **change))


def test_committed_segmentation_speed_config_checks():
    for path in sorted(BENCHMARKS.glob("configs/speed-*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        if cfg["task"] == "speed-segmentation":
            assert get_task(cfg["task"]) is speed.TASK
            config = speed.TASK.read(cfg)
            assert config.svd_steps.samples == (16, 160) and config.svd == {"alpha_r": 300, "alpha_f": 10}
            assert config.data.resolution().size == (96, 128) and config.forget_sets == ("car",)
