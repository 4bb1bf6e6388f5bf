"""Splits, class parsing and validation, and the dataset loaders (image folders, idx files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from image_folders import CLASSES, IMAGE_SIZE, TEST_PER_CLASS, TRAIN_PER_CLASS, make_image_folder
from PIL import Image

import lethe
from lethe_vision.data import (
    DatasetBundle,
    ImageData,
    TensorImageDataset,
    check_forget_classes,
    parse_classes,
    per_class_sample,
    random_crop,
    random_flip,
    stratified_holdout,
)
from lethe_vision.datasets import DATASETS, _read_idx, load_dataset, read_image_folder
from lethe_vision.pipeline import make_splits


def labels_of(counts: dict[int, int]) -> torch.Tensor:
    """Labels interleaved, ``counts[c]`` of class ``c``."""
    labels = [c for c, n in counts.items() for _ in range(n)]
    return torch.tensor(labels)[torch.randperm(len(labels), generator=torch.Generator().manual_seed(5))]


def bundle_of(counts_train: dict[int, int], counts_test: dict[int, int], num_classes: int = 4):
    def data(counts):
        labels = labels_of(counts) if counts else torch.zeros(0, dtype=torch.long)
        return ImageData(torch.zeros(len(labels), 3, 4, 4, dtype=torch.uint8), labels)

    classes = [f"k{i}" for i in range(num_classes)]
    return DatasetBundle("toy", classes, data(counts_train), data(counts_test), (0.5,) * 3, (0.5,) * 3)


# --- stratified_holdout ---------------------------------------------------------------------


def test_stratified_holdout_takes_the_fraction_of_each_class():
    labels = labels_of({0: 40, 1: 20, 2: 3})
    mask = stratified_holdout(labels, 0.25, seed=0)
    assert mask.dtype == torch.bool and mask.shape == labels.shape
    held = labels[mask]
    assert (held == 0).sum() == 10
    assert (held == 1).sum() == 5
    assert (held == 2).sum() == 1  # round(0.75) = 1


def test_stratified_holdout_takes_at_least_one_per_class():
    labels = labels_of({0: 50, 1: 4})
    held = labels[stratified_holdout(labels, 0.05, seed=0)]
    assert (held == 1).sum() == 1
    assert (held == 0).sum() == 2  # round(2.5) = 2


def test_stratified_holdout_is_seeded():
    labels = labels_of({0: 40, 1: 40, 2: 40})
    a = stratified_holdout(labels, 0.2, seed=3)
    assert torch.equal(a, stratified_holdout(labels, 0.2, seed=3))
    assert not torch.equal(a, stratified_holdout(labels, 0.2, seed=4))
    assert a.sum() == stratified_holdout(labels, 0.2, seed=4).sum() == 24


def test_stratified_holdout_zero_fraction_holds_nothing():
    assert not stratified_holdout(labels_of({0: 5, 1: 5}), 0.0, seed=0).any()


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1])
def test_stratified_holdout_rejects_bad_fractions(fraction):
    with pytest.raises(lethe.ConfigError, match="validation fraction"):
        stratified_holdout(labels_of({0: 5}), fraction, seed=0)


# --- per_class_sample -----------------------------------------------------------------------


def test_per_class_sample_caps_each_class():
    labels = labels_of({0: 30, 1: 10, 2: 2})
    data = ImageData(torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1), labels)
    sample = per_class_sample(data, 5, seed=0)
    counts = torch.bincount(sample.labels, minlength=3).tolist()
    assert counts == [5, 5, 2]
    # a subset of the original samples, in their original order, images kept with labels
    ids = sample.images.view(-1).long()
    assert torch.equal(ids, ids.sort().values)
    assert torch.equal(labels[ids], sample.labels)


def test_per_class_sample_is_seeded():
    labels = labels_of({0: 30, 1: 30})
    data = ImageData(torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1), labels)
    a = per_class_sample(data, 4, seed=1).images
    assert torch.equal(a, per_class_sample(data, 4, seed=1).images)
    assert not torch.equal(a, per_class_sample(data, 4, seed=2).images)


# --- ImageData and TensorImageDataset -------------------------------------------------------


def test_image_data_rejects_mismatched_shapes():
    with pytest.raises(lethe.DataError):
        ImageData(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(lethe.DataError):
        ImageData(torch.zeros(3, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))


def test_of_classes_keeps_or_drops():
    labels = torch.tensor([0, 1, 2, 1, 0])
    data = ImageData(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), labels)
    assert data.of_classes([1]).labels.tolist() == [1, 1]
    assert data.of_classes([1], keep=False).labels.tolist() == [0, 2, 0]
    assert len(data.of_classes([7])) == 0


def test_tensor_image_dataset_normalises():
    images = torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)
    data = ImageData(images, torch.tensor([0, 1]))
    bundle = DatasetBundle("t", ["a", "b"], data, data, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    plain = TensorImageDataset(data, bundle)
    x, y = plain[1]
    assert x.dtype == torch.float32 and x.shape == (3, 8, 8) and y == 1
    assert torch.allclose(x, torch.full_like(x, 2.0))  # (1 - 0.5) / 0.25
    augmented = TensorImageDataset(data, bundle, augment=True)
    assert augmented[0][0].shape == (3, 8, 8)


# --- parse_classes and check_forget_classes -------------------------------------------------


def test_parse_classes_indices_and_names():
    names = ["cat", "dog", "T-shirt/top", "ship"]
    assert parse_classes("3", names) == (3,)
    assert parse_classes("1, 3", names) == (1, 3)
    assert parse_classes("dog,ship", names) == (1, 3)
    assert parse_classes("cat, 2", names) == (0, 2)
    assert parse_classes("T-shirt/top", names) == (2,)
    assert parse_classes("", names) == ()
    assert parse_classes(" , ", names) == ()
    assert parse_classes("-1", names) == (-1,)  # range is checked by check_forget_classes


def test_parse_classes_unknown_name_is_a_config_error():
    with pytest.raises(lethe.ConfigError, match="unknown class 'horse'") as info:
        parse_classes("cat,horse", ["cat", "dog"])
    assert "cat, dog" in str(info.value)  # lists the choices


def test_check_forget_classes_sorts_and_deduplicates():
    bundle = bundle_of({0: 4, 1: 4, 2: 4, 3: 4}, {0: 2, 1: 2, 2: 2, 3: 2})
    assert check_forget_classes((2, 0, 2), bundle) == (0, 2)


@pytest.mark.parametrize("forget", [(4,), (-1,), (1, 9)])
def test_check_forget_classes_out_of_range(forget):
    bundle = bundle_of({0: 4, 1: 4, 2: 4, 3: 4}, {0: 2, 1: 2, 2: 2, 3: 2})
    with pytest.raises(lethe.ConfigError, match="out of range.*0..3"):
        check_forget_classes(forget, bundle)


def test_check_forget_classes_rejects_all_classes_and_none():
    bundle = bundle_of({0: 4, 1: 4, 2: 4, 3: 4}, {0: 2, 1: 2, 2: 2, 3: 2})
    with pytest.raises(lethe.ConfigError, match="every class"):
        check_forget_classes((0, 1, 2, 3), bundle)
    with pytest.raises(lethe.ConfigError, match="at least one"):
        check_forget_classes((), bundle)


def test_check_forget_classes_absent_from_a_split():
    bundle = bundle_of({0: 4, 1: 4, 2: 4}, {0: 2, 1: 2, 2: 2, 3: 2})
    with pytest.raises(lethe.DataError, match="no samples in the train split"):
        check_forget_classes((3,), bundle)
    bundle = bundle_of({0: 4, 1: 4, 2: 4, 3: 4}, {0: 2, 1: 2, 3: 2})
    with pytest.raises(lethe.DataError, match="no samples in the test split"):
        check_forget_classes((2,), bundle)


def test_make_splits_holds_out_validation_from_train_only():
    bundle = bundle_of({0: 20, 1: 20, 2: 20, 3: 20}, {0: 5, 1: 5, 2: 5, 3: 5})
    splits = make_splits(bundle, (1,), val_fraction=0.1, seed=0)
    assert len(splits.validation) == 8 and len(splits.train) == 72
    assert splits.test is bundle.test
    assert set(splits.forget_train.labels.tolist()) == {1}
    assert 1 not in splits.retain_train.labels.tolist()
    assert len(splits.forget_train) + len(splits.retain_train) == len(splits.train)


# --- image folders ----------------------------------------------------------------------------


def test_imagefolder_loads_the_generated_dataset(tiny_root, tiny_spec):
    bundle = load_dataset(tiny_spec)
    assert bundle.name == tiny_spec
    assert bundle.classes == list(CLASSES)
    assert bundle.num_classes == 4
    assert bundle.train.images.shape == (4 * TRAIN_PER_CLASS, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert bundle.test.images.shape == (4 * TEST_PER_CLASS, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert bundle.train.images.dtype == torch.uint8
    assert torch.bincount(bundle.train.labels).tolist() == [TRAIN_PER_CLASS] * 4
    assert torch.bincount(bundle.test.labels).tolist() == [TEST_PER_CLASS] * 4
    assert bundle.channels == 3 and bundle.image_size == IMAGE_SIZE
    assert len(bundle.mean) == len(bundle.std) == 3
    assert all(s > 0 for s in bundle.std)
    # class 0 is red: its mean red channel is well above its blue channel
    red = bundle.train.of_classes([0]).images.float().mean(dim=(0, 2, 3))
    assert red[0] > red[2] + 100


def test_imagefolder_class_order_is_sorted_and_test_follows_train(tmp_path):
    root = make_image_folder(tmp_path / "d", {"zebra": (2, 1), "apple": (3, 2), "mango": (1, 1)})
    bundle = load_dataset(f"imagefolder:{root}")
    assert bundle.classes == ["apple", "mango", "zebra"]
    assert torch.bincount(bundle.train.labels).tolist() == [3, 1, 2]
    assert torch.bincount(bundle.test.labels).tolist() == [2, 1, 1]


def test_imagefolder_needs_a_folder_argument():
    assert "imagefolder:<name>" in DATASETS.names()
    with pytest.raises(lethe.ConfigError, match="unknown dataset"):
        load_dataset("imagefolder:")
    with pytest.raises(lethe.ConfigError, match="unknown dataset 'no-such-set'"):
        load_dataset("no-such-set")


def test_imagefolder_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(lethe.DataError, match="image folder not found"):
        load_dataset(f"imagefolder:{tmp_path / 'nothing-here'}")


def test_empty_folder_is_a_data_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(lethe.DataError, match="no class folders"):
        read_image_folder(tmp_path / "train")


def test_class_folders_without_images_are_a_data_error(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(lethe.DataError, match="no images"):
        read_image_folder(tmp_path / "train")


@pytest.mark.parametrize(
    "content",
    [b"this is not a png" * 4, b"", "truncated"],
    ids=["garbage", "empty", "truncated"],
)
def test_corrupt_image_is_a_data_error_naming_the_file(tmp_path, content):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "good.png")
    if content == "truncated":
        content = (folder / "good.png").read_bytes()[:40]
    bad = folder / "broken.png"
    bad.write_bytes(content)
    with pytest.raises(lethe.DataError) as info:
        read_image_folder(tmp_path / "train", channels=3)
    assert str(bad) in str(info.value)


def test_images_of_different_sizes(tmp_path):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "small.png")
    Image.new("RGB", (12, 10)).save(folder / "big.png")
    with pytest.raises(lethe.DataError, match="differ in size"):
        read_image_folder(tmp_path / "train", channels=3)
    data, _ = read_image_folder(tmp_path / "train", channels=3, size=6)
    assert data.images.shape == (2, 3, 6, 6)


def test_grey_and_rgb_decoding(tmp_path):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    Image.new("L", (5, 5), 200).save(folder / "grey.png")
    Image.new("RGB", (5, 5), (200, 0, 0)).save(folder / "red.bmp")
    rgb, _ = read_image_folder(tmp_path / "train", channels=3)
    assert rgb.images.shape == (2, 3, 5, 5)
    grey, _ = read_image_folder(tmp_path / "train", channels=1)
    assert grey.images.shape == (2, 1, 5, 5)


# --- idx files (Fashion-MNIST format) -----------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_read_idx_images_and_labels(tmp_path, compressed):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1, 0], dtype=np.uint8)
    for name, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        path = tmp_path / (name + (".gz" if compressed else ""))
        raw = idx_bytes(array)
        path.write_bytes(gzip.compress(raw) if compressed else raw)
        read = _read_idx(path)
        assert read.shape == array.shape
        assert np.array_equal(read, array)


def test_read_idx_truncated_is_a_data_error(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 4, 4)))[:-5])
    with pytest.raises(lethe.DataError, match="truncated"):
        _read_idx(path)


def test_read_idx_missing_or_not_gzip_is_a_data_error(tmp_path):
    with pytest.raises(lethe.DataError, match="cannot read"):
        _read_idx(tmp_path / "absent-idx1-ubyte")
    bad = tmp_path / "labels-idx1-ubyte.gz"
    bad.write_bytes(b"plainly not gzip")
    with pytest.raises(lethe.DataError, match="cannot read"):
        _read_idx(bad)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x00", b"\x00\x00\x08\x01", b"\x00\x00\x08\x03\x00\x00\x00"],
    ids=["empty", "two-bytes", "no-dims", "short-dims"],
)
def test_read_idx_shorter_than_its_header_is_a_data_error(tmp_path, content):
    """A file cut inside its header must be reported like any other truncated idx file."""
    path = Path(tmp_path / "train-labels-idx1-ubyte")
    path.write_bytes(content)
    with pytest.raises(lethe.DataError, match=str(path)):
        _read_idx(path)


def test_random_crop_cuts_a_window_of_the_zero_padded_image():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    gen = torch.Generator().manual_seed(0)
    out = random_crop(images, 2, gen)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for b in range(2):  # each output is one of the 5 x 5 windows of its own padded image
        windows = [padded[b, :, i : i + 4, j : j + 4] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)
    assert torch.equal(random_crop(images, 0), images)


def test_random_flip_flips_about_half_of_a_batch():
    images = torch.arange(200 * 4, dtype=torch.float32).view(200, 1, 1, 4)
    out = random_flip(images, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images, strict=True)])
    assert bool((flipped ^ kept).all()) and 70 < int(flipped.sum()) < 130


def test_dataset_fetches_batches_like_single_items():
    data = ImageData(torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8), torch.arange(6))
    bundle = DatasetBundle("t", [str(i) for i in range(6)], data, data, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    plain = TensorImageDataset(data, bundle)
    batch = plain.__getitems__([4, 1])
    assert [y for _, y in batch] == [4, 1]
    assert torch.equal(batch[0][0], plain[4][0]) and torch.equal(batch[1][0], plain[1][0])
    loader = torch.utils.data.DataLoader(TensorImageDataset(data, bundle, augment=True), batch_size=4)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 8, 8) and y.tolist() == [0, 1, 2, 3]
