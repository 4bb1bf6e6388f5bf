"""``lethe_classification.scaling`` (``task: scaling`` of benchmarks/run.py): how the SVD step and
DELETE grow, and the estimate for large models, end to end on the tiny image folder."""

import json
from pathlib import Path

import pytest
import yaml

from lethe.errors import ConfigError
from lethe.tasks import get_task
from lethe_classification import scaling

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _cfg(spec: str, **extra) -> dict:
    return {
        "task": "scaling",
        "out": "unused",
        "dataset": spec,
        "model": {"arch": "small-cnn", "width": 4},
        "forget_sets": [1],
        "val_fraction": 0.1,
        "svd_steps": {"samples": [4, 8], "widths": [2, 4], "width_samples": 6, "batch_size": 4, "isolate": False},
        "delete_steps": {"forget_sizes": [5, 10], "epochs": 1, "batch_size": 4},
        "estimate": {
            "models": {"cnn": "test_resnet", "vit": "test_vit"},
            "image_size": 160,
            "num_classes": 10,
            "samples": 999,
            "check_samples": {"vit": 2},
            "eigh_sizes": [8, 32],
            "forward_batch": 2,
        },
        **extra,
    }


def test_scaling_run_writes_every_table_with_predictions(tiny_spec, tmp_path):
    out = tmp_path / "out"
    result = scaling.run_benchmark(scaling.TASK.read(_cfg(tiny_spec)), out, log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md", "scaling.png"]
    svd = json.loads((out / "results.json").read_text())["svd"]
    assert [(r["width"], r["samples"], r["sweeps"]) for r in svd] == [
        (4, 4, ["samples"]),
        (4, 8, ["samples"]),
        (4, 6, ["width"]),
        (2, 6, ["width"]),
    ]  # each width's model built once
    assert all(r["seconds"] > 0 and r["predicted_s"] > 0 and r["retain_samples"] == r["samples"] for r in svd)
    assert svd[3]["params_m"] < svd[2]["params_m"] and svd[3]["predicted_mib"] < svd[2]["predicted_mib"]
    assert [r["width"] for r in scaling.sweep(svd, "width")] == [2, 4]
    assert [r["forget_images"] for r in result["delete"]] == [5, 10]
    assert all(r["published_seconds"] == pytest.approx(20 * r["seconds_per_epoch"]) for r in result["delete"])
    estimates = result["estimates"]
    # the ViT's token layers get a second row: tokens sampled like patches (a what-if)
    assert [(e["model"], e["rows"].split()[0]) for e in estimates] == [("cnn", "as"), ("vit", "as"), ("vit", "tokens")]
    assert estimates[2]["gram_s"] < estimates[1]["gram_s"] and all(e["samples"] == 999 for e in estimates)
    [check] = result["checks"]
    assert check["model"] == "vit" and check["samples"] == 2 and check["forget_samples"] == 2
    text = (out / "results.md").read_text()
    for section in ("against samples per side", "against width", "forget-set size", "ImageNet-sized", "Primitives"):
        assert section in text
    assert "](scaling.png)" in text
    (out / "results.md").unlink()
    scaling.rewrite_benchmark(scaling.TASK.read(_cfg(tiny_spec)), out)
    assert (out / "results.md").read_text() == text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": ["svd"]}, "measures delete and svd"),
        ({"seeds": [0, 1]}, "one seed"),
        ({"model": {"arch": "small-cnn"}}, "needs an architecture with a width"),
        ({"estimate": {"check_samples": {"vgg": 3}}}, "names no estimated model: vgg"),
        ({"svd_steps": {"samples": [0]}}, "svd_steps.samples"),
    ],
)
def test_config_errors_are_one_line(tiny_spec, change, message):
    with pytest.raises(ConfigError, match=message) as err:
        scaling.TASK.read(_cfg(tiny_spec, **change))
    assert "\n" not in str(err.value)


def test_reading_refuses_a_model_timm_lacks(tiny_spec):
    with pytest.raises(ConfigError, match="estimate.models.x: timm has no model 'no_such_net'"):
        scaling.TASK.read(_cfg(tiny_spec, estimate={"models": {"x": "no_such_net"}, "check_samples": {}}))


def test_delete_sizes_past_the_forget_images_are_refused(tiny_spec, tmp_path):
    config = scaling.TASK.read(_cfg(tiny_spec, delete_steps={"forget_sizes": [500]}))
    with pytest.raises(ConfigError, match="delete_steps.forget_sizes: 500 exceeds"):
        scaling.run_benchmark(config, tmp_path / "out", log=lambda _: None)


def test_committed_config_reads_and_is_registered():
    assert get_task("scaling") is scaling.TASK
    config = scaling.TASK.read(
        yaml.safe_load((BENCHMARKS / "configs" / "scaling-cifar10-resnet18-cpu.yaml").read_text())
    )
    scaling.check_benchmark(config)
    assert config.model.width == 16 and config.estimate.samples == 999
