"""Identity-folder datasets: split, min-images filter, named layouts, bad input, alignment cache."""

from __future__ import annotations

import pytest
import torch
from face_helpers import make_identity_folder

from lethe.errors import ConfigError, DataError
from lethe_face import FaceOptions, identity_subset, load_faces
from lethe_face.datasets import split_identities

SMALL = FaceOptions(size=16)


def test_folder_split_skips_undecodable_and_reads_grey(faces_spec):
    data = load_faces(faces_spec, options=SMALL)
    b = data.bundle
    assert b.classes == [f"person_{i}" for i in range(6)]
    assert data.record["skipped_undecodable"] == 1 and data.record["skipped_files"][0].endswith("broken.jpg")
    assert b.train.images.shape[1:] == (3, 16, 16) and b.train.images.dtype == torch.uint8
    assert len(b.train) + len(b.test) == 60
    for c in range(6):  # every identity on both sides, about a quarter in test
        assert (b.test.labels == c).sum() in (2, 3) and (b.train.labels == c).sum() >= 7
    grey = b.train.images[b.train.labels == 5][0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_split_is_seeded():
    assert split_identities([10, 7], 0.3, 0) == split_identities([10, 7], 0.3, 0)
    assert split_identities([10, 7], 0.3, 0) != split_identities([10, 7], 0.3, 1)
    train, test = split_identities([2], 0.9, 0)[0]
    assert len(train) == 1 and len(test) == 1


def test_min_images_filter_and_too_few(tmp_path):
    root = make_identity_folder(tmp_path / "p", {"a": 3, "b": 6, "c": 6})
    data = load_faces(f"folder:{root}", options=FaceOptions(size=16, min_images=5))
    assert data.bundle.classes == ["b", "c"]
    assert data.identities("c") == (1,)
    with pytest.raises(DataError, match="'a' has 3 usable images, too few"):
        data.identities("a")
    with pytest.raises(ConfigError, match="unknown identity 'zed'"):
        data.identities("zed")
    with pytest.raises(DataError, match="no identity .* has 7 or more"):
        load_faces(f"folder:{root}", options=FaceOptions(size=16, min_images=7))
    with pytest.raises(ConfigError, match="min_images must be at least 2"):
        load_faces(f"folder:{root}", options=FaceOptions(size=16, min_images=1))


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty" / "nobody").mkdir(parents=True)
    with pytest.raises(DataError, match="has no identities"):
        load_faces(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="not found"):
        load_faces(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="unknown face dataset"):
        load_faces("vggface9")


def test_named_layouts(tmp_path, monkeypatch):
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sk"))
    with pytest.raises(DataError, match="LFW not found"):
        load_faces("lfw", empty)
    make_identity_folder(tmp_path / "sk" / "lfw_home" / "lfw_funneled", {"Ann_A": 4, "Bob_B": 4})
    lfw = load_faces("lfw", empty, FaceOptions(size=16, min_images=2))
    assert lfw.bundle.classes == ["Ann_A", "Bob_B"] and lfw.record["crop"] == 0.6
    make_identity_folder(empty / "att_faces", {"s1": 4, "s2": 4, "s3": 4}, grey="s2")
    att = load_faces("att", empty, FaceOptions(size=16))
    assert att.bundle.num_classes == 3 and att.bundle.channels == 3


def test_identity_subset_relabels(faces_spec):
    b = load_faces(faces_spec, options=SMALL).bundle
    sub = identity_subset(b, [1, 4])
    assert sub.classes == ["person_1", "person_4"]
    assert set(sub.train.labels.tolist()) == {0, 1}
    assert len(sub.test) == int(((b.test.labels == 1) | (b.test.labels == 4)).sum())


def test_mtcnn_alignment_falls_back_and_caches(tmp_path, monkeypatch):
    root = make_identity_folder(tmp_path / "p", {"a": 2, "b": 2})
    (root / "a" / "bad.png").write_bytes(b"\x89PNG broken")
    opts = FaceOptions(size=16, align=True)
    data = load_faces(f"folder:{root}", options=opts, cache_root=tmp_path / "cache")
    assert data.record["align"]["no_face_centre_crop"] == 4  # stripes are not faces
    assert data.record["skipped_undecodable"] == 1
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 1

    import lethe_face.align as align

    monkeypatch.setattr(align, "facenet", lambda: pytest.fail("MTCNN ran again instead of the cache"))
    again = load_faces(f"folder:{root}", options=opts, cache_root=tmp_path / "cache")
    assert torch.equal(again.bundle.train.images, data.bundle.train.images)
