"""``lethe-face`` end to end, and bad input: one error line, exit code 2, no output written."""

from __future__ import annotations

import json

import pytest
from face_helpers import RUNTIME, make_identity_folder

TRAIN = (
    "--size",
    "32",
    "--embedder",
    "light-resnet",
    "--head",
    "linear",
    "--width",
    "8",
    "--embedding-dim",
    "32",
    "--epochs",
    "4",
    "--batch-size",
    "8",
    "--lr",
    "0.01",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, faces_spec):
    from lethe_face.cli import main

    out = tmp_path_factory.mktemp("ckpt") / "original.safetensors"
    assert main(["train", "--dataset", faces_spec, *TRAIN, "--out", str(out), *RUNTIME]) == 0
    return out


def test_train_unlearn_evaluate(cli, trained, tmp_path):
    out = tmp_path / "forgot.safetensors"
    r = cli(
        "unlearn",
        "--checkpoint",
        trained,
        "--forget",
        "person_2",
        "--method",
        "svd",
        "--out",
        out,
        "--record",
        tmp_path / "record.json",
        *RUNTIME,
    )
    assert r.code == 0, r.err
    assert "svd forgot person_2" in r.out
    r = cli(
        "evaluate",
        "--checkpoint",
        out,
        "--forget",
        "person_2",
        "--json",
        tmp_path / "m.json",
        "--pairs-per-identity",
        "5",
        *RUNTIME,
    )
    assert r.code == 0, r.err
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert {"forget_test", "retain_test", "verif_acc", "tar_forget"} <= set(metrics)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--forget", "nobody"), "unknown identity 'nobody'"),
        (("--forget", "99"), "out of range"),
        (("--forget", "person_1", "--method", "amnesia"), "unknown method 'amnesia'"),
    ],
)
def test_unlearn_bad_input(cli, trained, tmp_path, args, message):
    out = tmp_path / "x.safetensors"
    r = cli("unlearn", "--checkpoint", trained, *args, "--out", out, *RUNTIME)
    assert r.code == 2 and len(r.err_lines) == 1 and r.err_lines[0].startswith("lethe-face: error:")
    assert message in r.err and not out.exists()


def test_train_bad_input(cli, tmp_path):
    (tmp_path / "empty" / "nobody").mkdir(parents=True)
    few = make_identity_folder(tmp_path / "few", {"a": 2, "b": 6, "c": 6})
    cases = [
        (("--dataset", f"folder:{tmp_path / 'empty'}"), "has no identities"),
        (("--dataset", f"folder:{few}", "--min-images", "4", "--exclude", "a"), "too few for the train/test split"),
        (
            (
                "--dataset",
                f"folder:{few}",
                "--embedder",
                "inception-resnet-v1",
                "--embedding-dim",
                "512",
                "--pretrained",
                "vggface2",
                "--weights",
                str(tmp_path / "no.pt"),
            ),
            "weights file not found",
        ),
    ]
    for args, message in cases:
        out = tmp_path / "o.safetensors"
        r = cli("train", *TRAIN, *args, "--out", out, *RUNTIME)
        assert r.code == 2 and len(r.err_lines) == 1 and message in r.err, (args, r.err)
        assert not out.exists()


def test_checkpoint_errors(cli, trained, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    r = cli("evaluate", "--checkpoint", bad, "--forget", "person_1", *RUNTIME)
    assert r.code == 2 and len(r.err_lines) == 1
    r = cli("unlearn", "--checkpoint", trained, "--forget", "person_1", "--out", trained, *RUNTIME)
    assert r.code == 2 and "overwrite an input" in r.err
    r = cli("bench", str(tmp_path / "missing.yaml"), "--out", tmp_path / "b")
    assert r.code == 2 and "cannot read config" in r.err
