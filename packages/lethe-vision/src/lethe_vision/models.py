"""Model registry: ``small-cnn``, ``cifar-resnet18``, ``cifar-vgg11-bn``, ``cifar-vgg16-bn``,
``torchvision:<name>`` and ``timm:<name>``, each with its head sized to the dataset.

``ModelSpec.pretrained`` names weights of ``lethe.pretrained.PRETRAINED`` that ``build_model``
copies in (backbone weights kept, head re-sized to the dataset's classes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lethe import Registry
from lethe.errors import ConfigError
from lethe.pretrained import check_pretrained, load_pretrained

MODELS: Registry[Callable[..., nn.Module]] = Registry("architecture")


class StoredSpec:
    """Base of the model specs checkpoints store (dataclasses with a ``pretrained`` field)."""

    def to_dict(self) -> dict:
        """The fields, without ``pretrained`` when it is None (the form of checkpoints and cache
        keys written before the field existed)."""
        fields = asdict(self)
        if fields.get("pretrained", 0) is None:
            del fields["pretrained"]
        return fields


@dataclass
class ModelSpec(StoredSpec):
    """How to rebuild a model: stored in every checkpoint."""

    arch: str
    num_classes: int
    in_channels: int = 3
    image_size: int = 32
    width: int | None = None
    #: weights the model started from (``lethe.pretrained``); None: random initialisation
    pretrained: str | None = None


def build_model(spec: ModelSpec) -> nn.Module:
    """Build the model described by ``spec``: randomly initialised, then ``spec.pretrained``'s
    weights copied into it when given."""
    builder, arg = MODELS.get(spec.arch)
    if spec.width is not None and spec.width < 1:
        raise ConfigError(f"width must be positive, got {spec.width}")
    if spec.pretrained:
        check_pretrained(spec.pretrained)
    model = builder(spec, arg) if arg is not None else builder(spec)
    if spec.pretrained:
        load_pretrained(backbone(model), spec.pretrained, spec.arch)
    return model


def backbone(model: nn.Module) -> nn.Module:
    """The network inside a ``RepeatChannels`` wrapper (torchvision models on grey images), else ``model``:
    the module whose tensor names are the library's."""
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[0], RepeatChannels):
        return model[1]
    return model


@MODELS.register("small-cnn")
def small_cnn(spec: ModelSpec) -> nn.Module:
    """Two conv blocks and a two-layer head, for 28x28 inputs (Fashion-MNIST)."""
    w = spec.width or 16
    feat = spec.image_size // 4
    return nn.Sequential(
        nn.Conv2d(spec.in_channels, w, 3, padding=1, bias=False),
        nn.BatchNorm2d(w),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * w),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * w * feat * feat, 128),
        nn.ReLU(inplace=True),
        nn.Linear(128, spec.num_classes),
    )


class BasicBlock(nn.Module):
    """ResNet basic block (He et al., 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem, no max-pool, four stages of widths w, 2w, 4w, 8w."""

    def __init__(self, blocks: tuple[int, ...], num_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            stage = [BasicBlock(cin if j == 0 else cout, cout, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
            layers.append(nn.Sequential(*stage))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate (pooled) features."""
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@MODELS.register("cifar-resnet18")
def cifar_resnet18(spec: ModelSpec) -> nn.Module:
    """ResNet-18 for 32x32 inputs (``width`` 64 is the papers' model)."""
    return CifarResNet((2, 2, 2, 2), spec.num_classes, spec.in_channels, spec.width or 64)


VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


def cifar_vgg_bn(config: str, spec: ModelSpec) -> nn.Module:
    """VGG with BatchNorm for 32x32 inputs; ``width`` scales the channels (64 = original)."""
    scale = (spec.width or 64) / 64
    layers: list[nn.Module] = []
    cin = spec.in_channels
    for v in VGG_CONFIGS[config]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        cout = max(1, int(v * scale))
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, spec.num_classes))


MODELS.add("cifar-vgg11-bn", lambda spec: cifar_vgg_bn("vgg11", spec))
MODELS.add("cifar-vgg16-bn", lambda spec: cifar_vgg_bn("vgg16", spec))


class RepeatChannels(nn.Module):
    """Repeat a 1-channel input to 3 channels, for ImageNet architectures on grey images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@MODELS.register("torchvision", family=True)
def torchvision_model(spec: ModelSpec, name: str) -> nn.Module:
    """Any torchvision classifier, randomly initialised, head sized to the dataset."""
    import torchvision

    if name not in torchvision.models.list_models(torchvision.models):
        raise ConfigError(f"torchvision has no classification model {name!r}")
    kwargs = {"image_size": spec.image_size} if name.startswith("vit_") else {}
    model = torchvision.models.get_model(name, weights=None, num_classes=spec.num_classes, **kwargs)
    return nn.Sequential(RepeatChannels(), model) if spec.in_channels == 1 else model


@MODELS.register("timm", family=True)
def timm_model(spec: ModelSpec, name: str) -> nn.Module:
    """Any timm model, randomly initialised, ``in_chans`` and head sized to the dataset."""
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"timm has no model {name!r}")
    return timm.create_model(name, pretrained=False, num_classes=spec.num_classes, in_chans=spec.in_channels)
