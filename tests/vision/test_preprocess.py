"""lethe_vision.preprocess: ``Preprocess`` values and records, channel conversion and
normalisation, resizing and class alignment."""

from __future__ import annotations

import pytest
import torch

from lethe.errors import CheckpointError, ConfigError
from lethe_vision.data import DatasetBundle, ImageData, align_classes
from lethe_vision.datasets import resize_images
from lethe_vision.preprocess import Preprocess, apply_preprocess


def _bundle(channels: int = 1) -> DatasetBundle:
    data = ImageData(torch.randint(0, 256, (6, channels, 8, 8), dtype=torch.uint8), torch.tensor([0, 1, 2] * 2))
    return DatasetBundle("toy", ["a", "b", "c"], data, data, (0.3,) * channels, (0.2,) * channels)


def test_preprocess_values_and_records():
    given = Preprocess(mean=(0.5,))
    recorded = Preprocess(32, (0.1, 0.2, 0.3), (0.3, 0.3, 0.3), 3)
    assert given.over(recorded) == Preprocess(32, (0.5,), (0.3, 0.3, 0.3), 3)
    assert Preprocess.from_dict(recorded.to_dict()) == recorded
    assert Preprocess().to_dict() == {} and Preprocess.from_dict(None) == Preprocess()
    with pytest.raises(CheckpointError, match="invalid preprocessing"):
        Preprocess.from_dict({"image_size": 0})
    with pytest.raises(ConfigError, match="channels must be 1 or 3"):
        Preprocess(channels=2)
    with pytest.raises(ConfigError, match="mean needs 1 or 3 values"):
        Preprocess(mean=(0.1, 0.2), channels=3)


def test_apply_converts_channels_and_normalisation():
    grey = _bundle(1)
    rgb = apply_preprocess(grey, Preprocess(channels=3))
    assert rgb.channels == 3 and torch.equal(rgb.train.images[:, 2], grey.train.images[:, 0])
    assert rgb.mean == (0.3,) * 3 and rgb.std == (0.2,) * 3
    back = apply_preprocess(_bundle(3), Preprocess(channels=1, mean=(0.5,), std=(0.25,)))
    assert back.channels == 1 and back.mean == (0.5,) and back.std == (0.25,)
    with pytest.raises(ConfigError, match="3 values but the images have 1"):
        apply_preprocess(grey, Preprocess(mean=(0.1, 0.2, 0.3)))


def test_resize_and_class_alignment():
    data = _bundle(3).train
    assert resize_images(data, 8) is data
    assert resize_images(data, 20).images.shape == (6, 3, 20, 20)
    aligned = align_classes(_bundle(), ["c", "a", "b"])
    assert aligned.classes == ["c", "a", "b"] and aligned.train.labels.tolist() == [1, 2, 0] * 2
    with pytest.raises(ConfigError, match="only in the data: \\['c'\\]"):
        align_classes(_bundle(), ["a", "b", "d"])
