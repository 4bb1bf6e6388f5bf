"""``unlearn_model`` gives a method's retained and forget samples one transform (issue 16): SVD's
``sample_transform`` setting, the training augmentation on both sides by default as in the authors'
code."""

from __future__ import annotations

import pytest
import torch

import lethe
from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.pipeline import make_splits, unlearn_model


def augmented_sides(monkeypatch, method: str, overrides: dict) -> tuple[bool, bool]:
    """Whether the loaders ``unlearn_model`` hands ``method`` augment (retained, forget) samples."""
    seen = {}

    def spy(model, name, *, forget, retain, **kwargs):
        seen["retain"], seen["forget"] = retain.dataset.padding > 0, forget.dataset.padding > 0
        return model, None

    monkeypatch.setattr(lethe, "unlearn", spy)
    data = ImageData(torch.zeros(40, 3, 8, 8, dtype=torch.uint8), torch.arange(40) % 4)
    bundle = DatasetBundle("toy", ["a", "b", "c", "d"], data, data, (0.5,) * 3, (0.5,) * 3)
    splits = make_splits(bundle, (1,), 0.0, 0)
    unlearn_model(torch.nn.Identity(), method, splits, Engine(device="cpu", progress=False), overrides)
    return seen["retain"], seen["forget"]


def test_svd_samples_share_one_transform(monkeypatch):
    assert augmented_sides(monkeypatch, "svd", {}) == (True, True)  # the authors' choice, the default
    assert augmented_sides(monkeypatch, "svd", {"sample_transform": "plain"}) == (False, False)
    with pytest.raises(ConfigError, match="sample_transform"):
        augmented_sides(monkeypatch, "svd", {"sample_transform": "flipped"})


def test_methods_without_the_setting_keep_their_transforms(monkeypatch):
    assert augmented_sides(monkeypatch, "delete", {}) == (True, True)  # gradient methods: both augmented
    assert augmented_sides(monkeypatch, "ssd", {}) == (False, True)  # training-free: forget side only
