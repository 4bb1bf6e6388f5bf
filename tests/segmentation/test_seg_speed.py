"""``lethe_segmentation.speed`` (``task: speed-segmentation`` of benchmarks/run.py) end to end on generated
scenes with a tiny smp Unet."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from seg_helpers import make_seg_folder

from lethe.errors import ConfigError
from lethe_segmentation import speed

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def one_thread():
    threads, _ = torch.get_num_threads(), torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(root: Path, cache: Path, **extra) -> dict:
    return {
        "task": "speed-segmentation", "title": "tiny seg speed", "out": "unused", "dataset": f"folder:{root}",
        "forget": "car", "arch": "Unet", "encoder": "resnet18", "encoder_depth": 3,
        "decoder_channels": [16, 8, 8], "recipe": {"epochs": 1, "batch_size": 4, "lr": 0.1, "warmup_epochs": 0},
        "cache": str(cache), "svd_samples": [2, 4], "svd_batch_size": 2, "max_patches": 50, "isolate": False,
        **extra,
    }  # fmt: skip


def test_segmentation_speed_run_writes_tables(tmp_path):
    root = make_seg_folder(tmp_path / "data")
    out = tmp_path / "out"
    result = speed.run_config(_cfg(root, tmp_path / "cache"), out, log=lambda _: None)
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
    assert (tmp_path / "cache" / "original.safetensors").is_file()  # the segmentation bench's cache file
    again = speed.run_config(_cfg(root, tmp_path / "cache", svd_samples=[2]), tmp_path / "b",
                                          log=lambda _: None)  # fmt: skip
    assert again["original"] == result["original"]  # the cached original, not a new one


def test_sides_are_disjoint_and_ordered_by_class_share(tmp_path):
    root = make_seg_folder(tmp_path / "data")
    with pytest.raises(ConfigError, match="do not fit"):
        speed.run_config(_cfg(root, tmp_path / "cache", svd_samples=[7]), tmp_path / "o",
                                      log=lambda _: None)  # fmt: skip
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [({"svd_samplez": [9]}, "svd_samplez"), ({"svd_samples": [4, 0]}, "svd_samples"), ({"alpha_r": -1}, "alpha")],
)  # fmt: skip
def test_check_rejects_bad_configs(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        speed.check({**_cfg(tmp_path, tmp_path), **change})


def test_committed_segmentation_speed_config_checks():
    for path in sorted(BENCHMARKS.glob("configs/speed-*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        if cfg["task"] == "speed-segmentation":
            assert speed.check(cfg).svd_samples[0] < speed.check(cfg).svd_samples[-1]
