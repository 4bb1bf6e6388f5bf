"""``lethe-backdoor`` end to end on a generated image folder, and its handling of bad input.

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
from bd_helpers import RUNTIME, make_image_folder
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import cli_runner, listing, weights_differ

from lethe.checkpoint import read_spec
from lethe_backdoor.cli import build_parser, main
from lethe_classification.cli import main as classify_main

METRICS = ("clean_acc", "asr", "robust_acc")


assert_clean_failure = functools.partial(clean_failure, prog="lethe-backdoor")


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    """4 colour classes, 40 train and 10 test 16x16 images each."""
    root = make_image_folder(tmp_path_factory.mktemp("bd-data") / "data", 40, 10)
    return f"imagefolder:{root}"


def train_args(spec: str, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--dataset",
        spec,
        "--arch",
        "small-cnn",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--val-fraction",
        "0.25",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture
def cli(capsys):
    """Run ``lethe-backdoor`` in-process with the CPU/quiet options; returns code, stdout, stderr."""
    return cli_runner(main, capsys, RUNTIME)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spec) -> Path:
    """A backdoored small-cnn checkpoint (BadNets, target 1); read-only."""
    out = tmp_path_factory.mktemp("bd-trained") / "badnets.safetensors"
    assert main([*train_args(spec, out, "--target", "1"), *RUNTIME]) == 0
    return out


# --- help -------------------------------------------------------------------------------------


def test_console_script_help():
    script = Path(sys.executable).with_name("lethe-backdoor")
    assert script.is_file(), script
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("train", "unlearn", "evaluate", "bench"):
        assert command in done.stdout


def test_unlearn_help_lists_defences(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["unlearn", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "fine_pruning" in out and "delete" in out and "--budget-source" in out


# --- end to end -------------------------------------------------------------------------------


def test_train_unlearn_evaluate(cli, spec, trained, tmp_path):
    info = read_spec(trained)
    record = info["backdoor"]
    assert info["task"] == "classification" and info["dataset"] == spec
    assert record["name"] == "badnets" and record["settings"]["target"] == 1 and record["settings"]["rate"] == 0.1
    assert record["poisoned"] == 12 and len(record["poison_indices"]) == 12 and record["pool_samples"] == 40

    deleted, rec = tmp_path / "delete.safetensors", tmp_path / "delete-record.json"
    before = trained.read_bytes()
    result = cli(
        "unlearn",
        "--checkpoint",
        trained,
        "--method",
        "delete",
        "--budget",
        "0.1",
        "--set",
        "epochs=2",
        "--batch-size",
        "16",
        "--out",
        deleted,
        "--record",
        rec,
    )
    assert result.code == 0, result.err
    assert "12 stamped" in result.out
    assert trained.read_bytes() == before
    assert weights_differ(trained, deleted)
    unlearned = read_spec(deleted)["unlearned"]
    assert unlearned["method"] == "delete" and unlearned["forget_classes"] == [1]
    assert unlearned["budget"] == {"budget": "0.1", "source": "stamp", "stamped": 12, "clean": 12}
    assert unlearned["settings"]["epochs"] == 2 and unlearned["source"] == str(trained)
    assert json.loads(rec.read_text())["method"] == "delete"

    pruned = tmp_path / "fp.safetensors"
    result = cli(
        "unlearn",
        "--checkpoint",
        trained,
        "--method",
        "fine_pruning",
        "--budget",
        "5",
        "--budget-source",
        "poisoned",
        "--set",
        "epochs=1",
        "--out",
        pruned,
    )
    assert result.code == 0, result.err
    assert read_spec(pruned)["unlearned"]["budget"]["source"] == "poisoned"

    report = tmp_path / "eval.json"
    result = cli("evaluate", "--checkpoint", deleted, "--json", report)
    assert result.code == 0, result.err
    output = json.loads(report.read_text())
    assert set(output["metrics"]) == set(METRICS)
    assert all(0.0 <= output["metrics"][k] <= 100.0 for k in METRICS)
    assert output["target"] == 1 and output["unlearned"]["method"] == "delete"
    for key in METRICS:
        assert key in result.out
    assert listing(tmp_path) == sorted(p.name for p in (deleted, rec, pruned, report))


def test_poison_is_an_alias_of_train(cli, spec, tmp_path):
    out = tmp_path / "blended.safetensors"
    argv = train_args(spec, out, "--attack", "blended", "--attack-set", "alpha=0.3", "--rate", "0.05")
    argv[0] = "poison"
    result = cli(*argv)
    assert result.code == 0, result.err
    record = read_spec(out)["backdoor"]
    assert record["name"] == "blended" and record["settings"]["alpha"] == 0.3 and record["poisoned"] == 6


def test_bench_writes_results_report_and_plots(cli, spec, tmp_path):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--dataset",
        spec,
        "--arch",
        "small-cnn",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--val-fraction",
        "0.25",
        "--budget",
        "0.1",
        "--budgets",
        "0.1,0.05",
        "--unlearn-batch-size",
        "16",
        "--set",
        "delete.epochs=1",
        "--set",
        "finetune.epochs=1",
        "--set",
        "fine_pruning.epochs=1",
        "--set",
        "random_label.epochs=1",
        "--set",
        "gradient_ascent.epochs=1",
        "--set",
        "svd.grid_r=10,100",
        "--set",
        "svd.grid_f=3",
        "--out",
        out,
    )
    assert result.code == 0, result.err
    assert listing(out) == ["asr_vs_budget.png", "examples.png", "results.json", "results.md"]
    data = json.loads((out / "results.json").read_text())
    methods = [row["method"] for row in data["rows"]]
    assert methods == ["backdoored", "delete", "svd", "finetune", "fine_pruning", "random_label", "gradient_ascent"]
    for row in data["rows"]:
        for key in (*METRICS, "seconds", "delta_clean_acc"):
            assert isinstance(row[key], float), (row["method"], key)
    assert [(r["method"], r["budget"], r["stamped"]) for r in data["sweep"]] == [
        ("delete", "0.1", 12),
        ("delete", "0.05", 6),
    ]
    assert data["sweep"][0]["asr"] == data["rows"][1]["asr"]  # the main budget's run is reused
    assert data["budget"] == {"budget": "0.1", "source": "stamp", "stamped": 12, "clean": 12}
    header = data["header"]
    assert header["dataset"] == spec and header["poisoned training samples"] == "12 of 120"
    assert "badnets" in header["attack"] and header["target"] == "0 (c0)"
    assert len(data["examples"]) == 3 and {"clean_backdoored", "stamped_delete"} <= set(data["examples"][0])
    report = (out / "results.md").read_text()
    assert report.startswith("# Backdoor removal on")
    assert "| method | clean_acc | asr | robust_acc |" in report and "| fine_pruning |" in report
    assert "## delete: ASR as the defender's budget shrinks" in report and "## Checks" in report
    for png in ("asr_vs_budget.png", "examples.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- bad input: one line, exit 2, nothing written ----------------------------------------------


@pytest.mark.parametrize(
    "extra,needles",
    [
        (("--attack-set", "size=17"), ("trigger 17x17 is larger than the 16x16 image",)),
        (("--target", "4"), ("target label 4 is out of range", "0..3")),
        (("--target", "-1"), ("out of range",)),
        (("--rate", "0"), ("poisoning rate must be in (0, 1]",)),
        (("--rate", "1.5"), ("poisoning rate",)),
        (("--attack", "trojan"), ("unknown attack 'trojan'", "badnets")),
        (("--attack-set", "alpha=0.3"), ("no setting 'alpha'",)),
        (("--attack", "blended", "--attack-set", "alpha=2"), ("blend ratio",)),
        (("--target", "1", "--attack-set", "target=2"), ("--target",)),
    ],
)
def test_bad_attack_in_train(cli, spec, tmp_path, extra, needles):
    result = cli(*train_args(spec, tmp_path / "model.safetensors", *extra))
    assert_clean_failure(result, *needles)
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--budget", "0.5"), ("larger than available", "pool")),
        (("--budget", "31"), ("larger than available",)),
        (("--budget", "13", "--budget-source", "poisoned"), ("larger than available", "poisoned")),
        (("--budget", "0"), ("budget",)),
        (("--budget", "plenty"), ("budget 'plenty'",)),
        (("--method", "vaccine"), ("unknown defence 'vaccine'", "delete")),
        (("--set", "depth=3"), ("no setting 'depth'",)),
        (("--batch-size", "0"), ("--batch-size",)),
    ],
)
def test_bad_unlearn_input(cli, trained, tmp_path, args, needles):
    out = tmp_path / "out" / "x.safetensors"
    result = cli("unlearn", "--checkpoint", trained, *args, "--out", out)
    assert_clean_failure(result, *needles)
    assert listing(tmp_path) == []


def test_budget_larger_than_available_in_bench_fails_before_training(cli, spec, tmp_path):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--dataset",
        spec,
        "--arch",
        "small-cnn",
        "--epochs",
        "1",
        "--val-fraction",
        "0.25",
        "--budgets",
        "0.1,0.5",
        "--out",
        out,
    )
    assert_clean_failure(result, "budget 0.5", "larger than available")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "args,needle",
    [
        (("--methods", "delete,vaccine"), "vaccine"),
        (("--set", "svd.depth=2"), "depth"),
        (("--set", "ssd.alpha=2"), "ssd"),
        (("--budget-source", "poisoned", "--budget", "40"), "larger than available"),
        (("--target", "9"), "out of range"),
    ],
)
def test_bad_bench_input_fails_before_training(cli, spec, tmp_path, args, needle):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--dataset",
        spec,
        "--arch",
        "small-cnn",
        "--epochs",
        "1",
        "--val-fraction",
        "0.25",
        "--budgets",
        "0.1",
        *args,
        "--out",
        out,
    )
    assert_clean_failure(result, needle)
    assert listing(tmp_path) == []


def test_out_equal_to_checkpoint(cli, trained, tmp_path):
    copy = tmp_path / "model.safetensors"
    copy.write_bytes(trained.read_bytes())
    result = cli("unlearn", "--checkpoint", copy, "--out", copy)
    assert_clean_failure(result, "overwrite")
    result = cli("evaluate", "--checkpoint", copy, "--json", copy)
    assert_clean_failure(result, "overwrite")
    assert copy.read_bytes() == trained.read_bytes()
    assert listing(tmp_path) == ["model.safetensors"]


def test_missing_checkpoint(cli, tmp_path):
    result = cli("evaluate", "--checkpoint", tmp_path / "nowhere.safetensors")
    assert_clean_failure(result, "checkpoint not found")
    assert listing(tmp_path) == []


def test_classification_checkpoint_without_an_attack(cli, spec, tmp_path, capsys):
    plain = tmp_path / "in" / "plain.safetensors"
    assert (
        classify_main(
            ["train", "--dataset", spec, "--arch", "small-cnn", "--epochs", "1", "--out", str(plain), *RUNTIME]
        )
        == 0
    )
    result = cli("unlearn", "--checkpoint", plain, "--out", tmp_path / "out.safetensors")
    assert_clean_failure(result, "records no backdoor attack")
    assert listing(tmp_path) == ["in", "in/plain.safetensors"]
