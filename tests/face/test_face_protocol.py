"""The protocols end to end on generated identities: DELETE and SVD forget, the bench writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe.tasks import RunOptions, get_task
from lethe_face import FaceModelSpec, FaceOptions, ProtocolOptions, evaluate_face, load_faces
from lethe_face.bench import PROTOCOL_SET, TASK, FaceBenchConfig, FaceModelSection, config_from_mapping, run_config
from lethe_face.metrics import VerifyOptions
from lethe_face.pipeline import PROTOCOLS, identities_with_images, method_overrides
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.pipeline import EvalOptions, TrainRecipe, unlearn_model

# 20 epochs: at 10 the generated identities are not all learnt, and which one is missing moves
# with float rounding (NCHW against channels_last)
RECIPE = TrainRecipe(epochs=20, batch_size=8, lr=0.01, warmup_epochs=0)
SPEC = FaceModelSpec(2, head="linear", embedding_dim=32, width=8)
EVAL = EvalOptions(relearn_per_class=0)
VERIFY = VerifyOptions(pairs_per_identity=10)


@pytest.fixture(scope="module")
def run_all(faces_spec):
    bundle = load_faces(faces_spec, options=FaceOptions(size=32)).bundle
    engine = Engine(device="cpu", progress=False)
    protocol, _ = PROTOCOLS.get("all")
    return protocol(bundle, (1,), SPEC, RECIPE, engine, 0.1), engine


def test_delete_and_svd_forget_the_identity(run_all):
    run, engine = run_all
    before = evaluate_face(run.original, run.splits, engine, EVAL, VERIFY)
    assert before["forget_test"] == 100.0 and before["retain_test"] >= 75.0
    assert {"verif_acc", "tar_forget", "tar_kept", "probe_forget", "mia_efficacy"} <= set(before)
    for method, overrides in (("delete", {"lr": 0.01, "epochs": 10}), ("svd", {})):
        overrides = method_overrides(method, overrides)  # the package's defaults, as the CLI and bench run it
        model, record = unlearn_model(run.original, method, run.splits, engine, overrides, 16)
        after = evaluate_face(model, run.splits, engine, EVAL, VERIFY)
        assert after["forget_test"] < before["forget_test"], method
        assert after["forget_train"] < before["forget_train"], method
        assert record.seconds > 0


def test_retrain_oracle_never_saw_the_identity(run_all):
    run, engine = run_all
    oracle, seconds, _ = run.retrain()
    metrics = evaluate_face(oracle, run.splits, engine, EVAL, VERIFY)
    assert metrics["forget_test"] == 0.0 and seconds > 0


def test_two_stage_protocol(faces_spec):
    bundle = load_faces(faces_spec, options=FaceOptions(size=32)).bundle
    engine = Engine(device="cpu", progress=False)
    protocol, _ = PROTOCOLS.get("two-stage")
    options = ProtocolOptions(head_identities=3, head_recipe=RECIPE)
    run = protocol(bundle, (2,), SPEC, TrainRecipe(epochs=2, batch_size=8, lr=0.01), engine, 0.0, options)
    assert run.splits.bundle.num_classes == 3 and "person_2" in run.splits.bundle.classes
    assert run.info["pretrain_identities"] == 3
    oracle, _, _ = run.retrain()
    frozen = [k for k, v in run.original.embedder.state_dict().items() if v.is_floating_point()]
    assert all(torch.equal(run.original.embedder.state_dict()[k], oracle.embedder.state_dict()[k]) for k in frozen)
    with pytest.raises(ConfigError, match="head_identities"):
        protocol(bundle, (2,), SPEC, RECIPE, engine, 0.0, ProtocolOptions(head_identities=5))


def test_head_set_by_image_count_keeps_the_forgotten_identity():
    counts_train, counts_test = (5, 2, 8, 1, 6), (1, 1, 1, 0, 1)  # 6, 3, 9, 1, 7 images in all

    def data(counts):
        labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
        return ImageData(torch.zeros(len(labels), 3, 4, 4), labels)

    bundle = DatasetBundle("t", [f"p{i}" for i in range(5)], data(counts_train), data(counts_test), (0.0,), (1.0,))
    assert identities_with_images(bundle, (3,), 7) == [2, 3, 4]
    with pytest.raises(ConfigError, match="head_min_images=6 .* leave at least 2"):
        identities_with_images(bundle, (3,), 6)


def test_run_config_writes_results(faces_spec, tmp_path):
    cfg = {
        "dataset": faces_spec,
        "forget_sets": ["person_3"],
        "data": {"size": 32},
        "heads": ["linear", "cosine"],
        "model": {"embedding_dim": 32, "width": 8, "scale": 16, "margin": 0.2},
        "recipe": {"epochs": 4, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0},
        "examples": 2,
        "evaluation": {"relearn_per_class": 0, "probe": False},
        "verification": {"pairs_per_identity": 5},
        "overrides": {"delete": {"epochs": 2, "lr": 0.01}},
        "head_overrides": {"cosine": {"delete": {"lr": 0.001}}},
        "progress": False,
    }
    result = run_config(cfg, tmp_path / "out", log=lambda _: None)
    names = [(r["head"], r["method"]) for r in result["rows"]]
    assert names == [(h, m) for h in ("linear", "cosine") for m in ("original", "retrain", "delete", "svd")]
    lrs = {r["head"]: (r["settings"]["lr"], r["settings"]["epochs"]) for r in result["rows"] if r["method"] == "delete"}
    assert lrs == {"linear": (0.01, 2), "cosine": (0.001, 2)}  # the head's override over the shared one
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["header"]["forget"] == ["person_3"] and saved["header"]["data"]["skipped_undecodable"] == 1
    text = (tmp_path / "out" / "results.md").read_text()
    assert "## cosine head" in text and "tar_forget" in text and "Targets" in text
    assert (tmp_path / "out" / "faces.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="config has no key 'epochz'"):
        run_config({**cfg, "epochz": 3}, tmp_path / "bad")
    with pytest.raises(ConfigError, match="one forget set"):
        run_config({**cfg, "forget_sets": ["person_3", "person_4"]}, tmp_path / "bad")
    with pytest.raises(ConfigError, match="head_overrides names head 'arc'"):
        run_config({**cfg, "head_overrides": {"arc": {"delete": {"lr": 0.1}}}}, tmp_path / "bad")
    with pytest.raises(ConfigError, match="lrr"):
        run_config({**cfg, "head_overrides": {"cosine": {"delete": {"lrr": 0.1}}}}, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_variant_runs_its_method_over_the_heads_overrides(faces_spec, tmp_path):
    cfg = {
        "dataset": faces_spec,
        "forget_sets": ["person_3"],
        "data": {"size": 32},
        "heads": ["linear", "cosine"],
        "methods": ["delete", "delete-3"],
        "variants": {"delete-3": {"method": "delete", "overrides": {"epochs": 3}}},
        "model": {"embedding_dim": 32, "width": 8},
        "recipe": {"epochs": 2, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0},
        "examples": 0,
        "evaluation": {"relearn_per_class": 0, "probe": False},
        "verification": {"pairs_per_identity": 5},
        "overrides": {"delete": {"epochs": 1, "lr": 0.01}},
        "head_overrides": {"cosine": {"delete": {"lr": 0.001}}},
        "progress": False,
    }
    result = run_config(cfg, tmp_path / "out", log=lambda _: None)
    rows = [r for r in result["rows"] if "settings" in r]
    settings = {(r["head"], r["method"]): (r["settings"]["lr"], r["settings"]["epochs"]) for r in rows}
    assert settings[("linear", "delete")] == (0.01, 1) and settings[("linear", "delete-3")] == (0.01, 3)
    assert settings[("cosine", "delete")] == (0.001, 1) and settings[("cosine", "delete-3")] == (0.001, 3)
    assert result["header"]["variants"] == cfg["variants"]
    with pytest.raises(ConfigError, match="variants.d takes method and overrides"):
        run_config({**cfg, "methods": ["d"], "variants": {"d": {"overrides": {}}}}, tmp_path / "bad")
    with pytest.raises(ConfigError, match="epochz"):
        run_config(
            {**cfg, "variants": {"delete-3": {"method": "delete", "overrides": {"epochz": 3}}}}, tmp_path / "bad"
        )
    assert not (tmp_path / "bad").exists()


def test_several_seeds_train_one_original_each_on_the_same_test_images(faces_spec, tmp_path):
    cfg = {
        "dataset": faces_spec,
        "forget_sets": ["person_3"],
        "data": {"size": 32},
        "heads": ["linear"],
        "methods": ["svd"],
        "model": {"embedding_dim": 32, "width": 8},
        "recipe": {"epochs": 6, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0},
        "examples": 1,
        "evaluation": {"relearn_per_class": 0, "probe": False},
        "verification": {"pairs_per_identity": 5},
        "seeds": [0, 1],
        "progress": False,
    }
    result = run_config(cfg, tmp_path / "out", log=lambda _: None)
    assert [(r["seed"], r["method"]) for r in result["rows"]] == [
        (s, m) for s in (0, 1) for m in ("original", "retrain", "svd")
    ]
    originals = [r for r in result["rows"] if r["method"] == "original"]
    assert originals[0]["train_log"] != originals[1]["train_log"]  # each seed trains its own original
    assert result["header"]["seeds (one original each; means judged)"] == [0, 1]
    text = (tmp_path / "out" / "results.md").read_text()
    assert "mean ± std over 2 originals" in text and "each original" in text and "means over 2 originals" in text
    with pytest.raises(ConfigError, match="each once"):
        run_config({**cfg, "seeds": [1, 1]}, tmp_path / "bad")


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "configs").glob("face-*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_parse(path):
    cfg = yaml.safe_load(path.read_text())
    assert cfg["task"] == "face" and cfg["out"].startswith("face/")
    config = config_from_mapping(cfg)  # read and checked, as benchmarks/run.py --check does
    assert isinstance(config, FaceBenchConfig) and len(config.forget_sets) == 1


def test_face_task_is_registered_and_reads_the_one_schema():
    assert get_task("face") is TASK and TASK.config is FaceBenchConfig
    config = config_from_mapping(
        {"task": "face", "dataset": "att", "forget_sets": [["s1", "s2"]], "data": {"seed": 3}, "batch_size": 32}
    )
    assert config.forget == ["s1", "s2"] and config.seeds == (0,) and config.data.seed == 3
    assert config.batch_size == 32 and config.recipe.epochs == 20 and config.heads == ("linear", "cosine")
    for bad, message in (
        ({"forget": "s1"}, "config has no key 'forget'"),
        ({"seed": 0}, "config has no key 'seed'"),
        ({"unlearn_batch_size": 64}, "config has no key 'unlearn_batch_size'"),
        ({"head_recipe": {}}, "config has no key 'head_recipe'"),
        ({"model": {"embeder": "light-resnet"}}, "did you mean 'embedder'"),
        ({"model": {"embedder": "no-such-net"}}, "unknown embedder"),
        ({"seeds": [1, 1]}, "each once"),
        ({"examples": -1}, "config.examples must be an integer, at least 0"),
        ({"forget_sets": ["s1", "s2"]}, "one forget set"),
    ):
        with pytest.raises(ConfigError, match=message):
            config_from_mapping({"task": "face", "dataset": "att", "forget_sets": ["s1"], **bad})


def test_model_section_is_the_spec_less_what_the_protocol_sets():
    section = {f.name for f in dataclasses.fields(FaceModelSection)}
    spec = {f.name for f in dataclasses.fields(FaceModelSpec)}
    assert section == spec - set(PROTOCOL_SET)
    assert FaceModelSection(width=8).spec() == FaceModelSpec(2, width=8)


def test_runner_seeds_replace_the_configs(faces_spec, tmp_path, monkeypatch):
    import lethe_face.bench as bench

    seen = []

    def fake_run(data, config, engine, log):
        seen.append(config.seeds)
        raise KeyboardInterrupt  # stop before training

    monkeypatch.setattr(bench, "run_face_bench", fake_run)
    config = config_from_mapping({"dataset": faces_spec, "forget_sets": ["person_3"], "seeds": [0, 1, 2]})
    for seeds in ((2,), None):
        with pytest.raises(KeyboardInterrupt):
            bench.run_benchmark(config, tmp_path / "out", RunOptions(seeds=seeds))
    assert seen == [(2,), (0, 1, 2)]
    with pytest.raises(ConfigError, match="each once"):
        bench.run_benchmark(config, tmp_path / "out", RunOptions(seeds=(1, 1)))


def test_delete_defaults_for_faces_freeze_batchnorm_and_anchor_on_kept_people():
    assert method_overrides("delete") == {"freeze_bn": True, "use_retain": True}
    assert method_overrides("delete", {"freeze_bn": False, "lr": 1e-4}) == {
        "freeze_bn": False,
        "use_retain": True,
        "lr": 1e-4,
    }
    assert method_overrides("svd", {"tune": False}) == {"tune": False}
