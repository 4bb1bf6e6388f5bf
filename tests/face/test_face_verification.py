"""Verification: pairs, LFW 10-fold accuracy, thresholds, TAR of forgotten identities, pairs.txt."""

from __future__ import annotations

import pytest
import torch

from lethe.errors import DataError
from lethe_face.metrics import (
    best_threshold,
    kfold_accuracy,
    make_pairs,
    read_pairs,
    threshold_at_far,
    verification_metrics,
)


def clustered(n_ids: int, per_id: int, noise: float, scattered: tuple[int, ...] = (), dim: int = 16):
    """Embeddings of ``n_ids`` identities around orthogonal centres; ``scattered`` ids get random ones."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n_ids).repeat_interleave(per_id)
    centres = torch.eye(dim)[:n_ids]
    emb = centres[labels] + noise * torch.randn(len(labels), dim, generator=gen)
    for c in scattered:
        emb[labels == c] = torch.randn(int((labels == c).sum()), dim, generator=gen)
    return emb, labels


def test_make_pairs_counts_and_folds():
    labels = torch.arange(4).repeat_interleave(5)
    pairs = make_pairs(labels, [0, 1, 2, 3], per_identity=6, seed=0)
    assert int(pairs.same.sum()) == 24 and int((~pairs.same).sum()) == 24
    assert bool((labels[pairs.a[pairs.same]] == labels[pairs.b[pairs.same]]).all())
    assert bool((labels[pairs.a[~pairs.same]] != labels[pairs.b[~pairs.same]]).all())
    assert set(pairs.fold.tolist()) == set(range(10))
    again = make_pairs(labels, [0, 1, 2, 3], per_identity=6, seed=0)
    assert torch.equal(pairs.a, again.a) and torch.equal(pairs.b, again.b)
    assert int(make_pairs(labels, [0], per_identity=100).same.sum()) == 10  # all C(5,2) pairs


def test_thresholds():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.1, 0.75])
    same = torch.tensor([True, True, True, False, False, False])
    t = best_threshold(scores, same)
    assert 0.7 < t <= 0.75 + 1e-6 or 0.2 < t < 0.7
    assert ((scores >= t) == same).sum() >= 5
    impostors = torch.linspace(0, 1, 101)
    assert (impostors >= threshold_at_far(impostors, 0.05)).float().mean() <= 0.05


def test_kfold_accuracy_perfect_and_random():
    emb, labels = clustered(6, 8, 0.05)
    metrics = verification_metrics(emb, labels, forget=(), seed=0)
    assert metrics["verif_acc"] == pytest.approx(100.0)
    gen = torch.Generator().manual_seed(1)
    scores, same = torch.rand(400, generator=gen), torch.rand(400, generator=gen) > 0.5
    acc, _ = kfold_accuracy(scores, same, torch.arange(400) % 10)
    assert 35 < acc < 65


def test_forgotten_identity_tar():
    emb, labels = clustered(6, 8, 0.05, scattered=(2,))
    m = verification_metrics(emb, labels, forget=(2,), seed=0)
    assert m["verif_acc"] > 99 and m["tar_kept"] == pytest.approx(100.0)
    assert m["tar_forget"] < 30 and m["forget_genuine_pairs"] == 28
    recognised = verification_metrics(*clustered(6, 8, 0.05), forget=(2,), seed=0)
    assert recognised["tar_forget"] == pytest.approx(100.0) and recognised["far_forget"] == 0.0
    with pytest.raises(DataError, match="two kept identities"):
        verification_metrics(emb, labels, forget=(0, 1, 2, 3, 4), seed=0)


def test_read_official_pairs(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("2\t1\nAnn\t1\t2\nAnn\t1\tBob\t1\nBob\t1\t3\nBob\t2\tCid\t4\n")
    pairs = read_pairs(path)
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (False, 0), (True, 1), (False, 1)]
    assert (pairs[3].name_a, pairs[3].num_a, pairs[3].name_b, pairs[3].num_b) == ("Bob", 2, "Cid", 4)
    path.write_text("2\t1\nAnn\t1\t2\n")
    with pytest.raises(DataError, match="not an LFW pairs file"):
        read_pairs(path)
