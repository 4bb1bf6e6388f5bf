"""``lethe-face forget``: one person forgotten from a folder of their photos; bad input is one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from face_helpers import RUNTIME
from test_face_cli import TRAIN

from lethe_face.checkpoints import load_face_model
from lethe_face.forget_person import person_index, photo_files


@pytest.fixture(scope="module")
def trained(tmp_path_factory, faces_spec):
    from lethe_face.cli import main

    out = tmp_path_factory.mktemp("ckpt") / "original.safetensors"
    assert main(["train", "--dataset", faces_spec, *TRAIN, "--out", str(out), *RUNTIME]) == 0
    return out


def photos_of(faces_root: Path, person: str, tmp_path: Path, count: int = 6) -> Path:
    """A folder named after ``person`` with ``count`` of their images (the user's photos)."""
    folder = tmp_path / person
    folder.mkdir()
    for path in sorted((faces_root / person).glob("*.png"))[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def test_forget_a_person_from_photos_alone(cli, trained, faces_root, tmp_path):
    photos = photos_of(faces_root, "person_2", tmp_path)
    out, grid = tmp_path / "forgot.safetensors", tmp_path / "grid.png"
    r = cli(
        "forget",
        "--checkpoint",
        trained,
        "--photos",
        photos,
        "--out",
        out,
        "--set",
        "epochs=2",
        "--grid",
        grid,
        *RUNTIME,
    )
    assert r.code == 0, r.err
    assert "delete forgot person_2 from 6 photos" in r.out
    model, info = load_face_model(out)
    assert info["unlearned"]["forget"] == ["person_2"] and info["unlearned"]["photos"] == 6
    assert info["unlearned"]["method"] == "delete" and info["unlearned"]["settings"]["epochs"] == 2
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_forget_with_the_person_named_and_a_method_that_reads_the_dataset(cli, trained, faces_root, tmp_path):
    photos = photos_of(faces_root, "person_3", tmp_path)
    renamed = photos.rename(tmp_path / "holiday")
    out = tmp_path / "forgot.safetensors"
    r = cli(
        "forget",
        "--checkpoint",
        trained,
        "--photos",
        renamed,
        "--person",
        "person_3",
        "--method",
        "finetune",
        "--set",
        "epochs=1",
        "--out",
        out,
        *RUNTIME,
    )
    assert r.code == 0, r.err
    assert load_face_model(out)[1]["unlearned"]["forget"] == ["person_3"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("unknown", "unknown person 'stranger': the checkpoint knows 6 people (person_0, person_1"),
        ("empty", "no photos"),
        ("missing", "not a folder"),
        ("broken", "cannot read the photo"),
    ],
)
def test_bad_photos_are_one_line_and_write_nothing(cli, trained, faces_root, tmp_path, setup, message):
    if setup == "unknown":
        folder = photos_of(faces_root, "person_1", tmp_path).rename(tmp_path / "stranger")
    elif setup == "empty":
        folder = tmp_path / "person_1"
        folder.mkdir()
    elif setup == "missing":
        folder = tmp_path / "person_1"
    else:
        folder = photos_of(faces_root, "person_1", tmp_path)
        (folder / "zz.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out.safetensors"
    r = cli("forget", "--checkpoint", trained, "--photos", folder, "--out", out, *RUNTIME)
    assert r.code == 2 and len(r.err_lines) == 1 and message in r.err_lines[0], r.err
    assert not out.exists()


def test_photo_files_and_person_index(tmp_path):
    (tmp_path / "b.PNG").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in photo_files(tmp_path)] == ["a.jpg", "b.PNG"]
    assert person_index(["x", "y"], "y") == 1


def test_dlib_resnet_trains_imprinted_and_forgets_from_photos(cli, faces_spec, faces_root, tmp_path):
    """The real recogniser's path: dlib's pretrained ResNet (make dlib-models), frozen trunk, imprinted head."""
    original, out = tmp_path / "dlib.safetensors", tmp_path / "forgot.safetensors"
    r = cli(
        "train",
        "--dataset",
        faces_spec,
        "--size",
        "150",
        "--embedder",
        "dlib-resnet",
        "--pretrained",
        "dlib",
        "--frozen-blocks",
        "14",
        "--imprint",
        "--head",
        "cosine",
        "--scale",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "3e-4",
        "--out",
        original,
        *RUNTIME,
    )
    assert r.code == 0, r.err
    model, info = load_face_model(original)
    assert info["model"]["frozen_blocks"] == 14 and info["model"]["embedder"] == "dlib-resnet"
    photos = photos_of(faces_root, "person_4", tmp_path, count=3)
    r = cli("forget", "--checkpoint", original, "--photos", photos, "--set", "epochs=1", "--out", out, *RUNTIME)
    assert r.code == 0, r.err
    assert load_face_model(out)[1]["unlearned"]["forget"] == ["person_4"]


def test_a_photo_without_a_face_is_one_line_for_an_aligned_checkpoint(cli, faces_spec, faces_root, tmp_path):
    """MTCNN finds no face in the generated stripes: training falls back to centre crops, but a
    photo given to forget must show the face to forget."""
    original = tmp_path / "aligned.safetensors"
    r = cli(
        "train",
        "--dataset",
        faces_spec,
        *TRAIN,
        "--align",
        "--data-root",
        tmp_path / "cache",
        "--out",
        original,
        *RUNTIME,
    )
    assert r.code == 0, r.err
    photos = photos_of(faces_root, "person_1", tmp_path, count=2)
    out = tmp_path / "out.safetensors"
    r = cli("forget", "--checkpoint", original, "--photos", photos, "--out", out, *RUNTIME)
    assert r.code == 2 and len(r.err_lines) == 1 and "no face found in the photo" in r.err_lines[0], r.err
    assert not out.exists()
