"""Shared by the Gram-matrix tests: what sampling conv positions should give."""

from __future__ import annotations

import torch

from lethe.activations import _conv_features


def sampled_and_expected(conv, x: torch.Tensor, full: torch.Tensor, positions: int, seed: int = 5):
    """``_conv_features(conv, x, positions)`` and the columns of ``full`` (all patches, ``[groups,
    d, N * L]``) at the positions it draws (``rand(N, L).topk(positions)`` from the seeded generator)."""
    n = x.shape[0]
    length = full.shape[-1] // n
    torch.manual_seed(seed)
    drawn = torch.rand(n, length).topk(positions, dim=1).indices  # the draw _conv_features makes
    torch.manual_seed(seed)
    sampled = _conv_features(conv, x, positions=positions)
    expected = full.view(full.shape[0], full.shape[1], n, length)
    expected = torch.stack([expected[:, :, i, drawn[i]] for i in range(n)], dim=2).flatten(2)
    return sampled, expected
