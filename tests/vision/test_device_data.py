"""The device-resident data path (issue 17): the same batches as the DataLoader path, and the
decoded-tensor cache of image folders."""

from __future__ import annotations

import pytest
import torch
from image_folders import CLASSES, make_image_folder

from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe_vision.data import DatasetBundle, ImageData, TensorImageDataset
from lethe_vision.datasets import cached_image_folder, read_image_folder
from lethe_vision.device_data import DeviceLoader
from lethe_vision.pipeline import loader


def bundle(n: int = 37, padding: int = 2) -> DatasetBundle:
    gen = torch.Generator().manual_seed(3)
    data = ImageData(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=gen), torch.arange(n) % 5)
    return DatasetBundle("toy", [f"k{i}" for i in range(5)], data, data, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), padding)


def batches(iterable) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in iterable]


@pytest.mark.parametrize(
    ("shuffle", "n", "drop_last"), [(True, 37, False), (True, 40, False), (True, 37, True), (False, 37, False)]
)
def test_device_loader_gives_the_dataloader_batches_for_a_seed(shuffle, n, drop_last):
    b = bundle(n)
    engine = Engine(device="cpu", progress=False, seed=4)
    dataset = TensorImageDataset(b.train, b, augment=shuffle)
    generator = torch.Generator().manual_seed(4)
    reference = torch.utils.data.DataLoader(dataset, 8, shuffle=shuffle, drop_last=drop_last, generator=generator)
    device = DeviceLoader(b.train, b, 8, shuffle=shuffle, augment=shuffle, device="cpu", seed=4, drop_last=drop_last)
    assert len(device) == len(reference) == (n // 8 if drop_last else -(-n // 8))
    assert len(batches(engine.loader(dataset, 8, shuffle=shuffle))) == -(-n // 8)
    for epoch in range(3):  # every epoch draws a new order, crops and flips, as the DataLoader does
        torch.manual_seed(100 + epoch)
        expected = batches(reference)
        torch.manual_seed(100 + epoch)
        got = batches(device)
        assert len(got) == len(expected)
        for (x, y), (ex, ey) in zip(got, expected, strict=True):
            assert torch.equal(y, ey) and y.dtype == ey.dtype
            assert torch.equal(x, ex)


def test_device_loader_augments_and_drops_the_last_partial_batch():
    b = bundle(n=20)
    plain = batches(DeviceLoader(b.train, b, 6, shuffle=False, augment=False, device="cpu"))
    augmented = batches(DeviceLoader(b.train, b, 6, shuffle=False, augment=True, device="cpu"))
    assert [len(y) for _, y in plain] == [6, 6, 6, 2]
    assert not all(torch.equal(a[0], p[0]) for a, p in zip(augmented, plain, strict=True))
    dropped = DeviceLoader(b.train, b, 6, shuffle=True, augment=True, device="cpu", drop_last=True)
    assert len(dropped) == 3 and [len(y) for _, y in dropped] == [6, 6, 6]
    with pytest.raises(ConfigError, match="batch size"):
        DeviceLoader(b.train, b, 0, shuffle=True, augment=True, device="cpu")


def test_the_pipeline_loader_follows_the_engine_setting():
    b = bundle()
    on_device = loader(Engine(device="cpu", progress=False, data_on_device=True), b.train, b, 8, train=True)
    assert isinstance(on_device, DeviceLoader) and len(on_device.dataset) == len(b.train)
    assert not isinstance(loader(Engine(device="cpu", progress=False), b.train, b, 8, train=True), DeviceLoader)


def test_cached_image_folder_decodes_once_and_notices_changes(tmp_path):
    root = make_image_folder(tmp_path / "data", {c: (3, 1) for c in CLASSES})
    cache = tmp_path / "cache"
    first = cached_image_folder(root / "train", list(CLASSES), 3, cache)
    direct, _ = read_image_folder(root / "train", list(CLASSES), channels=3)
    assert torch.equal(first.images, direct.images) and torch.equal(first.labels, direct.labels)
    (stored,) = cache.glob("*.safetensors")
    again = cached_image_folder(root / "train", list(CLASSES), 3, cache)
    assert torch.equal(again.images, first.images)
    stored.write_bytes(b"damaged")  # a damaged cache is decoded again
    assert torch.equal(cached_image_folder(root / "train", list(CLASSES), 3, cache).images, first.images)
    (root / "train" / CLASSES[0] / "000.png").unlink()  # a changed folder gets a new entry
    fewer = cached_image_folder(root / "train", list(CLASSES), 3, cache)
    assert len(fewer) == len(first) - 1 and len(list(cache.glob("*.safetensors"))) == 2
