"""Model registry: every architecture builds with a dataset-sized head; SVD hooks see every layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lethe
from lethe.activations import GramCollector
from lethe_vision.models import MODELS, ModelSpec, RepeatChannels, build_model
from lethe_vision.pipeline import build_checked

REGISTERED = [name for name in MODELS.names() if ":" not in name]
NUM_CLASSES = 5


def spec_for(arch: str, num_classes: int = NUM_CLASSES) -> ModelSpec:
    """Small inputs and widths: cifar-* on 32x32 RGB, small-cnn on 28x28 grey."""
    if arch == "small-cnn":
        return ModelSpec(arch, num_classes, in_channels=1, image_size=28, width=4)
    return ModelSpec(arch, num_classes, in_channels=3, image_size=32, width=4 if "resnet" in arch else 8)


def forward(model: nn.Module, spec: ModelSpec, n: int = 3) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(n, spec.in_channels, spec.image_size, spec.image_size))


def test_registry_lists_the_builtin_architectures():
    assert {"small-cnn", "cifar-resnet18", "cifar-vgg11-bn", "cifar-vgg16-bn"} <= set(REGISTERED)
    assert {"torchvision:<name>", "timm:<name>"} <= set(MODELS.names())


@pytest.mark.parametrize("arch", REGISTERED)
def test_every_registered_architecture_builds(arch):
    spec = spec_for(arch)
    model = build_model(spec)
    assert forward(model, spec).shape == (3, NUM_CLASSES)
    # build_checked also accepts it and keeps the model in training mode
    checked = build_checked(spec)
    assert checked.training
    assert forward(checked, spec).shape == (3, NUM_CLASSES)


@pytest.mark.parametrize("arch", REGISTERED)
def test_head_follows_num_classes(arch):
    spec = spec_for(arch, num_classes=2)
    assert forward(build_model(spec), spec).shape == (3, 2)


def test_width_scales_the_cifar_resnet():
    small = build_model(ModelSpec("cifar-resnet18", 10, width=4))
    wide = build_model(ModelSpec("cifar-resnet18", 10, width=8))
    assert small.conv1.out_channels == 4 and small.fc.in_features == 32
    assert wide.conv1.out_channels == 8 and wide.fc.in_features == 64
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in small.parameters())


def test_cifar_resnet_features_are_the_pooled_penultimate_layer():
    model = build_model(ModelSpec("cifar-resnet18", 10, width=4)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(x)
        assert feats.shape == (2, 32)
        assert torch.allclose(model.fc(feats), model(x))


def test_small_cnn_takes_one_channel():
    spec = ModelSpec("small-cnn", 10, in_channels=1, image_size=28)
    model = build_checked(spec)
    assert model[0].in_channels == 1
    assert forward(model, spec).shape == (3, 10)


def test_torchvision_resnet18_on_grey_input_repeats_channels():
    spec = ModelSpec("torchvision:resnet18", 4, in_channels=1, image_size=32)
    model = build_checked(spec)
    assert isinstance(model[0], RepeatChannels)
    assert forward(model, spec).shape == (3, 4)
    # RGB input needs no wrapper
    rgb = build_model(ModelSpec("torchvision:resnet18", 4, in_channels=3, image_size=32))
    assert not isinstance(rgb, nn.Sequential)
    assert rgb.fc.out_features == 4


def test_repeat_channels():
    x = torch.randn(2, 1, 4, 4)
    y = RepeatChannels()(x)
    assert y.shape == (2, 3, 4, 4)
    assert torch.equal(y[:, 0], y[:, 2])
    rgb = torch.randn(2, 3, 4, 4)
    assert RepeatChannels()(rgb) is rgb


def test_timm_resnet18():
    spec = ModelSpec("timm:resnet18", 3, in_channels=1, image_size=32)
    model = build_checked(spec)
    assert forward(model, spec, n=2).shape == (2, 3)


@pytest.mark.parametrize(
    "arch, needle",
    [
        ("no-such-arch", "no-such-arch"),
        ("torchvision:no_such_net", "no_such_net"),
        ("timm:no_such_net", "no_such_net"),
        ("torchvision:", "torchvision:"),
        ("nosuchfamily:resnet18", "nosuchfamily"),
    ],
)
def test_unknown_architecture_is_a_config_error(arch, needle):
    with pytest.raises(lethe.ConfigError, match=needle):
        build_model(ModelSpec(arch, 10))


def test_unknown_architecture_message_lists_the_choices():
    with pytest.raises(lethe.ConfigError) as info:
        build_model(ModelSpec("resnet-9000", 10))
    assert "small-cnn" in str(info.value) and "cifar-resnet18" in str(info.value)


@pytest.mark.parametrize("width", [0, -3])
def test_non_positive_width_is_a_config_error(width):
    with pytest.raises(lethe.ConfigError, match="width"):
        build_model(ModelSpec("cifar-resnet18", 10, width=width))


def test_vgg_rejects_inputs_too_small_for_five_max_pools():
    with pytest.raises(lethe.ConfigError, match="cifar-vgg11-bn cannot take 3x16x16"):
        build_checked(ModelSpec("cifar-vgg11-bn", 10, in_channels=3, image_size=16, width=8))
    # 32x32 is fine
    build_checked(ModelSpec("cifar-vgg11-bn", 10, in_channels=3, image_size=32, width=8))


def test_build_checked_reports_one_line():
    with pytest.raises(lethe.ConfigError) as info:
        build_checked(ModelSpec("cifar-vgg16-bn", 10, image_size=8, width=8))
    assert "\n" not in str(info.value)


def test_model_spec_round_trips_through_a_dict():
    spec = ModelSpec("cifar-resnet18", 10, 3, 32, 4)
    assert ModelSpec(**spec.to_dict()) == spec


# --- SVD hook coverage: GramCollector sees every Conv2d and Linear of the CIFAR models ---------


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec("cifar-resnet18", 10, 3, 32, width=4),
        ModelSpec("cifar-vgg11-bn", 10, 3, 32, width=8),
        ModelSpec("small-cnn", 10, 1, 28, width=4),
    ],
    ids=lambda s: s.arch,
)
def test_gram_collector_hooks_every_conv_and_linear(spec):
    model = build_checked(spec).eval()
    expected = {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert expected  # the test means something
    with GramCollector(model) as collector, torch.no_grad():
        model(torch.randn(4, spec.in_channels, spec.image_size, spec.image_size))
    grams = collector.grams()
    assert set(grams) == set(expected)
    assert collector.skipped() == []
    for name, module in expected.items():
        gram = grams[name]
        if isinstance(module, nn.Conv2d):
            d = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            d = module.in_features
        assert gram.shape == (1, d, d), name
        assert gram.dtype == torch.float64
        assert torch.isfinite(gram).all(), name
        assert collector.stats[name].rows > 0
    # the hooks are removed on exit: another forward adds nothing
    rows = {n: s.rows for n, s in collector.stats.items()}
    with torch.no_grad():
        model(torch.randn(2, spec.in_channels, spec.image_size, spec.image_size))
    assert {n: s.rows for n, s in collector.stats.items()} == rows


def test_resnet_hooks_include_the_projection_shortcuts():
    model = build_checked(ModelSpec("cifar-resnet18", 10, 3, 32, width=4)).eval()
    with GramCollector(model) as collector, torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    shortcuts = [n for n in collector.grams() if "shortcut" in n]
    # stages 2, 3 and 4 each start with a strided 1x1 projection
    assert sorted(shortcuts) == ["layer2.0.shortcut.0", "layer3.0.shortcut.0", "layer4.0.shortcut.0"]
    assert "fc" in collector.grams()
