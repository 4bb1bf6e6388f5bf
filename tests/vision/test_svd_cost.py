"""``lethe_vision.svd_cost``: the SVD step's cost model (issue 20 part 3)."""

import math

import pytest
import torch
from torch import nn

from lethe_vision.svd_cost import LayerShape, Primitives, layer_inventory, predict


class Tokens(nn.Module):
    """A conv stem, a grouped conv, then a Linear over the 16 positions as tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, stride=2)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.mix = nn.Linear(8, 12)

    def forward(self, x):
        x = self.grouped(self.stem(x))
        return self.mix(x.flatten(2).transpose(1, 2))


def test_inventory_reads_each_layers_width_and_rows():
    layers = layer_inventory(Tokens(), torch.randn(1, 3, 8, 8))
    assert layers == [
        LayerShape("stem", "conv", 1, 27, 8, 16),
        LayerShape("grouped", "conv", 4, 18, 8, 16),
        LayerShape("mix", "linear", 1, 8, 12, 16),
    ]


def test_rows_spread_max_patches_over_the_samples_as_accumulate_grams_does():
    conv = LayerShape("c", "conv", 1, 27, 8, rows_per_sample=1024)
    assert conv.rows(100, 20_000) == 100 * 200  # ceil(20000 / 100) positions per sample
    assert conv.rows(999, 20_000) == 999 * math.ceil(20_000 / 999)
    assert conv.rows(10, 20_000) == 10 * 1024  # never more than every position
    assert conv.rows(10, None) == 10 * 1024
    tokens = LayerShape("t", "linear", 1, 8, 12, rows_per_sample=197)
    assert tokens.rows(999, 20_000) == 999 * 197  # every token: lethe does not sample tokens
    assert tokens.rows(999, 20_000, cap_tokens=True) == 999 * 21


def test_eigh_interpolates_in_log_log_and_extrapolates_by_the_cube():
    prims = Primitives(gram_flops=1e9, update_flops=1e9, eigh_seconds={100: 1.0, 400: 16.0}, threads=1)
    assert prims.eigh(200) == pytest.approx(4.0)  # 1 -> 16 over 4x in d: d^2 between them
    assert prims.eigh(800) == pytest.approx(16.0 * 8)
    assert prims.eigh(50) == pytest.approx(1.0 / 8)


def test_predict_adds_both_sides_of_each_part():
    prims = Primitives(gram_flops=1e9, update_flops=2e9, eigh_seconds={10: 0.5, 1000: 500.0}, threads=1)
    wide = LayerShape("w", "conv", 1, 100, 50, rows_per_sample=64)
    out = predict([wide], 10, prims, forward_per_image=0.01, max_patches=None)
    rows = 640  # > d: the Gram path
    assert out["forward_s"] == pytest.approx(2 * 10 * 0.01)
    assert out["gram_s"] == pytest.approx(2 * 2 * rows * 100**2 / 1e9)
    assert out["eigh_s"] == pytest.approx(2 * prims.eigh(100))
    assert out["update_s"] == pytest.approx(5 * 2 * 50 * 100**2 / 2e9)
    assert out["seconds"] == pytest.approx(out["forward_s"] + out["gram_s"] + out["eigh_s"] + out["update_s"])
    assert out["memory_mib"] == pytest.approx(4 * 8 * 100**2 / 2**20)
    few = predict([wide], 1, prims, 0.01, max_patches=None)  # 64 rows <= d: rows kept, a 64 x 64 eigh
    assert few["eigh_s"] == pytest.approx(2 * prims.eigh(64))
    assert few["gram_s"] == pytest.approx(2 * 2 * 64 * 64 * 100 / 1e9)
