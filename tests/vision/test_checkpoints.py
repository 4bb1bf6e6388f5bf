"""lethe_vision.checkpoints.import_model: a model trained elsewhere becomes a lethe checkpoint."""

from __future__ import annotations

import pytest
import torch
from cli_testing import listing

from lethe.errors import CheckpointError, ConfigError
from lethe_vision.checkpoints import import_model, load_model
from lethe_vision.models import ModelSpec, build_model


@pytest.mark.parametrize(("arch", "channels"), [("timm:resnet10t", 3), ("torchvision:resnet18", 1), ("small-cnn", 3)])
def test_import_model_keeps_the_network(tmp_path, arch, channels):
    spec = ModelSpec(arch, 3, channels, 16, width=4 if arch == "small-cnn" else None)
    theirs = build_model(spec).eval()
    inner = theirs[1] if channels == 1 and arch.startswith("torchvision") else theirs  # a plain torchvision net
    path = import_model(inner.state_dict(), spec, ["a", "b", "c"], [0.5], [0.25], tmp_path / "m.safetensors")
    model, info = load_model(path)
    x = torch.randn(2, channels, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), theirs(x))
    assert info["classes"] == ["a", "b", "c"] and info["dataset"] is None
    assert info["preprocess"] == {"image_size": 16, "mean": [0.5], "std": [0.25], "channels": channels}
    assert info["imported"] == {"source": "python"}
    import_model(theirs, spec, ["a", "b", "c"], [0.5], [0.25], tmp_path / "module.safetensors")  # a module too


def test_import_model_rejects_what_does_not_fit(tmp_path):
    spec = ModelSpec("timm:resnet10t", 3, 3, 16)
    state = build_model(spec).state_dict()
    with pytest.raises(ConfigError, match="2 class names for a model with 3 outputs"):
        import_model(state, spec, ["a", "b"], [0.5], [0.5], tmp_path / "m.safetensors")
    with pytest.raises(ConfigError, match="distinct"):
        import_model(state, spec, ["a", "a", "b"], [0.5], [0.5], tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"fc.weight is \(3, 512\) in the weights, \(4, 512\)"):
        import_model(state, ModelSpec("timm:resnet10t", 4, 3, 16), "abcd", [0.5], [0.5], tmp_path / "m.safetensors")
    with pytest.raises(ConfigError, match="std values must be positive"):
        import_model(state, spec, "abc", [0.5], [0.0], tmp_path / "m.safetensors")
    assert listing(tmp_path) == []
