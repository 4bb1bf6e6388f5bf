"""Streamed input-activation Gram matrices for every Conv2d, Linear and MultiheadAttention.

Implements step 2 of SVD unlearning (Kodge et al., TMLR 2024; methods.md s.2), but instead of a
dense SVD of a sampled activation matrix ``R`` (d x n) it accumulates ``R R^T`` in float64 over
all patches and batches: exact, memory bounded by d^2, and summable across processes. While a
layer has seen fewer rows than it has features (n < d: few samples, or a wide layer at a coarse
resolution), the rows themselves are kept instead (n x d, less than the Gram's d x d) and the
spectrum comes from their thin SVD, O(d n^2) instead of the O(d^3) of an eigen decomposition; the
eigenvalues beyond rank n are zero, so the projectors are the same.

A conv's patches are cut from its input padded the way the module itself pads it (``conv_padding``:
``padding="same"`` and ``padding_mode``, timm's dynamic TF "SAME" ``Conv2dSame``), so that they are
the patches its weight multiplies; a conv subclass whose padding is unknown is a ``ConfigError``.
"""

from __future__ import annotations

import fnmatch
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lethe.errors import ConfigError
from lethe.projection import Spectrum, dual_spectrum, spectrum, thin_spectrum

#: Elements of float64 activations handled per chunk (bounds the transient memory).
CHUNK_ELEMENTS = 1 << 25


@dataclass
class LayerStats:
    """Gram matrix of one layer's input, ``[groups, d, d]`` float64, plus the row count; the rows
    themselves while there are at most ``d`` of them (``keep_rows``)."""

    name: str
    module: nn.Module
    kind: str
    groups: int
    rows: int = 0
    product_dtype: torch.dtype = torch.float64
    keep_rows: bool = True
    _gram: torch.Tensor | None = field(default=None, repr=False)
    _kept: list[torch.Tensor] = field(default_factory=list, repr=False)

    def add(self, features: torch.Tensor) -> None:
        """Add ``features`` of shape ``[groups, d, n]``: kept as rows (float64) while the total stays
        at most ``d``, else each chunk's product is taken in ``product_dtype`` and summed into the
        float64 Gram matrix."""
        n = features.shape[-1]
        if self.keep_rows and self._gram is None and self.rows + n <= features.shape[1]:
            self._kept.append(features.double())
        else:
            self._fold()
            self._accumulate(features)
        self.rows += n

    def _accumulate(self, features: torch.Tensor) -> None:
        step = max(1, CHUNK_ELEMENTS // max(1, features.shape[0] * features.shape[1]))
        for start in range(0, features.shape[-1], step):
            chunk = features[..., start : start + step].to(self.product_dtype)
            g = torch.bmm(chunk, chunk.transpose(1, 2)).double()
            self._gram = g if self._gram is None else self._gram + g

    def _fold(self) -> None:
        kept, self._kept = self._kept, []
        for features in kept:
            self._accumulate(features)

    @property
    def gram(self) -> torch.Tensor | None:
        """The Gram matrix (kept rows are folded into it from now on); None if the layer never ran."""
        self._fold()
        return self._gram

    def spectrum(self, precision: torch.dtype = torch.float64) -> Spectrum:
        """The Gram matrix's normalised spectrum: of the kept rows (a float64 thin SVD, or in float32
        ``dual_spectrum``'s ``eigh`` of their smaller Gram), or ``eigh`` of the Gram in ``precision``."""
        if self._kept:
            rows = torch.cat(self._kept, dim=-1)
            return thin_spectrum(rows) if precision == torch.float64 else dual_spectrum(rows, precision)
        return spectrum(self.gram, precision)


def weight_of(stats: LayerStats) -> torch.Tensor:
    """The weight tensor that the layer's input Gram matrix acts on."""
    return stats.module.in_proj_weight if stats.kind == "mha" else stats.module.weight


#: ``pad(conv, x)``: ``x`` padded as ``conv`` pads it before its kernel reads it (no padding after).
ConvPadding = Callable[[nn.Conv2d, torch.Tensor], torch.Tensor]

#: Padding of Conv2d subclasses with their own forward, declared by ``register_conv_padding``.
_CONV_PADDINGS: dict[type, ConvPadding] = {}


def register_conv_padding(cls: type[nn.Conv2d], pad: ConvPadding) -> None:
    """Declare how ``cls`` (a Conv2d subclass with its own ``forward``) pads its input, so that SVD
    unlearning can cut the patches its weight really multiplies. ``pad(conv, x)`` returns the
    padded input, which the kernel then reads with ``conv``'s stride and dilation and no padding."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Conv2d)):
        raise ConfigError(f"register_conv_padding takes a Conv2d subclass, got {cls!r}")
    _CONV_PADDINGS[cls] = pad


def _functional_padding(conv: nn.Conv2d, x: torch.Tensor, padding) -> torch.Tensor:
    """Zeros as ``F.conv2d(x, ..., padding=padding)`` adds them: per side, or ``"valid"`` (none), or
    ``"same"``: ``dilation * (k - 1)`` in all, the odd one on the right and bottom, as PyTorch does."""
    if isinstance(padding, str):
        if padding == "valid":
            return x
        if padding != "same":
            raise ConfigError(f"unknown conv padding {padding!r}")
        sides = []
        for k, d in zip(reversed(conv.kernel_size), reversed(conv.dilation), strict=True):
            total = d * (k - 1)
            sides += [total // 2, total - total // 2]
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        sides = [pw, pw, ph, ph]
    return F.pad(x, sides) if any(sides) else x


def _torch_padding(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``nn.Conv2d._conv_forward``: ``F.pad`` in ``padding_mode`` unless zeros, else ``F.conv2d``'s
    own padding (ints or ``"same"``/``"valid"``)."""
    if conv.padding_mode != "zeros":
        return F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
    return _functional_padding(conv, x, conv.padding)


def _timm_same(conv: nn.Conv2d, x: torch.Tensor, helpers) -> torch.Tensor:
    """timm ``Conv2dSame``: dynamic TF "SAME" padding (``pad_same``), then ``F.conv2d`` with none."""
    return helpers.pad_same(x, conv.weight.shape[-2:], conv.stride, conv.dilation)


def _timm_same_export(conv: nn.Conv2d, x: torch.Tensor, helpers) -> torch.Tensor:
    """timm ``Conv2dSameExport``: a ``ZeroPad2d`` fixed at the first input's size, then ``conv.padding``."""
    pad = getattr(conv, "pad", None)
    if pad is None:  # the forward about to run creates it from this input
        pad = nn.ZeroPad2d(helpers.pad_same_arg(x.shape[-2:], conv.weight.shape[-2:], conv.stride, conv.dilation))
    return _functional_padding(conv, pad(x), conv.padding)


def _timm_std(conv: nn.Conv2d, x: torch.Tensor, helpers) -> torch.Tensor:
    """timm ``(Scaled)StdConv2d(Same)``: ``pad_same`` if ``same_pad``, then zeros by ``conv.padding``."""
    if getattr(conv, "same_pad", False):
        x = helpers.pad_same(x, conv.kernel_size, conv.stride, conv.dilation)
    return _functional_padding(conv, x, conv.padding)


#: timm's Conv2d subclasses with their own forward: class name -> (padding, helpers it needs from
#: the class's own module, i.e. the functions its forward calls). timm is never imported here.
_TIMM_PADDINGS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "Conv2dSame": (_timm_same, ("pad_same",)),
    "Conv2dSameExport": (_timm_same_export, ("pad_same_arg",)),
    "StdConv2d": (_timm_std, ()),
    "StdConv2dSame": (_timm_std, ("pad_same",)),
    "ScaledStdConv2d": (_timm_std, ()),
    "ScaledStdConv2dSame": (_timm_std, ("pad_same",)),
}


def conv_padding(conv: nn.Conv2d, name: str = "") -> Callable[[torch.Tensor], torch.Tensor]:
    """How ``conv`` pads its input, read from the class whose forward it runs: ``nn.Conv2d``'s
    (``padding``, ``"same"``, ``padding_mode``), timm's (dynamic TF "SAME" via timm's own
    ``pad_same``) or one declared with ``register_conv_padding``.

    Raises ``ConfigError`` naming layer ``name`` and its type for a subclass with any other
    forward: its patches could be silently wrong (Kodge et al., TMLR 2024, project the weight on
    the space of the patches it multiplies).
    """
    for cls in type(conv).__mro__:
        if cls in _CONV_PADDINGS:
            return functools.partial(_CONV_PADDINGS[cls], conv)
        if cls is nn.Conv2d:
            return functools.partial(_torch_padding, conv)
        if cls.__module__.split(".")[0] == "timm" and cls.__name__ in _TIMM_PADDINGS:
            pad, needs = _TIMM_PADDINGS[cls.__name__]
            helpers = sys.modules.get(cls.__module__)
            if all(hasattr(helpers, n) for n in needs):
                return functools.partial(pad, conv, helpers=helpers)
        if "forward" in vars(cls) or "_conv_forward" in vars(cls):
            break
    kind = f"{type(conv).__module__}.{type(conv).__qualname__}"
    raise ConfigError(
        f"cannot tell how layer {name or '<model>'!r} ({kind}) pads its input: its class has its own "
        "forward. Leave it out with the layers setting, or declare its padding with "
        "lethe.activations.register_conv_padding"
    )


def _output_size(conv: nn.Conv2d, padded: torch.Tensor) -> tuple[int, int]:
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    return (padded.shape[-2] - dh * (kh - 1) - 1) // sh + 1, (padded.shape[-1] - dw * (kw - 1) - 1) // sw + 1


def _conv_features(
    conv: nn.Conv2d,
    x: torch.Tensor,
    positions: int | None = None,
    pad: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Unfold ``x`` into the patches ``conv`` multiplies: padded as the module pads it (``pad``,
    default ``conv_padding(conv)``), then cut with its kernel, stride and dilation.

    ``positions`` keeps that many output positions per sample, drawn uniformly at random without
    replacement (from torch's global generator): an unbiased estimate of the Gram matrix per
    patch, at ``positions / L`` of the cost. Only the kept patches are gathered (no full unfold).
    Returns ``[groups, C_in/groups * k*k, N*L]`` (``N*positions`` when sampling).
    """
    if x.dim() == 3:  # unbatched [C, H, W]
        x = x[None]
    x = (conv_padding(conv) if pad is None else pad)(x)
    return _padded_features(conv, x, _output_size(conv, x), positions)


def _padded_features(conv: nn.Conv2d, x: torch.Tensor, out: tuple[int, int], positions: int | None) -> torch.Tensor:
    """``_conv_features`` of an already padded ``x`` whose conv output is ``out`` (H, W)."""
    if positions is not None and positions < out[0] * out[1]:
        cols = _sampled_patches(x, out, conv.kernel_size, conv.stride, conv.dilation, positions)
    else:
        cols = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=0, stride=conv.stride)
    n, d, length = cols.shape
    g = conv.groups
    return cols.view(n, g, d // g, length).permute(1, 2, 0, 3).reshape(g, d // g, n * length)


def _sampled_patches(
    x: torch.Tensor,
    out: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    positions: int,
) -> torch.Tensor:
    """``positions`` random patches per sample of the padded ``x``, laid out as ``F.unfold``'s
    columns (``[N, C*kh*kw, positions]``), read by indexing instead of unfolding every position."""
    n = x.shape[0]
    keep = torch.rand(n, out[0] * out[1], device=x.device).topk(positions, dim=1).indices  # [N, P]
    offsets_h = torch.arange(kernel[0], device=x.device) * dilation[0]
    offsets_w = torch.arange(kernel[1], device=x.device) * dilation[1]
    rows = (keep // out[1] * stride[0])[..., None, None] + offsets_h[:, None]  # [N, P, kh, 1]
    cols = (keep % out[1] * stride[1])[..., None, None] + offsets_w  # [N, P, 1, kw]
    samples = torch.arange(n, device=x.device)[:, None, None, None]
    patches = x[samples, :, rows, cols]  # [N, P, kh, kw, C]: the sliced channel dim goes last
    return patches.permute(0, 4, 2, 3, 1).reshape(n, -1, positions)


def _token_features(x: torch.Tensor) -> torch.Tensor:
    """Rows are samples or tokens, columns features: returns ``[1, D, rows]``."""
    return x.reshape(-1, x.shape[-1]).t().unsqueeze(0)


def matches(name: str, patterns: Sequence[str] | None) -> bool:
    """Whether module ``name`` matches one of the ``fnmatch`` ``patterns`` (None: every name)."""
    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def supported_layers(model: nn.Module, patterns: Sequence[str] | None = None) -> dict[str, tuple[nn.Module, str, int]]:
    """Every layer SVD unlearning updates, or those whose names match ``patterns`` (``fnmatch``):
    name -> (module, kind, groups)."""
    layers = {}
    for name, module in model.named_modules():
        if not matches(name, patterns):
            continue
        if isinstance(module, nn.MultiheadAttention):
            if module.in_proj_weight is not None:
                layers[name] = (module, "mha", 1)
        elif isinstance(module, nn.Conv2d):
            layers[name] = (module, "conv", module.groups)
        elif isinstance(module, nn.Linear):
            layers[name] = (module, "linear", 1)
    return layers


@dataclass
class GramCollector:
    """Context manager hooking every supported layer and accumulating its input Gram matrix.

    Layers that never run a forward call (e.g. ``MultiheadAttention.out_proj``, whose weight is
    used functionally) end with ``gram is None`` and are reported as skipped.
    """

    model: nn.Module
    stats: dict[str, LayerStats] = field(default_factory=dict)
    samples: int = 0  # samples streamed through the model (set by the caller)
    #: conv output positions kept per sample (None: all; see ``_conv_features``)
    positions_per_sample: int | None = None
    #: dtype of each chunk's product (the sum is float64 either way)
    product_dtype: torch.dtype = torch.float64
    #: ``fnmatch`` patterns of the layer names to hook (None: every supported layer)
    layers: Sequence[str] | None = None
    #: keep each layer's rows while there are at most d of them (see ``LayerStats``)
    keep_rows: bool = True

    def __post_init__(self) -> None:
        self._handles: list = []
        self._pads: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}  # conv name -> its padding
        self._out_sizes: dict[str, tuple[int, int]] = {}  # conv name -> output size its patches give
        for name, (module, kind, groups) in supported_layers(self.model, self.layers).items():
            self.stats[name] = LayerStats(
                name, module, kind, groups, product_dtype=self.product_dtype, keep_rows=self.keep_rows
            )
            if kind == "conv":  # fails here, before any data, for a conv whose padding is unknown
                self._pads[name] = conv_padding(module, name)

    def __enter__(self) -> GramCollector:
        for stats in self.stats.values():
            self._handles.append(stats.module.register_forward_pre_hook(self._hook(stats), with_kwargs=True))
            if stats.kind == "conv":
                self._handles.append(stats.module.register_forward_hook(self._check(stats)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._out_sizes.clear()

    def _hook(self, stats: LayerStats):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs.get("query", kwargs.get("input"))
            x = x.detach().float()
            if stats.kind == "conv":
                x = self._pads[stats.name](x[None] if x.dim() == 3 else x)
                out = self._out_sizes[stats.name] = _output_size(module, x)
                stats.add(_padded_features(module, x, out, self.positions_per_sample))
            else:
                stats.add(_token_features(x))

        return hook

    def _check(self, stats: LayerStats):
        """A conv's output must have as many positions as the patches cut from its input."""

        def hook(module, args, output):
            expected = self._out_sizes.pop(stats.name, None)
            if expected is not None and isinstance(output, torch.Tensor) and tuple(output.shape[-2:]) != expected:
                raise ConfigError(
                    f"layer {stats.name or '<model>'!r} ({type(module).__qualname__}) gave a "
                    f"{tuple(output.shape[-2:])} output but its padded input gives {expected} patches: "
                    "its padding is not the one lethe reproduces (see lethe.activations.register_conv_padding)"
                )

        return hook

    def grams(self) -> dict[str, torch.Tensor]:
        """name -> Gram ``[groups, d, d]`` for every layer that ran (folds any kept rows)."""
        return {n: s.gram for n, s in self.stats.items() if s.gram is not None}

    def ran(self) -> list[str]:
        """Names of the layers that saw at least one row."""
        return [n for n, s in self.stats.items() if s.rows]

    def skipped(self) -> list[str]:
        return [n for n, s in self.stats.items() if not s.rows]
