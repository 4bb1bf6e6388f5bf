"""What the SVD step costs, on paper (issue 20 part 3): a per-layer cost model of lethe's SVD
unlearning (Kodge et al., TMLR 2024) with its default settings, priced by this machine's measured
primitives, to estimate models too large to run here (ImageNet ResNet-50, ViT-B/16).

The SVD step (``lethe.methods.svd`` with fixed alphas) does, per side (retained and forget):

- one forward pass over the side's samples, hooks cutting each layer's input rows: conv patches
  (``d = C_in / groups * k * k`` wide; about ``max_patches`` of them per layer, spread over the
  samples, at most every output position) and every token of a ``Linear``;
- per layer, the float32 Gram ``R R^T`` summed in float64 (``2 rows d^2`` flops), or while a layer
  has at most ``d`` rows, the rows themselves and later the ``rows x rows`` Gram (``dual_spectrum``);
- per layer one float32 ``eigh`` of ``d x d`` (or ``rows x rows``);

then one weight update per layer (``LayerUpdate``: about ``5 out d^2`` float64 flops). Memory: two
float64 Gram matrices and two eigenvector sets of ``d x d`` per layer are alive at the end.

``layer_inventory`` reads a model's layers from one forward pass; ``measure_primitives`` times the
float32 Gram product, float32 ``eigh`` at a few sizes and float64 products on this machine;
``predict`` adds up the parts. ``forward_seconds`` times a model's inference per image.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from lethe.activations import supported_layers
from lethe.projection import spectrum


@dataclass(frozen=True)
class LayerShape:
    """One layer SVD projects: its patch (or feature) width ``d`` per group, its output channels,
    and the rows one sample gives (conv output positions, or tokens of a Linear)."""

    name: str
    kind: str
    groups: int
    d: int
    out: int
    rows_per_sample: int

    def rows(self, samples: int, max_patches: int | None, cap_tokens: bool = False) -> int:
        """Rows one side of ``samples`` gives this layer: conv positions capped at
        ``ceil(max_patches / samples)`` per sample as ``accumulate_grams`` spreads them (None: all);
        every token of a Linear, unless ``cap_tokens`` (a what-if: tokens sampled like patches)."""
        if (self.kind != "conv" and not cap_tokens) or max_patches is None:
            return samples * self.rows_per_sample
        return samples * min(self.rows_per_sample, math.ceil(max_patches / max(1, samples)))


@torch.inference_mode()
def layer_inventory(model: nn.Module, sample: torch.Tensor) -> list[LayerShape]:
    """Every layer ``lethe.activations.supported_layers`` finds that runs on ``sample`` (one input
    ``[1, C, H, W]``), with its shape, read from one forward pass in eval mode."""
    layers = supported_layers(model)
    seen: dict[str, LayerShape] = {}

    def hook(name: str, module: nn.Module, kind: str, groups: int):
        def read(_module, args, output):
            x = args[0]
            if kind == "conv":
                d = module.in_channels // groups * module.kernel_size[0] * module.kernel_size[1]
                rows, out = output.shape[-2] * output.shape[-1], module.out_channels
            elif kind == "linear":
                d, out, rows = module.in_features, module.out_features, x.numel() // module.in_features
            else:  # MultiheadAttention: its in-projection reads embed_dim-wide tokens
                d, out, rows = module.embed_dim, 3 * module.embed_dim, x.numel() // module.embed_dim
            seen.setdefault(name, LayerShape(name, kind, groups, d, out, rows))

        return read

    handles = [m.register_forward_hook(hook(n, m, k, g)) for n, (m, k, g) in layers.items()]
    try:
        model.eval()(sample)
    finally:
        for h in handles:
            h.remove()
    return [seen[n] for n in layers if n in seen]


@dataclass
class Primitives:
    """This machine's measured rates: float32 Gram products (flop/s), float64 products (flop/s,
    the weight update), and float32 ``eigh`` seconds at each measured size."""

    gram_flops: float
    update_flops: float
    eigh_seconds: dict[int, float]
    threads: int

    def eigh(self, d: int) -> float:
        """Seconds of one float32 ``eigh`` of ``d x d``: log-log interpolation between the measured
        sizes, ``d^3`` from the nearest one outside them."""
        sizes = sorted(self.eigh_seconds)
        if d <= sizes[0] or d >= sizes[-1]:
            edge = sizes[0] if d <= sizes[0] else sizes[-1]
            return self.eigh_seconds[edge] * (d / edge) ** 3
        logs = np.log([self.eigh_seconds[s] for s in sizes])
        return float(np.exp(np.interp(math.log(d), np.log(sizes), logs)))

    def to_dict(self) -> dict:
        return {**asdict(self), "eigh_seconds": {str(k): v for k, v in self.eigh_seconds.items()}}


def _best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_primitives(eigh_sizes: Sequence[int], gram_d: int = 1152, gram_rows: int = 8192) -> Primitives:
    """Time the SVD step's primitives in this process (``torch.get_num_threads()`` threads): a float32
    ``[d, rows] @ [rows, d]`` product, float32 ``eigh`` of a Gram-like (positive semi-definite)
    matrix at each of ``eigh_sizes`` through ``lethe.projection.spectrum``, and a float64 product."""
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(gram_d, gram_rows, generator=gen)
    gram_s = _best_of(lambda: (rows @ rows.t()).double(), 3)
    a = torch.randn(512, gram_d, dtype=torch.float64, generator=gen)
    b = torch.randn(gram_d, gram_d, dtype=torch.float64, generator=gen)
    update_s = _best_of(lambda: a @ b, 3)
    eighs = {}
    for d in eigh_sizes:
        x = torch.randn(d, 2 * d, generator=gen) * torch.logspace(0, -3, d)[:, None]  # a decaying spectrum
        gram = (x @ x.t()).double()[None]
        eighs[int(d)] = _best_of(lambda g=gram: spectrum(g, torch.float32), 1 if d > 2048 else 2)
    return Primitives(
        gram_flops=2 * gram_d * gram_d * gram_rows / gram_s,
        update_flops=2 * 512 * gram_d * gram_d / update_s,
        eigh_seconds=eighs,
        threads=torch.get_num_threads(),
    )


@torch.inference_mode()
def forward_seconds(model: nn.Module, batch: torch.Tensor, repeats: int = 2) -> float:
    """Seconds per image of ``model``'s inference on ``batch`` (best of ``repeats``, after a warm-up)."""
    model.eval()
    return _best_of(lambda: model(batch), repeats) / len(batch)


def predict(
    layers: Sequence[LayerShape],
    samples: int,
    primitives: Primitives,
    forward_per_image: float,
    max_patches: int | None = 20_000,
    cap_tokens: bool = False,
) -> dict:
    """The SVD step's predicted seconds (forward passes, Gram products, ``eigh``, weight update) and
    memory (float64 Gram and eigenvector sets of both sides) for ``samples`` per side
    (``cap_tokens``: ``LayerShape.rows``' what-if)."""
    gram = eigh = update = memory = 0.0
    per_layer = []
    for layer in layers:
        rows = layer.rows(samples, max_patches, cap_tokens)
        if rows <= layer.d:  # rows kept; the rows x rows Gram and its eigh (dual_spectrum)
            g = 2 * rows * rows * layer.d / primitives.gram_flops
            e = primitives.eigh(rows)
        else:
            g = 2 * rows * layer.d**2 / primitives.gram_flops
            e = primitives.eigh(layer.d)
        u = 5 * 2 * layer.out * layer.d**2 / layer.groups / primitives.update_flops
        m = 4 * 8 * layer.groups * layer.d**2
        gram, eigh, update, memory = gram + 2 * layer.groups * g, eigh + 2 * layer.groups * e, update + u, memory + m
        per_layer.append({"name": layer.name, "d": layer.d, "rows_per_side": rows, "seconds": 2 * (g + e) + u})
    forward = 2 * samples * forward_per_image
    return {
        "samples": samples,
        "forward_s": forward,
        "gram_s": gram,
        "eigh_s": eigh,
        "update_s": update,
        "seconds": forward + gram + eigh + update,
        "memory_mib": memory / 2**20,
        "layers": len(layers),
        "widest_d": max((layer.d for layer in layers), default=0),
        "per_layer": per_layer,
    }
