"""``lethe_segmentation.bench.run_config``: the entry point ``benchmarks/run.py`` calls with a YAML mapping."""

from __future__ import annotations

import json

import pytest
import yaml

from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe_segmentation.bench import run_config


def _config(tiny_spec: str, **extra) -> dict:
    text = f"""
    task: segmentation
    title: tiny
    dataset: "{tiny_spec}"
    arch: Unet
    encoder: mobilenet_v2
    encoder_depth: 3
    decoder_channels: [16, 8, 8]
    forget_sets: [car]
    methods: [delete, svd]
    recipe: {{epochs: 2, batch_size: 4, lr: 0.1, warmup_epochs: 0}}
    batch_size: 4
    retain_images: 4
    overrides:
      delete: {{epochs: 1, forget_pixel_weight: 5}}
      svd: {{num_forget: 4, grid_r: [10, 100], grid_f: [3]}}
    overlays: 1
    note: a note
    """
    return {**yaml.safe_load(text), **extra}


def test_run_config_writes_the_benchmark(tiny_spec, tmp_path):
    out = tmp_path / "out"
    cfg = _config(tiny_spec, _path="configs/tiny.yaml")
    run_config(cfg, out, Engine(device="cpu", progress=False))
    assert sorted(p.name for p in out.iterdir()) == ["iou_car.png", "overlays_car.png", "results.json", "results.md"]
    data = json.loads((out / "results.json").read_text())
    rows = data["runs"][0]["rows"]
    assert [r["method"] for r in rows] == ["original", "delete", "svd", "retrain"]
    assert rows[1]["settings"]["forget_pixel_weight"] == 5.0 and rows[1]["settings"]["epochs"] == 1
    assert rows[2]["settings"]["grid_r"] == [10, 100]
    assert data["header"]["config"] == "configs/tiny.yaml" and data["header"]["forget sets done"] == "1 of 1"
    report = (out / "results.md").read_text()
    assert report.startswith("# tiny") and "a note" in report


def test_run_config_checks_names_before_training(tiny_spec, tmp_path):
    with pytest.raises(ConfigError, match="unknown class 'bus'"):
        run_config(_config(tiny_spec, forget_sets=["bus"]), tmp_path / "o")
    with pytest.raises(ConfigError, match="'scrub' has no per-pixel form"):
        run_config(_config(tiny_spec, methods=["delete", "scrub"]), tmp_path / "o")
    with pytest.raises(ConfigError, match="recipe has no setting 'epoch'"):
        run_config(_config(tiny_spec, recipe={"epoch": 3}), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_resume_keeps_the_forget_sets_already_written(tiny_spec, tmp_path):
    out = tmp_path / "out"
    engine = Engine(device="cpu", progress=False)
    run_config(_config(tiny_spec, methods=["svd"]), out, engine)
    first = json.loads((out / "results.json").read_text())["runs"][0]
    run_config(_config(tiny_spec, methods=["svd"], forget_sets=["car", "tree"], resume=True), out, engine)
    data = json.loads((out / "results.json").read_text())
    assert [run["name"] for run in data["runs"]] == ["car", "tree"]
    assert data["runs"][0] == first  # the timed rows are the earlier run's, not a rerun's
    assert data["header"]["forget sets done"] == "2 of 2"
    assert (out / "overlays_tree.png").is_file() and (out / "overlays_car.png").is_file()


def test_resume_refuses_results_made_with_other_settings(tiny_spec, tmp_path):
    out = tmp_path / "out"
    engine = Engine(device="cpu", progress=False)
    run_config(_config(tiny_spec, methods=["svd"]), out, engine)
    before = (out / "results.json").read_bytes()
    with pytest.raises(ConfigError, match="cannot resume: .*svd retain images"):
        run_config(_config(tiny_spec, methods=["svd"], retain_images=2, resume=True), out, engine)
    assert (out / "results.json").read_bytes() == before
