"""Bring your own model: ``lethe-classify import`` turns a state dict for a named architecture
into a checkpoint the other commands use like a trained one (``import_model`` itself: tests/vision)."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from cli_testing import assert_clean_failure as clean_failure
from cli_testing import cli_runner, listing
from image_folders import CLASSES
from safetensors.torch import save_file

from lethe.checkpoint import read_spec
from lethe_classification.cli import main
from lethe_vision.checkpoints import load_model
from lethe_vision.models import ModelSpec, build_model

assert_clean_failure = functools.partial(clean_failure, prog="lethe-classify")
NORMALISE = ("--mean", "0.5", "--std", "0.25")


@pytest.fixture
def importer(capsys):
    """``lethe-classify import`` in-process (it takes no runtime options)."""
    return cli_runner(main, capsys)


def _permuted_copy(trained, tmp_path, order):
    """The trained small-cnn's state dict with its output rows in ``order``, as a .pth file."""
    model, info = load_model(trained)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    last = [k for k in state if k.endswith(".weight") and state[k].shape[0] == len(CLASSES)][-1]
    for key in (last, last.replace(".weight", ".bias")):
        state[key] = state[key][list(order)]
    torch.save(state, tmp_path / "theirs.pth")
    return tmp_path / "theirs.pth", info


def test_cli_import_then_evaluate_and_unlearn(cli, importer, trained, tiny_spec, tmp_path):
    """The trained model with its classes in another order and a classes file: the same test
    metrics (the validation holdout, drawn class by class, follows the class numbering)."""
    order = (2, 0, 3, 1)
    weights, info = _permuted_copy(trained, tmp_path, order)
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES[i] for i in order) + "\n")
    pre = info["preprocess"]
    out = tmp_path / "imported.safetensors"
    result = importer(
        "import",
        "--weights",
        weights,
        "--arch",
        "small-cnn",
        "--classes",
        tmp_path / "classes.txt",
        "--image-size",
        pre["image_size"],
        "--mean",
        ",".join(map(str, pre["mean"])),
        "--std",
        ",".join(map(str, pre["std"])),
        "--out",
        out,
    )
    assert result.code == 0, result.err
    assert "imported small-cnn with 4 classes" in result.out
    assert read_spec(out)["classes"] == [CLASSES[i] for i in order]

    result = cli("evaluate", "--checkpoint", out, "--forget", "c1", "--json", tmp_path / "x.json")
    assert_clean_failure(result, "names no dataset", "--dataset")
    scores = {}
    for name, path in (("imported", out), ("trained", trained)):
        report = tmp_path / f"{name}.json"
        result = cli(
            "evaluate",
            "--checkpoint",
            path,
            "--dataset",
            tiny_spec,
            "--forget",
            "c1",
            "--no-probe",
            "--relearn-per-class",
            "0",
            "--json",
            report,
        )
        assert result.code == 0, result.err
        scores[name] = json.loads(report.read_text())["metrics"]
    for key in ("forget_test", "retain_test"):
        assert scores["imported"][key] == pytest.approx(scores["trained"][key]), key

    forgot = tmp_path / "forgot.safetensors"
    result = cli(
        "unlearn",
        "--checkpoint",
        out,
        "--dataset",
        tiny_spec,
        "--forget",
        "c1",
        "--set",
        "epochs=1",
        "--batch-size",
        "16",
        "--out",
        forgot,
    )
    assert result.code == 0, result.err
    recorded = read_spec(forgot)
    assert recorded["dataset"] == tiny_spec and recorded["unlearned"]["forget_classes"] == [order.index(1)]


def test_cli_import_from_safetensors_with_dataset(cli, importer, tiny_spec, tmp_path):
    spec = ModelSpec("timm:resnet10t", 4, 3, 16)
    save_file(build_model(spec).state_dict(), str(tmp_path / "w.safetensors"))
    out = tmp_path / "m.safetensors"
    result = importer(
        "import",
        "--weights",
        tmp_path / "w.safetensors",
        "--arch",
        "timm:resnet10t",
        "--classes",
        ",".join(CLASSES),
        "--image-size",
        "16",
        *NORMALISE,
        "--dataset",
        tiny_spec,
        "--out",
        out,
    )
    assert result.code == 0, result.err
    result = cli("evaluate", "--checkpoint", out, "--forget", "c0", "--no-probe", "--relearn-per-class", "0")
    assert result.code == 0, result.err


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--classes", "a,b,c"), ("does not fit", "fc.weight")),
        (("--classes", "a,b,c,d", "--arch", "timm:nonesuch"), ("nonesuch",)),
        (("--classes", "a,b,c,d", "--mean", "0.5,0.5"), ("mean needs 1 or 3 values",)),
        (("--classes", "a,a,b,c"), ("distinct",)),
        (("--classes", "a,b,c,d", "--weights", "{tmp}/absent.pth"), ("weights file not found", "absent.pth")),
        (("--classes", "a,b,c,d", "--out", "{tmp}/w.pth"), ("would overwrite an input",)),
    ],
)
def test_cli_import_bad_input(importer, tmp_path, args, needles):
    torch.save(build_model(ModelSpec("timm:resnet10t", 4, 3, 16)).state_dict(), tmp_path / "w.pth")
    options = {
        "--weights": str(tmp_path / "w.pth"),
        "--arch": "timm:resnet10t",
        "--image-size": "16",
        "--mean": "0.5",
        "--std": "0.25",
        "--out": str(tmp_path / "out" / "m.safetensors"),
    }
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[flag] = value.format(tmp=tmp_path)
    result = importer("import", *[item for pair in options.items() for item in pair])
    assert_clean_failure(result, *needles)
    assert listing(tmp_path / "out") == []


def test_import_help_names_the_inputs(capsys):
    from lethe_classification.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["import", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--weights", "--arch", "--classes", "--image-size", "--mean", "--std"))
