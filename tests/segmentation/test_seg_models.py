"""segmentation-models-pytorch architectures by name, built offline (``encoder_weights=None``)."""

from __future__ import annotations

import pytest
import torch

from lethe.errors import ConfigError
from lethe_segmentation.models import MODELS, ModelSpec, build_model, canonical_arch, check_model, output_stride
from lethe_segmentation.pipeline import resolve_resolution
from lethe_segmentation.transforms import Resolution

#: Small but real configurations of three architecture families.
CASES = {
    "Unet": dict(encoder="mobilenet_v2", encoder_depth=3, decoder_channels=[16, 8, 8]),
    "FPN": dict(encoder="resnet18", kwargs={"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32}),
    "DeepLabV3Plus": dict(encoder="resnet18", kwargs={"decoder_channels": 32}),
}


def test_registry_holds_smp_architectures():
    names = MODELS.names()
    for name in ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "PSPNet", "Linknet"):
        assert name in names
    assert canonical_arch("deeplabv3plus") == "DeepLabV3Plus"


@pytest.mark.parametrize("arch", sorted(CASES))
def test_builds_offline_and_predicts_every_pixel(arch):
    spec = ModelSpec(arch, num_classes=5, **CASES[arch])
    model = build_model(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5, 64, 64)
    check_model(model, spec, 64, 64)


def test_stride_is_checked_against_the_size():
    spec = ModelSpec("FPN", "resnet18", 3, kwargs={"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32})
    model = build_model(spec)
    assert output_stride(model) == 32
    with pytest.raises(ConfigError, match="size 40x64 is not divisible by the model stride 32.*32x64"):
        resolve_resolution(model, spec, Resolution(size=(40, 64)), (40, 64))
    assert resolve_resolution(model, spec, Resolution(size=(64, 64)), (40, 64)).divisor == 32


def test_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown architecture 'Nope'"):
        build_model(ModelSpec("Nope", "resnet18", 3))
    with pytest.raises(ConfigError, match="unknown encoder 'resnet7'"):
        build_model(ModelSpec("Unet", "resnet7", 3))
    with pytest.raises(ConfigError, match="cannot build Unet with encoder resnet18: Model depth is 3"):
        build_model(ModelSpec("Unet", "resnet18", 3, encoder_depth=3, decoder_channels=[16, 8]))
