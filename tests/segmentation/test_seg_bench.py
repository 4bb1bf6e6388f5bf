"""``lethe_segmentation.bench``: the ``segmentation`` task of ``benchmarks/run.py`` (``TASK``), its
config schema (``SegmentationBenchConfig``) and ``run_config``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe.tasks import RunOptions, get_task
from lethe_segmentation.bench import TASK, SegmentationBenchConfig, bench_config, run_config
from lethe_segmentation.datasets import CAMVID_CLASSES

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _mapping(tiny_spec: str, **extra) -> dict:
    text = f"""
    task: segmentation
    title: tiny
    dataset: "{tiny_spec}"
    model: {{arch: Unet, encoder: mobilenet_v2, encoder_depth: 3, decoder_channels: [16, 8, 8]}}
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


def _config(tiny_spec: str, **extra) -> SegmentationBenchConfig:
    return TASK.read(_mapping(tiny_spec, **extra))


def test_run_config_writes_the_benchmark(tiny_spec, tmp_path):
    out = tmp_path / "out"
    options = RunOptions(config_path="configs/tiny.yaml")
    run_config(_config(tiny_spec), out, Engine(device="cpu", progress=False), options)
    assert sorted(p.name for p in out.iterdir()) == ["iou_car.png", "overlays_car.png", "results.json", "results.md"]
    data = json.loads((out / "results.json").read_text())
    rows = data["runs"][0]["rows"]
    assert [r["method"] for r in rows] == ["original", "delete", "svd", "retrain"]
    assert rows[1]["settings"]["forget_pixel_weight"] == 5.0 and rows[1]["settings"]["epochs"] == 1
    assert rows[2]["settings"]["grid_r"] == [10, 100]
    header = data["header"]
    assert header["config"] == "configs/tiny.yaml" and header["forget sets done"] == "1 of 1"
    assert header["model"].startswith("Unet, encoder mobilenet_v2, encoder_depth 3, decoder_channels [16, 8, 8]")
    assert header["unlearn batch size"] == 4 and header["svd retain images"] == 4 and header["seed"] == 0
    assert header["recipe"]["batch_size"] == 4 and header["recipe"]["epochs"] == 2
    report = (out / "results.md").read_text()
    assert report.startswith("# tiny") and "a note" in report


def test_run_config_checks_names_before_training(tiny_spec, tmp_path):
    with pytest.raises(ConfigError, match="unknown class 'bus'"):
        run_config(_config(tiny_spec, forget_sets=["bus"]), tmp_path / "o")
    with pytest.raises(ConfigError, match="'scrub' has no per-pixel form"):
        _config(tiny_spec, methods=["delete", "scrub"])
    with pytest.raises(ConfigError, match=r"config.recipe has no key 'epoch' \(did you mean 'epochs'\?\)"):
        _config(tiny_spec, recipe={"epoch": 3})
    assert not (tmp_path / "o").exists()


def test_a_variant_runs_its_method_with_its_overrides(tiny_spec, tmp_path):
    out = tmp_path / "out"
    variants = {"delete-2": {"method": "delete", "overrides": {"epochs": 2}}}
    config = _config(tiny_spec, methods=["delete", "delete-2"], variants=variants)
    run_config(config, out, Engine(device="cpu", progress=False))
    data = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in data["runs"][0]["rows"]}
    assert rows["delete"]["settings"]["epochs"] == 1 and rows["delete-2"]["settings"]["epochs"] == 2
    assert rows["delete-2"]["settings"]["forget_pixel_weight"] == 5.0  # the method's overrides under its own
    assert data["header"]["variants"] == variants
    with pytest.raises(ConfigError, match="'scrub' has no per-pixel form"):
        _config(tiny_spec, methods=["s"], variants={"s": {"method": "scrub"}})
    with pytest.raises(ConfigError, match="variants.d takes method and overrides"):
        _config(tiny_spec, methods=["d"], variants={"d": {"overrides": {}}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arch": "Unet"}, r"config has no key 'arch'"),
        ({"seed": 0}, r"config has no key 'seed' \(did you mean 'seeds'\?\)"),
        ({"model": {"arch": "Unet", "encodr": "resnet18"}}, r"config.model has no key 'encodr'"),
        ({"model": {"arch": "Unet", "width": 8}}, "segmentation models have no width"),
        ({"model": {"arch": "Unet", "encoder_weights": "imagenet", "pretrained": "hub"}}, "not both"),
        ({"model": {"arch": "Unetto"}}, "unknown architecture 'Unetto'"),
        ({"model": {"arch": "Unet", "encoder": "resnet1"}}, "unknown encoder 'resnet1'"),
        ({"data": {"size": "96by128"}}, r"data.size must be HEIGHTxWIDTH"),
        ({"data": {"scale": [1.5]}}, r"data.scale must be \[low, high\]"),
        ({"recipe": {"class_weights": "median"}}, "recipe.class_weights must be one of none, median_frequency"),
        ({"seeds": [0, 1]}, "runs one seed"),
        ({"batch_size": 0}, "config.batch_size must be an integer, at least 1"),
        ({"overrides": {"svd": {"alpha": 1}}}, "alpha"),
    ],
)
def test_config_errors_are_one_line(tiny_spec, change, message):
    with pytest.raises(ConfigError, match=message) as err:
        _config(tiny_spec, **change)
    assert "\n" not in str(err.value)


def test_the_config_keeps_the_old_defaults(tiny_spec):
    config = TASK.read({"task": "segmentation", "dataset": tiny_spec, "forget_sets": ["car"]})
    assert (config.model.arch, config.model.encoder) == ("Unet", "resnet18")
    assert config.methods == ("delete", "svd", "finetune", "random_label")
    assert (config.batch_size, config.retain_images, config.val_fraction, config.overlays) == (8, 32, 0.1, 4)
    assert config.data.resolution().scale == (0.75, 1.5) and config.data.resolution().size is None
    assert config.recipe.batch_size == 8 and config.seeds == (0,)


def test_task_is_registered():
    assert get_task("segmentation") is TASK and TASK.options == frozenset({"resume"})


def test_committed_configs_check_and_read_their_settings():
    paths = [
        p for p in sorted(BENCHMARKS.glob("configs/*.yaml")) if yaml.safe_load(p.read_text())["task"] == "segmentation"
    ]
    assert len(paths) >= 3
    for path in paths:
        config = TASK.read(yaml.safe_load(path.read_text()))
        assert config.out.startswith("segmentation/") and config.seeds == (0,)
    cpu = TASK.read(yaml.safe_load((BENCHMARKS / "configs" / "camvid-unet-resnet18-cpu.yaml").read_text()))

    camvid = SimpleNamespace(name="camvid", classes=CAMVID_CLASSES, num_classes=len(CAMVID_CLASSES))  # no data
    run = bench_config(cpu, camvid)
    assert run.forget_sets == [(8,), (9,)] and run.resolution.size == (96, 128) and run.resolution.scale == (0.75, 1.5)
    assert (run.unlearn_batch_size, run.recipe.batch_size, run.retain_images, run.seed) == (8, 8, 32, 0)
    assert run.spec.to_dict() == {
        "arch": "Unet",
        "encoder": "resnet18",
        "num_classes": 11,
        "encoder_depth": None,
        "decoder_channels": None,
        "kwargs": {},
        "encoder_weights": None,
    }  # the cache key of data/cache/camvid-96x128


def test_runner_check_reports_a_misspelt_key_in_one_line(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_run", BENCHMARKS / "run.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    text = (BENCHMARKS / "configs" / "camvid-unet-resnet18-cpu.yaml").read_text()
    assert runner.main([str(BENCHMARKS / "configs" / "camvid-unet-resnet18-cpu.yaml"), "--check"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("retain_images:", "retain_imgs:"))
    capsys.readouterr()
    assert runner.main([str(bad), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no key 'retain_imgs' (did you mean 'retain_images'?)" in err


def test_resume_keeps_the_forget_sets_already_written(tiny_spec, tmp_path):
    out = tmp_path / "out"
    engine = Engine(device="cpu", progress=False)
    run_config(_config(tiny_spec, methods=["svd"]), out, engine)
    first = json.loads((out / "results.json").read_text())["runs"][0]
    resume = RunOptions(resume=True)
    run_config(_config(tiny_spec, methods=["svd"], forget_sets=["car", "tree"]), out, engine, resume)
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
        run_config(_config(tiny_spec, methods=["svd"], retain_images=2), out, engine, RunOptions(resume=True))
    assert (out / "results.json").read_bytes() == before
