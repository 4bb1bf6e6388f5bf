"""benchmarks/run.py end to end on a tiny generated image folder: single run and a suite."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _runner():
    spec = importlib.util.spec_from_file_location("bench_run", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    colours = ((220, 40, 40), (40, 200, 40), (40, 40, 220))
    for split, count in (("train", 16), ("test", 6)):
        for c, colour in enumerate(colours):
            d = root / split / f"c{c}"
            d.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(np.array(colour) + rng.normal(0, 25, (16, 16, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


def _config(tmp_path: Path, folder: Path, **extra) -> Path:
    cfg = {
        "task": "classification",
        "title": "tiny",
        "out": "unused",
        "dataset": f"imagefolder:{folder}",
        "model": {"arch": "small-cnn", "width": 4},
        "methods": ["delete", "svd"],
        "val_fraction": 0.1,
        "recipe": {"epochs": 1, "batch_size": 16, "lr": 0.05, "warmup_epochs": 0},
        "overrides": {"delete": {"epochs": 1}, "svd": {"tune": False, "retain_per_class": 4, "num_forget": 8}},
        "evaluation": {"probe_per_class": 8, "relearn_per_class": 2, "relearn_settings": {"steps": 3}},
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_single_run_writes_table_and_plot(tmp_path, folder):
    out = tmp_path / "out"
    assert _runner().main([str(_config(tmp_path, folder, forget_sets=[1])), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["per_class.png", "results.json", "results.md"]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["original", "retrain", "delete", "svd"]
    assert all(0 <= r["relearn_steps"] <= 4 for r in rows)


def test_suite_aggregates_forget_sets_and_seeds(tmp_path, folder):
    out = tmp_path / "suite"
    no_relearn = {"relearn_per_class": 0}
    cfg = _config(tmp_path, folder, forget_sets=[1, "1,2"], seeds=[0, 1], evaluation=no_relearn)
    assert _runner().main([str(cfg), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["per_class.png", "results.md", "runs.json", "scatter.png", "summary.json"]
    runs = json.loads((out / "runs.json").read_text())
    assert len(runs) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"1 class", "2 classes"}
    mean, std, n = summary["1 class"]["delete"]["forget_test"]
    assert n == 2
    single = [run for run in runs if len(run["forget"]) == 1]
    values = [r["forget_test"] for run in single for r in run["rows"] if r["method"] == "delete"]
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values))
    # one original per seed, shared by that seed's forget sets
    originals = [run["rows"][0]["seconds"] for run in runs]
    assert originals[0] == originals[1] and originals[2] == originals[3] and originals[0] != originals[2]
    assert "mean ± std over 2 runs" in (out / "results.md").read_text()
    seed1 = next(run for run in runs if run["header"]["seed"] == 1)["rows"][0]["per_class_test"]
    assert f"'seed 1': {round(sum(seed1) / len(seed1), 2)}" in (out / "results.md").read_text()


def test_bad_config_exits_2(tmp_path, folder, capsys):
    cfg = _config(tmp_path, folder, forget_sets=[1], methods=["no_such_method"])
    assert _runner().main([str(cfg), "--out", str(tmp_path / "bad")]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("option", ["--resume", "--rewrite"])
def test_a_task_only_option_is_refused_for_another_task(tmp_path, folder, capsys, option):
    cfg = _config(tmp_path, folder, forget_sets=[1])
    assert _runner().main([str(cfg), "--out", str(tmp_path / "bad"), option]) == 2
    assert capsys.readouterr().err.strip() == (
        f"benchmarks/run.py: error: {option} is not an option of the 'classification' task"
    )
    assert not (tmp_path / "bad").exists()


def test_suite_runs_per_set_methods_and_picks_the_strongest_baselines(tmp_path, folder):
    out = tmp_path / "picked"
    sets = [1, {"classes": "1,2", "methods": ["delete"], "strongest_baselines": 1}, {"classes": 2, "seeds": [5]}]
    cfg = _config(
        tmp_path,
        folder,
        forget_sets=sets,
        methods=["delete", "gradient_ascent", "finetune"],
        evaluation={"relearn_per_class": 0, "probe": False, "train_per_class": 5},
        overrides={m: {"epochs": 1} for m in ("delete", "finetune", "gradient_ascent")},
    )
    assert _runner().main([str(cfg), "--out", str(out)]) == 0
    single, multi = json.loads((out / "runs.json").read_text())
    gaps = {r["method"]: r["avg_gap"] for r in single["rows"]}
    best = min(("gradient_ascent", "finetune"), key=lambda m: (gaps[m], m))
    assert [r["method"] for r in multi["rows"]] == ["original", "retrain", "delete", best]
    assert multi["header"]["strongest_baselines"] == [best]
    assert "strongest baselines" in (out / "results.md").read_text()


def test_bad_forget_set_entry_exits_2(tmp_path, folder, capsys):
    cfg = _config(tmp_path, folder, forget_sets=[{"classes": 1, "method": ["delete"]}])
    assert _runner().main([str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert "a forget set takes classes" in capsys.readouterr().err


CONFIGS = sorted((RUNNER.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_committed_config_checks(config):
    assert _runner().main([str(config), "--check"]) == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"arch": "small-cnn", "wdith": 4}}, "config.model has no key 'wdith' (did you mean 'width'?)"),
        ({"recipe": {"epochs": "ten"}}, "config.recipe.epochs must be an integer, got 'ten'"),
        ({"seeds": 3}, "config.seeds must be a list, got 3"),
        ({"forget_sets": []}, "config.forget_sets must be a non-empty"),
        ({"batch_size": 0}, "config.batch_size must be an integer, at least 1, got 0"),
        ({"arch": "small-cnn"}, "config has no key 'arch'"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_its_path(tmp_path, folder, capsys, change, message):
    cfg = _config(tmp_path, folder, **{"forget_sets": [1], **change})
    assert _runner().main([str(cfg), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"benchmarks/run.py: error: {cfg}: {message}"), err


def test_check_rejects_a_bad_override(tmp_path, capsys):
    cfg = yaml.safe_load((RUNNER.parent / "configs" / "cifar10-resnet18-suite-cpu.yaml").read_text())
    cfg["overrides"]["delete"] = {"epochz": 3}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert _runner().main([str(path), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "epochz" in err[0]


def test_seeds_split_across_processes_merge_into_one_suite(tmp_path, folder):
    cfg = _config(
        tmp_path,
        folder,
        forget_sets=[1],
        seeds=[0, 1],
        retain_per_class=4,
        evaluation={"relearn_per_class": 0, "probe": False},
    )
    parts = [tmp_path / "s0", tmp_path / "s1"]
    for seed, part in enumerate(parts):
        assert _runner().main([str(cfg), "--seeds", str(seed), "--out", str(part)]) == 0
        assert [r["header"]["seed"] for r in json.loads((part / "runs.json").read_text())] == [seed]
    out = tmp_path / "merged"
    assert _runner().main([str(cfg), "--merge", *map(str, parts), "--out", str(out)]) == 0
    runs = json.loads((out / "runs.json").read_text())
    assert [r["header"]["seed"] for r in runs] == [0, 1]  # by size of the forget set, then seed
    assert runs[0]["header"]["retained images per class given to methods"] == 4
    assert json.loads((out / "summary.json").read_text())["1 class"]["delete"]["forget_test"][2] == 2
    assert _runner().main([str(cfg), "--merge", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def test_methods_split_across_processes_join_into_one_run(tmp_path, folder, capsys):
    cache = tmp_path / "cache"
    cfg = _config(
        tmp_path,
        folder,
        forget_sets=[1, 2],
        seeds=[0],
        methods=["delete", "svd", "ssd"],
        retain_per_class=4,
        cache=str(cache),
        evaluation={"relearn_per_class": 0, "probe": False},
    )
    parts = [tmp_path / "a", tmp_path / "b"]
    for methods, part in zip(("ssd,delete", "svd"), parts, strict=True):
        assert _runner().main([str(cfg), "--forget-set", "c1", "--methods", methods, "--out", str(part)]) == 0
    assert [r["method"] for r in json.loads((parts[0] / "runs.json").read_text())[0]["rows"]] == [
        "original",
        "retrain",
        "delete",
        "ssd",
    ]
    out = tmp_path / "merged"
    assert _runner().main([str(cfg), "--merge", *map(str, parts), "--out", str(out)]) == 0
    runs = json.loads((out / "runs.json").read_text())
    assert len(runs) == 1  # one seed and forget set, its rows from both parts in the config's order
    assert [r["method"] for r in runs[0]["rows"]] == ["original", "retrain", "delete", "svd", "ssd"]
    assert _runner().main([str(cfg), "--merge", str(parts[0]), str(parts[0]), "--out", str(out)]) == 2
    assert "delete is in two parts" in capsys.readouterr().err
    assert _runner().main([str(cfg), "--methods", "scrub", "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.strip() == ("benchmarks/run.py: error: --methods scrub: not a method of this config")
    assert not (tmp_path / "c").exists()


def test_models_only_fills_the_cache_that_the_full_run_then_loads(tmp_path, folder, capsys):
    cache = tmp_path / "cache"
    cfg = _config(tmp_path, folder, forget_sets=[1, {"classes": 2, "seeds": [1]}], seeds=[0, 1], cache=str(cache))
    out = tmp_path / "out"
    assert _runner().main([str(cfg), "--models-only", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert not out.exists()  # models only: no report
    assert len(list(cache.glob("original-*.safetensors"))) == 2  # one per seed
    assert len(list(cache.glob("retrain-*.safetensors"))) == 3  # c1 on both seeds, c2 on seed 1 only
    assert "original, seed 1: " in said and "% on all test images" in said
    assert "retrain, seed 1: " in said and "(forget [2])" in said
    assert _runner().main([str(cfg), "--models-only", "--seeds", "0", "--out", str(out)]) == 0
    assert "saved" not in capsys.readouterr().out  # a second pass only loads
    other = _config(tmp_path, folder, forget_sets=[0], seeds=[2], cache=str(cache))
    assert _runner().main([str(other), "--models-only", "oracles", "--out", str(out)]) == 0
    assert "retrain, seed 2" in capsys.readouterr().out and len(list(cache.glob("original-*"))) == 2
    no_cache = _config(tmp_path, folder, forget_sets=[1])
    assert _runner().main([str(no_cache), "--models-only", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        "benchmarks/run.py: error: --models-only needs the config's cache: folder (the models are kept nowhere else)"
    )


def test_forget_sets_split_across_processes_merge_into_one_suite(tmp_path, folder, capsys):
    cfg = _config(
        tmp_path,
        folder,
        forget_sets=[1, 2],
        seeds=[0],
        retain_per_class=4,
        evaluation={"relearn_per_class": 0, "probe": False},
    )
    parts = [tmp_path / "a", tmp_path / "b"]
    for name, part in zip(("c1", "c2"), parts, strict=True):
        assert _runner().main([str(cfg), "--forget-set", name, "--out", str(part)]) == 0
    assert [r["forget"] for r in json.loads((parts[1] / "runs.json").read_text())] == [[2]]
    out = tmp_path / "merged"
    assert _runner().main([str(cfg), "--merge", *map(str, parts), "--out", str(out)]) == 0
    assert [r["forget"] for r in json.loads((out / "runs.json").read_text())] == [[1], [2]]
    capsys.readouterr()
    assert _runner().main([str(cfg), "--forget-set", "c0", "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.strip() == (
        "benchmarks/run.py: error: --forget-set c0: not a forget set of this config"
    )
