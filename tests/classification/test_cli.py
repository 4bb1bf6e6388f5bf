"""``lethe-classify`` end to end on a generated image folder, and its handling of bad input.

Bad input must give exactly one line on stderr naming the problem, exit code 2, and leave no
output (nor a stray temporary file) behind.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import listing, weights_differ
from cls_helpers import train_args
from image_folders import CLASSES
from safetensors.torch import load_file

from lethe.checkpoint import read_spec, save_checkpoint
from lethe_classification.cli import build_parser
from lethe_vision.checkpoints import load_model

METRICS = (
    "forget_train",
    "retain_train",
    "forget_test",
    "retain_test",
    "mia_efficacy",
    "probe_forget",
    "relearn_steps",
)
SVD_FAST = ("--set", "tune=false", "--set", "retain_per_class=10", "--set", "num_forget=20")


# --- help -----------------------------------------------------------------------------------


assert_clean_failure = functools.partial(clean_failure, prog="lethe-classify")


def test_console_script_help():
    script = Path(sys.executable).with_name("lethe-classify")
    assert script.is_file(), script
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("train", "unlearn", "evaluate", "bench"):
        assert command in done.stdout


@pytest.mark.parametrize("command", ["train", "unlearn", "evaluate", "bench"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert "--out" in capsys.readouterr().out or command == "evaluate"


def test_parser_lists_registered_choices(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["unlearn", "--help"])
    out = capsys.readouterr().out
    assert "delete" in out and "svd" in out


# --- end to end -------------------------------------------------------------------------------


def test_train_unlearn_evaluate_end_to_end(cli, tiny_spec, tmp_path):
    original = tmp_path / "original.safetensors"
    oracle = tmp_path / "oracle.safetensors"
    deleted = tmp_path / "delete.safetensors"
    svd = tmp_path / "svd.safetensors"
    svd_record = tmp_path / "svd-record.json"
    report = tmp_path / "eval.json"

    result = cli(*train_args(tiny_spec, original))
    assert result.code == 0, result.err
    assert original.is_file() and "saved" in result.out
    info = read_spec(original)
    assert info["task"] == "classification"
    assert info["dataset"] == tiny_spec
    assert info["classes"] == list(CLASSES)
    assert info["model"]["arch"] == "small-cnn" and info["model"]["num_classes"] == 4
    assert info["excluded_classes"] == []
    assert len(info["train_log"]) == 1

    result = cli(*train_args(tiny_spec, oracle, "--exclude", "1"))
    assert result.code == 0, result.err
    assert read_spec(oracle)["excluded_classes"] == [1]

    before = original.read_bytes()
    result = cli(
        "unlearn",
        "--checkpoint",
        original,
        "--forget",
        "1",
        "--method",
        "delete",
        "--set",
        "epochs=1",
        "--batch-size",
        "16",
        "--out",
        deleted,
    )
    assert result.code == 0, result.err
    assert deleted.is_file()
    assert original.read_bytes() == before
    assert weights_differ(original, deleted)
    unlearned = read_spec(deleted)["unlearned"]
    assert unlearned["method"] == "delete" and unlearned["forget_classes"] == [1]
    assert unlearned["settings"]["epochs"] == 1
    assert unlearned["source"] == str(original)

    result = cli(
        "unlearn",
        "--checkpoint",
        original,
        "--forget",
        "c1",
        "--method",
        "svd",
        *SVD_FAST,
        "--batch-size",
        "16",
        "--out",
        svd,
        "--record",
        svd_record,
    )
    assert result.code == 0, result.err
    assert original.read_bytes() == before
    assert weights_differ(original, svd)
    record = json.loads(svd_record.read_text())
    assert record["method"] == "svd" and record["forget_classes"] == [1]
    assert record["settings"]["tune"] is False and record["settings"]["retain_per_class"] == 10
    assert record["extra"]["forget_samples"] > 0 and record["extra"]["layers"]
    model, _ = load_model(svd)
    assert isinstance(model, torch.nn.Module)

    result = cli("evaluate", "--checkpoint", deleted, "--forget", "1", "--oracle", oracle, "--json", report)
    assert result.code == 0, result.err
    output = json.loads(report.read_text())
    metrics = output["metrics"]
    assert set(METRICS) | {"avg_gap"} <= set(metrics)
    for key in (*METRICS, "avg_gap"):
        if key == "relearn_steps":  # steps of the relearning budget (51 = not within 50)
            assert isinstance(metrics[key], int) and 0 <= metrics[key] <= 51, key
        else:
            assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 100.0, key
    assert set(METRICS) <= set(metrics["oracle"])
    assert metrics["oracle"]["forget_train"] == 0.0  # never saw class 1
    assert output["forget"] == [1]
    assert len(output["per_class_test"]) == 4
    assert "avg_gap" in result.out
    # evaluating writes nothing but the JSON and leaves no temporaries
    assert listing(tmp_path) == sorted(p.name for p in (original, oracle, deleted, svd, svd_record, report))


def test_evaluate_without_oracle_prints_metrics(cli, trained):
    result = cli("evaluate", "--checkpoint", trained, "--forget", "2")
    assert result.code == 0, result.err
    for key in METRICS:
        assert key in result.out
    assert "avg_gap" not in result.out


def test_bench_writes_results_report_and_plot(cli, tiny_spec, tmp_path):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--dataset",
        tiny_spec,
        "--arch",
        "cifar-resnet18",
        "--width",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--forget",
        "2",
        "--methods",
        "delete,svd",
        "--set",
        "delete.epochs=1",
        "--set",
        "svd.grid_r=10,100",
        "--set",
        "svd.grid_f=3",
        "--set",
        "svd.retain_per_class=10",
        "--out",
        out,
    )
    assert result.code == 0, result.err
    assert listing(out) == ["per_class.png", "results.json", "results.md"]

    data = json.loads((out / "results.json").read_text())
    rows = {row["method"]: row for row in data["rows"]}
    assert [row["method"] for row in data["rows"]] == ["original", "retrain", "delete", "svd"]
    for name, row in rows.items():
        for key in (*METRICS, "avg_gap", "seconds", "seconds_vs_retrain"):
            assert key in row, (name, key)
        assert len(row["per_class_test"]) == 4
    assert rows["retrain"]["avg_gap"] == 0.0
    assert rows["retrain"]["forget_train"] == 0.0
    assert rows["delete"]["settings"]["epochs"] == 1
    assert rows["svd"]["settings"]["grid_r"] == [10.0, 100.0]
    assert rows["svd"]["extra"]["tuned"] is True
    assert data["forget"] == [2]
    assert data["classes"] == list(CLASSES)
    header = data["header"]
    assert header["dataset"] == tiny_spec and header["arch"] == "cifar-resnet18"
    assert header["width"] == 4 and header["epochs"] == 1
    assert header["forget"] == ["2 (c2)"]

    report = (out / "results.md").read_text()
    assert report.startswith("# Class forgetting on")
    for name in rows:
        assert f"| {name} |" in report
    assert "| method | forget_train" in report
    assert (out / "per_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| svd |" in result.out


# --- bad input: one line, exit 2, nothing written ------------------------------------------------


def test_unknown_method(cli, trained, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", trained, "--forget", "1", "--method", "forgetit", "--out", out)
    line = assert_clean_failure(result, "unknown method", "forgetit")
    assert "delete" in line and "svd" in line  # names the choices
    assert listing(tmp_path) == []


def test_unknown_method_in_bench_fails_before_training(cli, tiny_spec, tmp_path):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--dataset",
        tiny_spec,
        "--arch",
        "small-cnn",
        "--epochs",
        "1",
        "--forget",
        "1",
        "--methods",
        "delete,forgetit",
        "--out",
        out,
    )
    assert_clean_failure(result, "forgetit")
    assert not out.exists()
    assert listing(tmp_path) == []


def test_unknown_dataset(cli, tmp_path):
    out = tmp_path / "model.safetensors"
    result = cli(*train_args("no-such-dataset", out))
    assert_clean_failure(result, "unknown dataset", "no-such-dataset")
    assert listing(tmp_path) == []


def test_missing_image_folder(cli, tmp_path):
    out = tmp_path / "out" / "model.safetensors"
    result = cli(*train_args(f"imagefolder:{tmp_path / 'absent'}", out))
    assert_clean_failure(result, "not found", "absent")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("arch", ["resnet-9000", "torchvision:no_such_net", "timm:no_such_net"])
def test_unknown_arch(cli, tiny_spec, tmp_path, arch):
    out = tmp_path / "model.safetensors"
    result = cli(*train_args(tiny_spec, out, arch=arch))
    assert_clean_failure(result, arch.partition(":")[2] or arch)
    assert listing(tmp_path) == []


def test_arch_that_cannot_take_the_input_size(cli, tiny_spec, tmp_path):
    out = tmp_path / "model.safetensors"
    result = cli(*train_args(tiny_spec, out, "--width", "8", arch="cifar-vgg11-bn"))
    assert_clean_failure(result, "cifar-vgg11-bn", "3x16x16")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("forget", ["4", "9", "-1", "1,7"])
def test_forget_class_out_of_range(cli, trained, tmp_path, forget):
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", trained, "--forget", forget, "--set", "epochs=1", "--out", out)
    assert_clean_failure(result, "out of range", "0..3")
    assert listing(tmp_path) == []


def test_forget_class_out_of_range_in_evaluate_and_train(cli, trained, tiny_spec, tmp_path):
    report = tmp_path / "eval.json"
    result = cli("evaluate", "--checkpoint", trained, "--forget", "4", "--json", report)
    assert_clean_failure(result, "forget class 4 is out of range")
    result = cli(*train_args(tiny_spec, tmp_path / "oracle.safetensors", "--exclude", "5"))
    assert_clean_failure(result, "5", "out of range")
    assert listing(tmp_path) == []


def test_forget_every_class(cli, trained, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", trained, "--forget", "0,1,2,3", "--out", out)
    assert_clean_failure(result, "every class")
    assert listing(tmp_path) == []


def test_unknown_class_name(cli, trained, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", trained, "--forget", "unicorn", "--out", out)
    assert_clean_failure(result, "unknown class 'unicorn'", "c0")
    assert listing(tmp_path) == []


def test_forget_class_absent_from_the_test_data(cli, gap_trained, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", gap_trained, "--forget", "3", "--set", "epochs=1", "--out", out)
    assert_clean_failure(result, "no samples in the test split")
    assert listing(tmp_path) == []


def test_empty_forget_split(cli, gap_trained, tmp_path):
    """Class 2 has one training image, which the validation holdout takes."""
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", gap_trained, "--forget", "2", "--set", "epochs=1", "--out", out)
    assert_clean_failure(result, "forget split", "empty")
    assert listing(tmp_path) == []


def test_no_forget_classes_in_unlearn(cli, trained, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", trained, "--forget", " , ", "--out", out)
    assert_clean_failure(result)
    assert listing(tmp_path) == []


def test_no_forget_classes_in_evaluate(cli, trained, tmp_path):
    """An empty forget list leaves nothing to evaluate: an error, not a JSON of NaNs."""
    report = tmp_path / "eval.json"
    result = cli("evaluate", "--checkpoint", trained, "--forget", "", "--json", report)
    assert_clean_failure(result, "forget")
    assert listing(tmp_path) == []


def test_out_equal_to_checkpoint(cli, trained, tmp_path):
    copy = tmp_path / "model.safetensors"
    copy.write_bytes(trained.read_bytes())
    before = copy.read_bytes()
    result = cli("unlearn", "--checkpoint", copy, "--forget", "1", "--set", "epochs=1", "--out", copy)
    assert_clean_failure(result, "--out", "overwrite")
    assert copy.read_bytes() == before
    # the same file under another spelling
    result = cli(
        "unlearn",
        "--checkpoint",
        copy,
        "--forget",
        "1",
        "--set",
        "epochs=1",
        "--out",
        tmp_path / "sub" / ".." / "model.safetensors",
    )
    assert_clean_failure(result, "overwrite")
    assert copy.read_bytes() == before
    assert listing(tmp_path) == ["model.safetensors"]


def test_json_equal_to_checkpoint_in_evaluate(cli, trained, tmp_path):
    copy = tmp_path / "model.safetensors"
    copy.write_bytes(trained.read_bytes())
    result = cli("evaluate", "--checkpoint", copy, "--forget", "1", "--json", copy)
    assert_clean_failure(result, "overwrite")
    assert copy.read_bytes() == trained.read_bytes()
    assert listing(tmp_path) == ["model.safetensors"]


def test_record_equal_to_out_in_unlearn(cli, trained, tmp_path):
    """``--record`` naming the new checkpoint would replace the checkpoint by JSON."""
    out = tmp_path / "out.safetensors"
    result = cli(
        "unlearn", "--checkpoint", trained, "--forget", "1", "--set", "epochs=1", "--out", out, "--record", out
    )
    assert_clean_failure(result, "overwrite")
    assert listing(tmp_path) == []


def _rewrite_spec(src: Path, dst: Path, **model_changes) -> None:
    model, info = load_model(src)
    save_checkpoint(model, dst, {**info, "model": {**info["model"], **model_changes}})


@pytest.mark.parametrize("change", [{"width": 8}, {"num_classes": 10}], ids=["width", "classes"])
def test_checkpoint_that_does_not_match_its_architecture(cli, trained, tmp_path, change):
    bad = tmp_path / "in" / "bad.safetensors"
    _rewrite_spec(trained, bad, **change)
    out = tmp_path / "out"
    result = cli("unlearn", "--checkpoint", bad, "--forget", "1", "--set", "epochs=1", "--out", out / "x.safetensors")
    assert_clean_failure(result, str(bad), "does not match its architecture")
    result = cli("evaluate", "--checkpoint", bad, "--forget", "1", "--json", out / "x.json")
    assert_clean_failure(result, "does not match its architecture")
    assert listing(out) == []


def test_checkpoint_with_unknown_arch(cli, trained, tmp_path):
    bad = tmp_path / "in" / "bad.safetensors"
    _rewrite_spec(trained, bad, arch="nonesuch")
    result = cli("evaluate", "--checkpoint", bad, "--forget", "1", "--json", tmp_path / "o.json")
    assert_clean_failure(result, "nonesuch")
    assert listing(tmp_path) == ["in", "in/bad.safetensors"]


def test_missing_checkpoint(cli, tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", missing, "--forget", "1", "--out", out)
    assert_clean_failure(result, "checkpoint not found", str(missing))
    result = cli("evaluate", "--checkpoint", missing, "--forget", "1", "--json", tmp_path / "e.json")
    assert_clean_failure(result, "checkpoint not found")
    assert listing(tmp_path) == []


def test_missing_oracle(cli, trained, tmp_path):
    report = tmp_path / "e.json"
    result = cli(
        "evaluate",
        "--checkpoint",
        trained,
        "--forget",
        "1",
        "--oracle",
        tmp_path / "oracle.safetensors",
        "--json",
        report,
    )
    assert_clean_failure(result, "checkpoint not found", "oracle.safetensors")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated"])
def test_corrupt_checkpoint(cli, trained, tmp_path, kind):
    bad = tmp_path / "in" / "bad.safetensors"
    bad.parent.mkdir()
    raw = trained.read_bytes()
    bad.write_bytes({"garbage": b"\x00not a checkpoint" * 50, "empty": b"", "truncated": raw[: len(raw) // 2]}[kind])
    out = tmp_path / "out"
    result = cli("unlearn", "--checkpoint", bad, "--forget", "1", "--out", out / "x.safetensors")
    assert_clean_failure(result, str(bad))
    assert listing(out) == []


def test_checkpoint_not_written_by_lethe_classification(cli, trained, tmp_path):
    model, info = load_model(trained)
    other = tmp_path / "in" / "other.safetensors"
    save_checkpoint(model, other, {**info, "task": "segmentation"})
    bare = tmp_path / "in" / "bare.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(bare))
    out = tmp_path / "out"
    for path in (other, bare):
        result = cli("evaluate", "--checkpoint", path, "--forget", "1", "--json", out / "e.json")
        assert_clean_failure(result, str(path))
    assert listing(out) == []


@pytest.mark.parametrize(
    "spec_text",
    ['{"task": "classification", "model": ', "[1, 2]"],
    ids=["invalid-json", "not-an-object"],
)
def test_checkpoint_with_corrupt_spec(cli, trained, tmp_path, spec_text):
    """A safetensors file whose lethe spec is damaged is a corrupt checkpoint, not a crash."""
    from safetensors.torch import save_file

    bad = tmp_path / "in" / "bad.safetensors"
    bad.parent.mkdir()
    save_file(load_file(str(trained)), str(bad), metadata={"lethe_spec": spec_text})
    out = tmp_path / "out"
    result = cli("unlearn", "--checkpoint", bad, "--forget", "1", "--out", out / "x.safetensors")
    assert_clean_failure(result, str(bad))
    assert listing(out) == []


def test_checkpoint_spec_without_dataset(cli, trained, tmp_path):
    """A classification checkpoint lacking its dataset entry cannot be evaluated: say so."""
    model, info = load_model(trained)
    bad = tmp_path / "in" / "bad.safetensors"
    save_checkpoint(model, bad, {k: v for k, v in info.items() if k != "dataset"})
    out = tmp_path / "out"
    result = cli("evaluate", "--checkpoint", bad, "--forget", "1", "--json", out / "e.json")
    assert_clean_failure(result, str(bad))
    assert listing(out) == []


def test_non_finite_loss_in_train(cli, tiny_spec, tmp_path):
    out = tmp_path / "model.safetensors"
    result = cli(*train_args(tiny_spec, out, "--lr", "1e30"))
    assert_clean_failure(result, "non-finite loss", "train")
    assert listing(tmp_path) == []


def test_non_finite_loss_in_unlearn(cli, trained, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli(
        "unlearn",
        "--checkpoint",
        trained,
        "--forget",
        "1",
        "--method",
        "delete",
        "--set",
        "lr=1e30",
        "--set",
        "epochs=3",
        "--batch-size",
        "16",
        "--out",
        out,
    )
    assert_clean_failure(result, "non-finite loss", "delete")
    assert listing(tmp_path) == []


def test_non_finite_loss_in_bench(cli, tiny_spec, tmp_path):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--dataset",
        tiny_spec,
        "--arch",
        "small-cnn",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--forget",
        "1",
        "--methods",
        "delete",
        "--set",
        "delete.lr=1e30",
        "--set",
        "delete.epochs=3",
        "--out",
        out,
    )
    assert_clean_failure(result, "non-finite loss")
    assert not out.exists()


@pytest.mark.parametrize(
    "setting, needles",
    [
        ("nope=1", ("no setting 'nope'", "epochs")),
        ("epochs=many", ("epochs",)),
        ("lr", ("KEY=VALUE",)),
        ("=3", ("KEY=VALUE",)),
    ],
)
def test_bad_set(cli, trained, tmp_path, setting, needles):
    out = tmp_path / "out.safetensors"
    result = cli("unlearn", "--checkpoint", trained, "--forget", "1", "--set", setting, "--out", out)
    assert_clean_failure(result, *needles)
    assert listing(tmp_path) == []


def test_bad_set_for_svd(cli, trained, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli(
        "unlearn", "--checkpoint", trained, "--forget", "1", "--method", "svd", "--set", "grid_r=10,ten", "--out", out
    )
    assert_clean_failure(result, "grid_r")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "setting, needle",
    [("delete.nope=1", "nope"), ("tune=false", "METHOD.KEY"), ("forgetit.lr=1", "forgetit")],
)
def test_bad_set_in_bench(cli, tiny_spec, tmp_path, setting, needle):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--dataset",
        tiny_spec,
        "--arch",
        "small-cnn",
        "--epochs",
        "1",
        "--forget",
        "1",
        "--methods",
        "delete",
        "--set",
        setting,
        "--out",
        out,
    )
    assert_clean_failure(result, needle)
    assert not out.exists()


@pytest.mark.parametrize(
    "option, value, needle",
    [
        ("--epochs", "0", "epochs"),
        ("--width", "0", "width"),
        ("--val-fraction", "1.5", "validation fraction"),
        ("--batch-size", "0", "batch"),
        ("--lr", "-1", "lr|learning rate"),
        ("--val-fraction", "0.99", "empty|no training|val-fraction"),
    ],
)
def test_train_rejects_bad_numbers(cli, tiny_spec, tmp_path, option, value, needle):
    """Out-of-range numeric options are user errors too: one line and exit 2, not a traceback."""
    out = tmp_path / "model.safetensors"
    result = cli(*train_args(tiny_spec, out, option, value))
    assert_clean_failure(result, needle)
    assert listing(tmp_path) == []


def test_unlearn_rejects_a_negative_learning_rate(cli, trained, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli(
        "unlearn", "--checkpoint", trained, "--forget", "1", "--set", "lr=-1", "--set", "epochs=1", "--out", out
    )
    assert_clean_failure(result, "lr|learning rate")
    assert listing(tmp_path) == []


def test_failed_runs_leave_the_checkpoint_untouched(cli, trained, tmp_path):
    """A failing unlearn (non-finite loss) neither changes its input nor leaves temporaries."""
    copy = tmp_path / "model.safetensors"
    copy.write_bytes(trained.read_bytes())
    result = cli(
        "unlearn",
        "--checkpoint",
        copy,
        "--forget",
        "1",
        "--set",
        "lr=1e30",
        "--set",
        "epochs=3",
        "--batch-size",
        "16",
        "--out",
        tmp_path / "new.safetensors",
    )
    assert result.code == 2
    assert copy.read_bytes() == trained.read_bytes()
    assert listing(tmp_path) == ["model.safetensors"]
