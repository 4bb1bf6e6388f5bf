"""Datasets on a tiny generated images/ + labels/ folder: lazy loading, class counts, forget set,
transforms, relabelling; and bad input (unknown class, bad label value, size mismatch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from seg_helpers import CLASSES, make_seg_folder

from lethe.errors import ConfigError, DataError
from lethe_segmentation.datasets import (
    DATASETS,
    IGNORE_INDEX,
    LabelMap,
    load_dataset,
    parse_classes,
)
from lethe_segmentation.pipeline import check_forget, make_splits
from lethe_segmentation.transforms import Resolution, parse_size


@pytest.fixture
def small(tmp_path) -> Path:
    """6 train and 2 test 32x32 images, 4 classes plus void; a car in every other image."""
    return make_seg_folder(tmp_path / "small", {"train": 6, "test": 2})


def test_registry_lists_the_datasets():
    names = DATASETS.names()
    assert "camvid" in names and "voc" in names and "folder:<name>" in names


def test_folder_loads_pairs_and_counts_classes(small):
    bundle = load_dataset(f"folder:{small}")
    assert bundle.classes == list(CLASSES) and bundle.num_classes == 4
    assert set(bundle.splits) == {"train", "test"}
    train = bundle.split("train")
    assert len(train) == 6 and train.counts.shape == (6, 4)
    assert [s.image.stem for s in train.samples] == [s.label.stem for s in train.samples]
    # every image has ground, sky and tree; images 0, 2, 4 have a car; the void strip is not counted
    assert (train.counts[:, :3] > 0).all()
    assert (train.counts[:, 3] > 0).tolist() == [True, False, True, False, True, False]
    assert train.counts.sum(axis=1).tolist() == [32 * 30] * 6
    assert len(train.containing([3])) == 3 and len(train.containing([3], keep=False)) == 3


def test_samples_are_read_lazily_with_ignore_index(small):
    bundle = load_dataset(f"folder:{small}")
    splits = make_splits(bundle, Resolution(), val_fraction=0.2, seed=0)
    assert len(splits.train) + len(splits.validation) == 6 and len(splits.validation) == 1
    assert "held out" in splits.val_source
    x, y = splits.dataset(splits.test, augment=False)[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (32, 32) and y.dtype == torch.int64
    assert set(y.unique().tolist()) <= {IGNORE_INDEX, 0, 1, 2, 3}
    assert (y[:, -2:] == IGNORE_INDEX).all()  # the void strip
    raw = np.array(Image.open(bundle.split("test").samples[0].label))
    assert torch.equal(torch.from_numpy(raw[:, :-2].astype(np.int64)), y[:, :-2])


def test_resize_and_training_crop(small):
    bundle = load_dataset(f"folder:{small}")
    splits = make_splits(bundle, Resolution(size=(16, 24)), seed=0)
    x, y = splits.dataset(splits.train, augment=False)[0]
    assert x.shape == (3, 16, 24) and y.shape == (16, 24)
    x, y = splits.dataset(splits.train, augment=True)[1]
    assert x.shape == (3, 16, 24) and y.shape == (16, 24)
    splits = make_splits(bundle, Resolution(crop=(24, 24)), seed=0)
    x, y = splits.dataset(splits.train, augment=True)[0]
    assert x.shape == (3, 24, 24)


def test_native_evaluation_pads_with_ignore(small):
    bundle = load_dataset(f"folder:{small}")
    splits = make_splits(bundle, Resolution(divisor=24), seed=0)
    x, y = splits.dataset(splits.test, augment=False)[0]
    assert x.shape == (3, 48, 48)
    assert (y[32:, :] == IGNORE_INDEX).all() and (y[:, 32:] == IGNORE_INDEX).all()


def test_label_maps():
    y = torch.tensor([[0, 1, 2, 3, IGNORE_INDEX]])
    assert LabelMap(ignore=(3,)).apply(y, 4).tolist() == [[0, 1, 2, IGNORE_INDEX, IGNORE_INDEX]]
    assert LabelMap(only=(3,)).apply(y, 4).tolist() == [[IGNORE_INDEX] * 3 + [3, IGNORE_INDEX]]
    many = torch.full((1000,), 3)
    drawn = LabelMap(randomize=(3,)).apply(many, 4)
    assert set(drawn.unique().tolist()) == {0, 1, 2}  # a random OTHER (kept) class per pixel
    assert LabelMap(randomize=(3,)).apply(y, 4)[0, :3].tolist() == [0, 1, 2]


def test_void_line_in_classes_file(tmp_path):
    root = make_seg_folder(tmp_path / "d", {"train": 2, "test": 1})
    (root / "classes.txt").write_text("ground\nsky\ntree\ncar\nvoid\n")
    label = root / "train" / "labels" / "000.png"
    raw = np.array(Image.open(label))
    raw[0, 0] = 4  # the value named "void"
    Image.fromarray(raw).save(label)
    bundle = load_dataset(f"folder:{root}")
    assert bundle.num_classes == 4 and 4 in bundle.void_values


def test_parse_classes_by_name_or_index():
    assert parse_classes("car", CLASSES) == (3,)
    assert parse_classes("Car, 1", CLASSES) == (1, 3)
    assert parse_classes("", CLASSES) == ()


# --- bad input --------------------------------------------------------------------------------------


def test_unknown_class_name_is_named():
    with pytest.raises(ConfigError, match="unknown class 'truck'.*ground, sky, tree, car"):
        parse_classes("truck", CLASSES, "tiny")


def test_class_index_out_of_range_is_named():
    with pytest.raises(ConfigError, match="class index 4 is out of range.*0..3"):
        parse_classes("4", CLASSES, "tiny")


def test_class_without_pixels_is_named(tmp_path):
    root = make_seg_folder(tmp_path / "nocar", {"train": 3, "test": 1}, car_every=99)
    for label in (root / "train" / "labels").glob("*.png"):  # car only in image 0: remove it
        raw = np.array(Image.open(label))
        raw[raw == 3] = 0
        Image.fromarray(raw).save(label)
    bundle = load_dataset(f"folder:{root}")
    splits = make_splits(bundle, Resolution(), seed=0)
    with pytest.raises(DataError, match="class car .* has no pixels"):
        check_forget(splits, (3,))


def test_label_value_beyond_class_count_names_the_file(small):
    label = small / "train" / "labels" / "003.png"
    raw = np.array(Image.open(label))
    raw[5, 5] = 7
    Image.fromarray(raw).save(label)
    with pytest.raises(DataError, match=r"003\.png has value 7, but .* has 4 classes \(values 0..3, void 255\)"):
        load_dataset(f"folder:{small}")


def test_size_mismatch_names_the_file(small):
    label = small / "test" / "labels" / "001.png"
    Image.fromarray(np.zeros((30, 32), dtype=np.uint8)).save(label)
    with pytest.raises(DataError, match=r"image .*001\.png is 32x32 but its label .*001\.png is 30x32"):
        load_dataset(f"folder:{small}")


def test_missing_label_names_the_image(small):
    (small / "train" / "labels" / "002.png").unlink()
    with pytest.raises(DataError, match=r"002\.png has no label"):
        load_dataset(f"folder:{small}")


def test_colour_label_is_refused(small):
    label = small / "train" / "labels" / "001.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(label)
    with pytest.raises(DataError, match=r"001\.png is a RGB image"):
        load_dataset(f"folder:{small}")


def test_missing_classes_file_and_folders(tmp_path, small):
    (small / "classes.txt").unlink()
    with pytest.raises(DataError, match="classes.txt not found"):
        load_dataset(f"folder:{small}")
    with pytest.raises(DataError, match="dataset folder not found"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="CamVid not found"):
        load_dataset("camvid", tmp_path)


def test_parse_size():
    assert parse_size("96x128") == (96, 128)
    assert parse_size(None) is None and parse_size("native") is None
    with pytest.raises(ConfigError, match="HEIGHTxWIDTH"):
        parse_size("96")


def test_each_loader_worker_draws_its_own_augmentation(small):
    bundle = load_dataset(f"folder:{small}")
    splits = make_splits(bundle, Resolution(), seed=0)
    same = splits.train.subset([0, 0, 0, 0])  # one image four times
    data = splits.dataset(same, augment=True)
    loader = torch.utils.data.DataLoader(data, batch_size=1, num_workers=2)
    first, second = [x for x, _ in loader][:2]  # the first sample of worker 0 and of worker 1
    assert not torch.equal(first, second)
