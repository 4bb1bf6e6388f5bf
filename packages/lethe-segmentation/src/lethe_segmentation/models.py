"""Model registry: every segmentation-models-pytorch architecture by name (``Unet``, ``FPN``,
``DeepLabV3Plus``, ...) with any of its encoders (``resnet18``, ``tu-<timm name>``, ...).

``encoder_weights=None`` builds offline (random initialisation); ``"imagenet"`` downloads the
encoder's ImageNet weights through smp when the user has internet. ``pretrained`` instead names
weights of ``lethe.pretrained.PRETRAINED`` copied into the encoder (``efficientnet-lite0`` for
``tu-tf_efficientnet_lite0``, installed with pip; ``hub``; ``file:<path>``); the network's
classifier and any layers past the encoder's last stage are dropped. A checkpoint always
rebuilds its model without either: the weights come from the checkpoint.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lethe import Registry
from lethe.errors import ConfigError
from lethe.pretrained import LIBRARIES, check_pretrained, load_pretrained
from lethe_vision.models import StoredSpec

MODELS: Registry[Callable[..., nn.Module]] = Registry("architecture")


@dataclass
class ModelSpec(StoredSpec):
    """How to rebuild a model: stored in every checkpoint."""

    arch: str
    encoder: str
    num_classes: int
    encoder_depth: int | None = None
    decoder_channels: list[int] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    encoder_weights: str | None = None  # the initialisation of the ORIGINAL model (informative)
    #: pretrained weights of the ORIGINAL model's encoder (``lethe.pretrained``), informative as above
    pretrained: str | None = None

    def smp_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.kwargs)
        if self.encoder_depth is not None:
            kwargs["encoder_depth"] = self.encoder_depth
        if self.decoder_channels is not None:
            kwargs["decoder_channels"] = list(self.decoder_channels)
        return kwargs


def _smp():
    import segmentation_models_pytorch as smp

    return smp


def _register_smp() -> None:
    smp = _smp()
    for _, cls in sorted(smp.MODEL_ARCHITECTURES_MAPPING.items()):

        def builder(spec: ModelSpec, weights: str | None, _cls=cls) -> nn.Module:
            return _cls(
                encoder_name=spec.encoder, encoder_weights=weights, classes=spec.num_classes, **spec.smp_kwargs()
            )

        builder.smp_class = cls  # type: ignore[attr-defined]
        MODELS.add(cls.__name__, builder)


_register_smp()


def canonical_arch(arch: str) -> str:
    """Case-insensitive architecture name -> registered name (``unet`` -> ``Unet``)."""
    names = {n.lower(): n for n in MODELS.names()}
    return names.get(arch.lower(), arch)


def encoder_names() -> list[str]:
    """smp's own encoder names (any timm model is also available as ``tu-<name>``)."""
    return sorted(_smp().encoders.get_encoder_names())


def build_model(spec: ModelSpec, weights: str | None = None) -> nn.Module:
    """Build the model of ``spec``; ``weights``: ``None`` (random) or an smp weight name (``imagenet``)."""
    builder, _ = MODELS.get(canonical_arch(spec.arch))
    if spec.num_classes < 2:
        raise ConfigError(f"a segmentation model needs at least 2 classes, got {spec.num_classes}")
    encoder = spec.encoder
    if not encoder.startswith(("tu-", "timm-")) and encoder not in encoder_names():
        raise ConfigError(
            f"unknown encoder {encoder!r}; smp encoders include {', '.join(encoder_names()[:12])}, ... "
            "or any timm model as tu-<name>"
        )
    check_arguments(builder, spec)
    try:
        return builder(spec, weights)
    except (KeyError, ValueError, TypeError, AssertionError, RuntimeError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot build {spec.arch} with encoder {encoder}: {text[:300]}") from None
    except OSError as err:  # weights not downloadable (offline)
        raise ConfigError(
            f"cannot load {weights} weights for encoder {encoder} ({str(err).splitlines()[0][:200]}); "
            "use --encoder-weights none offline"
        ) from None


def check_arguments(builder: Callable[..., nn.Module], spec: ModelSpec) -> None:
    """Refuse a model argument the architecture does not take: smp hands any other keyword to the
    encoder, and its own encoders drop them silently (only ``tu-`` timm encoders use them)."""
    cls = getattr(builder, "smp_class", None)
    if cls is None or spec.encoder.startswith("tu-"):
        return
    params = inspect.signature(cls.__init__).parameters.values()
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    unknown = sorted(set(spec.smp_kwargs()) - named)
    if unknown:
        own = sorted(named - {"encoder_name", "encoder_weights", "classes"})
        raise ConfigError(
            f"{spec.arch} takes no argument {', '.join(unknown)} (with encoder {spec.encoder} it would be ignored); "
            f"its arguments: {', '.join(own)}"
        )


@LIBRARIES.register("smp", family=True)
def smp_encoder(name: str, pretrained: bool) -> nn.Module:
    """smp's own encoder ``name`` (its ``imagenet`` weights if asked): the reference network of
    ``smp:<name>``, for ``hub`` weights of non-timm encoders."""
    if name not in encoder_names():
        raise ConfigError(f"smp has no encoder {name!r}")
    return _smp().encoders.get_encoder(name, weights="imagenet" if pretrained else None)


def encoder_reference(model: nn.Module, spec: ModelSpec) -> tuple[nn.Module, str]:
    """The module holding the encoder's library weights and that library's name for the network:
    the timm model inside ``tu-<name>`` (``timm:<name>``), else smp's encoder (``smp:<name>``)."""
    if spec.encoder.startswith("tu-"):
        return model.encoder.model, f"timm:{spec.encoder[3:]}"
    return model.encoder, f"smp:{spec.encoder}"


def initial_model(spec: ModelSpec) -> nn.Module:
    """The model training starts from: ``spec.encoder_weights`` through smp, or ``spec.pretrained``
    copied into the encoder, else random."""
    if spec.pretrained and spec.encoder_weights:
        raise ConfigError("give encoder weights or pretrained weights, not both")
    if spec.pretrained:
        check_pretrained(spec.pretrained)
    model = build_model(spec, spec.encoder_weights)
    if spec.pretrained:
        target, arch = encoder_reference(model, spec)
        load_pretrained(target, spec.pretrained, arch, partial=True)
    return model


def output_stride(model: nn.Module) -> int:
    """The factor input height and width must be divisible by (smp's check), default 32."""
    encoder = getattr(model, "encoder", None)
    if not getattr(model, "requires_divisible_input_shape", True):
        return 1
    return int(getattr(encoder, "output_stride", 32) or 32)


def check_model(model: nn.Module, spec: ModelSpec, height: int, width: int) -> None:
    """Run a dummy ``[1, 3, height, width]`` batch: the output must be ``[1, C, height, width]``."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, height, width))
    except RuntimeError as err:
        raise ConfigError(
            f"{spec.arch} with encoder {spec.encoder} cannot take {height}x{width} inputs "
            f"({str(err).splitlines()[0][:200]})"
        ) from None
    finally:
        model.train(was)
    if tuple(out.shape) != (1, spec.num_classes, height, width):
        raise ConfigError(
            f"{spec.arch} gives outputs {tuple(out.shape)} for {height}x{width} inputs, "
            f"not [1, {spec.num_classes}, {height}, {width}]"
        )
