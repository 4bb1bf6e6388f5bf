"""Face models: an embedder (registry ``EMBEDDERS``) plus an identity head (registry ``HEADS``).

``FaceModel.forward`` returns identity logits (what every ``lethe`` method acts on) and
``FaceModel.embed`` the L2-normalised embedding used by verification and probes. Heads:
``linear`` (softmax classifier on the embedding) and ``cosine`` (ArcFace, Deng et al., CVPR 2019:
logits ``s * cos(theta)``; the additive angular margin ``m`` is applied to the target logit during
training only, by ``arcface_logits``; ``margin_warmup_epochs`` ramps it linearly from 0, which keeps
a model trained from scratch on imbalanced identities from settling on the largest one).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from lethe import Registry
from lethe import pretrained as weights_registry
from lethe.errors import CheckpointError, ConfigError
from lethe_face._facenet import facenet
from lethe_face.spec import FaceModelSpec
from lethe_vision.models import BasicBlock

#: ``builder(spec, load_pretrained) -> nn.Module`` giving unnormalised embeddings ``[N, D]``.
EMBEDDERS: Registry[Callable[..., nn.Module]] = Registry("embedder")
HEADS: Registry[Callable[..., nn.Module]] = Registry("head")

#: The file facenet-pytorch caches its VGGFace2 weights under (``$TORCH_HOME/checkpoints``).
VGGFACE2_FILE = "20180402-114759-vggface2.pt"


class FaceModel(nn.Module):
    """Embedder + identity head as one module: ``forward`` gives logits, ``embed`` embeddings."""

    def __init__(self, embedder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedder(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``[N, D]``."""
        return F.normalize(self.embedder(x).float(), dim=1)


class SafeBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that uses its running statistics for a training batch of one sample (a forget
    set whose size is one more than a multiple of the batch size would otherwise stop training)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class CosineHead(nn.Linear):
    """``scale * cos(theta)`` between the normalised embedding and normalised class weights.

    An ``nn.Linear`` subclass, so SVD's hooks see it and ``lethe.probe.head_layer`` finds it."""

    def __init__(
        self, dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.5, margin_warmup_epochs: int = 0
    ) -> None:
        super().__init__(dim, num_classes, bias=False)
        if not scale > 0 or not 0 <= margin < math.pi / 2:
            raise ConfigError(f"cosine head needs scale > 0 and 0 <= margin < pi/2; got {scale}, {margin}")
        if margin_warmup_epochs < 0:
            raise ConfigError(f"margin_warmup_epochs must not be negative, got {margin_warmup_epochs}")
        self.scale = scale
        self.margin = margin
        self.margin_warmup_epochs = margin_warmup_epochs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


def arcface_logits(logits: torch.Tensor, labels: torch.Tensor, scale: float, margin: float) -> torch.Tensor:
    """ArcFace training logits: the target's ``s*cos(theta)`` becomes ``s*cos(theta + m)`` (with
    insightface's fallback ``cos(theta) - m*sin(m)`` where ``theta + m`` would pass pi)."""
    if margin == 0:
        return logits
    cos = (logits.float() / scale).clamp(-1 + 1e-7, 1 - 1e-7)
    target = cos.gather(1, labels.view(-1, 1))
    sin = (1 - target.pow(2)).sqrt()
    phi = target * math.cos(margin) - sin * math.sin(margin)
    phi = torch.where(target > math.cos(math.pi - margin), phi, target - math.sin(math.pi - margin) * margin)
    return scale * cos.scatter(1, labels.view(-1, 1), phi)


@HEADS.register("linear")
def linear_head(spec: FaceModelSpec) -> nn.Module:
    """Softmax classifier on the (unnormalised) embedding."""
    return nn.Linear(spec.embedding_dim, spec.num_classes)


@HEADS.register("cosine")
def cosine_head(spec: FaceModelSpec) -> nn.Module:
    """ArcFace-style cosine head (scale ``s``, margin ``m``)."""
    return CosineHead(spec.embedding_dim, spec.num_classes, spec.scale, spec.margin, spec.margin_warmup_epochs)


class LightResNet(nn.Module):
    """A small ResNet embedder for CPU runs at 64-112 px: 3x3 stride-2 stem, four stages of basic
    blocks (widths w, 2w, 4w, 8w; strides 1, 2, 2, 2), global average pool, linear + BatchNorm1d
    to the embedding (the FaceNet / ArcFace "BN-FC-BN" embedding layer without dropout)."""

    def __init__(self, width: int, dim: int, blocks: tuple[int, ...] = (1, 2, 2, 1)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            stages += [BasicBlock(cin if j == 0 else cout, cout, (2 if i else 1) if j == 0 else 1) for j in range(n)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, dim, bias=False)
        self.bn = SafeBatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1)))


@EMBEDDERS.register("light-resnet")
def light_resnet(spec: FaceModelSpec, load_pretrained: bool = True) -> nn.Module:
    """``LightResNet`` with base width ``width`` (default 16)."""
    if spec.pretrained:
        raise ConfigError("light-resnet has no pretrained weights; train it from scratch (no --pretrained)")
    return LightResNet(spec.width or 16, spec.embedding_dim)


def vggface2_weights(weights: str | None) -> Path:
    """The local VGGFace2 state dict: ``weights`` if given, else facenet-pytorch's cache file."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"pretrained weights file not found: {path}")
        return path
    torch_home = Path(os.environ.get("TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"))
    candidates = [
        torch_home.expanduser() / "checkpoints" / VGGFACE2_FILE,
        Path(torch.hub.get_dir()) / "checkpoints" / VGGFACE2_FILE,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(
        f"VGGFace2 weights are not on this machine (looked for {candidates[0]}); download "
        f"https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/{VGGFACE2_FILE} and pass "
        "--weights FILE, or train from scratch without --pretrained"
    )


@EMBEDDERS.register("inception-resnet-v1")
def inception_resnet_v1(spec: FaceModelSpec, load_pretrained: bool = True) -> nn.Module:
    """facenet-pytorch ``InceptionResnetV1`` (Szegedy et al., 2017; FaceNet, Schroff et al., 2015)
    giving its 512-d ``last_bn`` output (unnormalised). Built with ``pretrained=None`` (never a
    download); ``pretrained='vggface2'`` loads a LOCAL state dict. Inputs of 80 px or more."""
    if spec.embedding_dim != 512:
        raise ConfigError(f"inception-resnet-v1 embeds into 512 dimensions, not {spec.embedding_dim}")
    if spec.pretrained not in (None, "vggface2"):
        raise ConfigError(f"inception-resnet-v1 pretrained must be 'vggface2' or none, not {spec.pretrained!r}")
    net = facenet().InceptionResnetV1(pretrained=None, classify=False)
    if spec.pretrained and load_pretrained:
        path = vggface2_weights(spec.weights)
        what = f"{path} is not a facenet-pytorch InceptionResnetV1 state dict"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # random bytes, a truncated file, a pickle of other objects: unpickling errors
            raise CheckpointError(f"{what} (torch.load cannot read it: {type(err).__name__})") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{what} (it holds no mapping of names to tensors)")
        try:
            net.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")}, strict=True)
        except RuntimeError as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else "".join(lines) or type(err).__name__
            raise CheckpointError(f"{what} ({detail[:300]})") from None
    net.classify, net.logits = True, nn.Identity()  # forward ends at last_bn: the raw embedding
    net.last_bn.__class__ = SafeBatchNorm1d
    return net


@EMBEDDERS.register("dlib-resnet")
def dlib_resnet(spec: FaceModelSpec, load_pretrained: bool = True) -> nn.Module:
    """dlib's face recognition ResNet (``lethe_face.dlib_resnet``; He et al., 2016; dlib's
    ``dnn_face_recognition_ex.cpp``), 128-d; ``pretrained='dlib'`` loads dlib's trained network
    (99.38 % on LFW) from ``data/models/`` (``make dlib-models``); it reads 150x150 chips."""
    from lethe_face.dlib_resnet import dlib_embedder

    return dlib_embedder(spec, load_pretrained)


class TimmEmbedder(nn.Module):
    """A timm network's pooled features (``backbone``, classifier removed) through the linear +
    BatchNorm1d embedding layer of ``LightResNet`` (``fc``, ``bn``)."""

    def __init__(self, backbone: nn.Module, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.num_features, dim, bias=False)
        self.bn = SafeBatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(self.backbone(x)))


@EMBEDDERS.register("timm", family=True)
def timm_embedder(spec: FaceModelSpec, load_pretrained: bool = True) -> nn.Module:
    """``TimmEmbedder`` around timm's ``<name>`` (``timm:<name>``); ``pretrained`` names weights of
    ``lethe.pretrained`` for that network (``efficientnet-lite0`` for ``timm:tf_efficientnet_lite0``)."""
    import timm

    name = spec.embedder.partition(":")[2]
    if not timm.is_model(name):
        raise ConfigError(f"timm has no model {name!r}")
    if spec.pretrained:
        weights_registry.check_pretrained(spec.pretrained)
    backbone = timm.create_model(name, pretrained=False, num_classes=0)
    if spec.pretrained and load_pretrained:
        weights_registry.load_pretrained(backbone, spec.pretrained, f"timm:{name}")
    return TimmEmbedder(backbone, spec.embedding_dim)


def build_face_model(spec: FaceModelSpec, load_pretrained: bool = True) -> FaceModel:
    """Build the model described by ``spec`` (pretrained weights only when ``load_pretrained``)."""
    if spec.num_classes < 2:
        raise ConfigError(f"a face model needs at least 2 identities, got {spec.num_classes}")
    if spec.embedding_dim < 2 or (spec.width is not None and spec.width < 1):
        raise ConfigError(f"embedding_dim must be >= 2 and width >= 1; got {spec.embedding_dim}, {spec.width}")
    if spec.frozen_blocks and spec.embedder != "dlib-resnet":
        raise ConfigError(f"frozen_blocks is a dlib-resnet option; {spec.embedder} trains every layer")
    builder, _ = EMBEDDERS.get(spec.embedder)
    head_builder, _ = HEADS.get(spec.head)
    return FaceModel(builder(spec, load_pretrained), head_builder(spec))
