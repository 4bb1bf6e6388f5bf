"""Face metrics (methods.md s.3, face): identification accuracy on forgotten vs kept identities
comes from ``lethe_vision.pipeline.evaluate_model``; this module adds verification.

Verification follows the LFW protocol (Huang et al., 2007): cosine similarity of L2-normalised
embeddings; 10-fold accuracy with the threshold chosen on 9 folds (best accuracy) and tested on the
10th. Pairs are built inside the identities present (seeded): genuine pairs of one identity and as
many impostor pairs with another. Kept identities give ``verif_acc`` and the operating threshold
(best accuracy on all kept pairs); the forgotten identities' genuine pairs are then accepted at that
fixed threshold or not: ``tar_forget`` against ``tar_kept`` (and the same at FAR 1 % on kept impostors).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lethe.engine import Engine
from lethe.errors import DataError
from lethe.metrics import collect_outputs
from lethe_vision.data import DatasetBundle, ImageData, TensorImageDataset


@dataclass
class VerifyOptions:
    """Pair construction and thresholds: ``split`` is the images pairs are drawn from
    (``all`` = train and test images, ``test`` = test only)."""

    pairs_per_identity: int = 50
    folds: int = 10
    far: float = 0.01
    split: str = "all"


@dataclass
class Pairs:
    """Index pairs into an embedding matrix, whether they show the same person, and their fold."""

    a: torch.Tensor
    b: torch.Tensor
    same: torch.Tensor
    fold: torch.Tensor

    def __len__(self) -> int:
        return len(self.same)


def make_pairs(
    labels: torch.Tensor,
    identities: list[int],
    *,
    per_identity: int = 50,
    seed: int = 0,
    folds: int = 10,
    impostors: list[int] | None = None,
) -> Pairs:
    """Up to ``per_identity`` genuine pairs per identity (all pairs when fewer exist) and, for each,
    an impostor pair with a random image of another identity of ``impostors`` (default: the same
    list); folds are assigned at random, balanced. Seeded."""
    rng = np.random.default_rng(seed)
    others = list(impostors if impostors is not None else identities)
    by_id = {c: (labels == c).nonzero().view(-1).numpy() for c in set(identities) | set(others)}
    a, b, same = [], [], []
    for c in identities:
        idx = by_id[c]
        combos = list(itertools.combinations(idx.tolist(), 2))
        if len(combos) > per_identity:
            combos = [combos[i] for i in rng.choice(len(combos), per_identity, replace=False)]
        pool = [o for o in others if o != c and len(by_id[o])]
        for x, y in combos:
            a.append(x), b.append(y), same.append(True)
            if pool:
                other = by_id[pool[rng.integers(len(pool))]]
                a.append(int(rng.choice(idx))), b.append(int(rng.choice(other))), same.append(False)
    fold = rng.permutation(len(same)) % folds
    return Pairs(
        torch.tensor(a, dtype=torch.long),
        torch.tensor(b, dtype=torch.long),
        torch.tensor(same, dtype=torch.bool),
        torch.as_tensor(fold, dtype=torch.long),
    )


def pair_scores(embeddings: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Cosine similarity of each pair (embeddings are L2-normalised first)."""
    e = torch.nn.functional.normalize(embeddings.float(), dim=1)
    return (e[pairs.a] * e[pairs.b]).sum(1)


def best_threshold(scores: torch.Tensor, same: torch.Tensor) -> float:
    """The threshold (accept ``score >= t``) with the highest pair accuracy: midpoints between
    sorted scores; ties go to the smallest such threshold."""
    if len(scores) == 0:
        return float("nan")
    s, order = torch.sort(scores.double())
    y = same[order].double()
    candidates = torch.cat([s[:1] - 1e-6, (s[1:] + s[:-1]) / 2, s[-1:] + 1e-6])
    # accepting scores >= candidates[k] accepts positions k.. of the sorted list
    genuine_below = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(y, 0)])
    impostor_below = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(1 - y, 0)])
    correct = impostor_below + (y.sum() - genuine_below)
    return float(candidates[int(torch.argmax(correct))])


def pair_accuracy(scores: torch.Tensor, same: torch.Tensor, threshold: float) -> float:
    """Share of pairs decided right at ``threshold`` (percent)."""
    if len(scores) == 0:
        return float("nan")
    return 100.0 * float(((scores >= threshold) == same).double().mean())


def kfold_accuracy(scores: torch.Tensor, same: torch.Tensor, fold: torch.Tensor) -> tuple[float, float]:
    """LFW's protocol: for each fold, the best-accuracy threshold of the other folds, accuracy on
    this fold; ``(mean, std)`` over folds in percent."""
    accs = []
    for k in fold.unique().tolist():
        test = fold == k
        if (~test).any():
            accs.append(pair_accuracy(scores[test], same[test], best_threshold(scores[~test], same[~test])))
    if not accs:
        return float("nan"), float("nan")
    return float(np.mean(accs)), float(np.std(accs))


def acceptance(scores: torch.Tensor, threshold: float) -> float:
    """Share of ``scores`` at or above ``threshold`` (percent; NaN when empty)."""
    return 100.0 * float((scores >= threshold).double().mean()) if len(scores) else float("nan")


def threshold_at_far(impostor_scores: torch.Tensor, far: float) -> float:
    """A threshold accepting at most ``far`` of the impostor scores (midway between the highest
    rejected and the lowest accepted one)."""
    if len(impostor_scores) == 0:
        return float("nan")
    s = torch.sort(impostor_scores.double(), descending=True).values
    allowed = int(np.floor(far * len(s)))
    if allowed >= len(s):
        return float(s[-1])
    upper = s[allowed - 1] if allowed > 0 else s[0] + 1e-3
    return float((s[allowed] + upper) / 2)


def verification_metrics(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    forget: tuple[int, ...],
    options: VerifyOptions | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """``verif_acc`` (10-fold, kept pairs) and its std, the operating ``verif_threshold`` (best
    accuracy on all kept pairs), ``tar_kept`` / ``tar_forget`` (genuine pairs accepted at it),
    ``far_forget`` (forgotten-vs-kept impostor pairs accepted at it), and ``tar_kept_far1`` /
    ``tar_forget_far1`` at the threshold giving FAR ``options.far`` on kept impostor pairs."""
    o = options or VerifyOptions()
    present = sorted(set(labels.tolist()))
    kept = [c for c in present if c not in forget]
    gone = [c for c in present if c in forget]
    if len(kept) < 2:
        raise DataError("verification needs at least two kept identities")
    kp = make_pairs(labels, kept, per_identity=o.pairs_per_identity, seed=seed, folds=o.folds)
    fp = make_pairs(labels, gone, per_identity=o.pairs_per_identity, seed=seed + 1, impostors=kept)
    ks, fs = pair_scores(embeddings, kp), pair_scores(embeddings, fp)
    mean, std = kfold_accuracy(ks, kp.same, kp.fold)
    t = best_threshold(ks, kp.same)
    t_far = threshold_at_far(ks[~kp.same], o.far)
    return {
        "verif_acc": mean,
        "verif_acc_std": std,
        "verif_threshold": t,
        "tar_kept": acceptance(ks[kp.same], t),
        "tar_forget": acceptance(fs[fp.same], t),
        "far_forget": acceptance(fs[~fp.same], t),
        "tar_kept_far1": acceptance(ks[kp.same], t_far),
        "tar_forget_far1": acceptance(fs[fp.same], t_far),
        "kept_pairs": len(kp),
        "forget_genuine_pairs": int(fp.same.sum()),
    }


def embeddings_of(model: nn.Module, data: ImageData, bundle: DatasetBundle, engine: Engine, batch: int = 256):
    """L2-normalised embeddings ``[N, D]`` (the identity head's input) and labels of ``data``."""
    head = getattr(model, "head", None)
    if head is None:
        raise DataError("the model has no identity head to read embeddings from")
    loader = engine.loader(TensorImageDataset(data, bundle), batch, shuffle=False)
    out = collect_outputs(model, loader, engine, feature_layer=head)
    return torch.nn.functional.normalize(out.features, dim=1), out.labels


def evaluate_verification(
    model: nn.Module,
    bundle: DatasetBundle,
    forget: tuple[int, ...],
    engine: Engine,
    options: VerifyOptions | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """``verification_metrics`` on the bundle's images (``options.split``: ``all`` or ``test``)."""
    o = options or VerifyOptions()
    if o.split not in ("all", "test"):
        raise DataError(f"verification split must be 'all' or 'test', not {o.split!r}")
    data = bundle.test
    if o.split == "all":
        data = ImageData(
            torch.cat([bundle.train.images, bundle.test.images]), torch.cat([bundle.train.labels, bundle.test.labels])
        )
    emb, labels = embeddings_of(model, data, bundle, engine)
    return verification_metrics(emb, labels, forget, o, seed)


@dataclass
class OfficialPair:
    """One line of LFW's ``pairs.txt``: two (name, image number) and whether they match."""

    name_a: str
    num_a: int
    name_b: str
    num_b: int
    same: bool
    fold: int


def read_pairs(path: str | Path) -> list[OfficialPair]:
    """LFW's official ``pairs.txt`` (also in sklearn's ``fetch_lfw_pairs`` cache): a header
    ``<folds> <n>``, then per fold ``n`` matched lines ``name i j`` and ``n`` mismatched lines
    ``name1 i name2 j``."""
    try:
        lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read pairs file {path}: {err}") from None
    try:
        folds, n = (int(v) for v in lines[0][:2])
        if len(lines) - 1 != 2 * folds * n:
            raise ValueError(f"header says {folds} folds x {2 * n} pairs, file has {len(lines) - 1}")
        pairs = []
        for i, f in enumerate(lines[1:]):
            if len(f) == 3:
                pairs.append(OfficialPair(f[0], int(f[1]), f[0], int(f[2]), True, i // (2 * n)))
            elif len(f) == 4:
                pairs.append(OfficialPair(f[0], int(f[1]), f[2], int(f[3]), False, i // (2 * n)))
            else:
                raise ValueError(f"line {i + 2} has {len(f)} fields")
    except (ValueError, IndexError) as err:
        raise DataError(f"{path} is not an LFW pairs file: {err}") from None
    return pairs


def official_pairs_accuracy(
    model: nn.Module,
    folder: Path,
    pairs: list[OfficialPair],
    bundle: DatasetBundle,
    engine: Engine,
    size: int,
    crop: float,
) -> dict[str, float]:
    """10-fold accuracy of ``model`` on the official pairs (folds as in the file); images are read
    from ``folder/<name>/<name>_<num:04d>.jpg``; pairs with a missing or undecodable image are
    skipped and counted."""
    from lethe_face.datasets import decode_faces

    def path(name: str, num: int) -> Path:
        return folder / name / f"{name}_{num:04d}.jpg"

    files = sorted({path(n, k) for p in pairs for n, k in ((p.name_a, p.num_a), (p.name_b, p.num_b))})
    files = [f for f in files if f.is_file()]
    images, _ = decode_faces(files, size, crop)
    index = {f: i for i, f in enumerate(f for f, img in zip(files, images, strict=True) if img is not None)}
    if not index:
        raise DataError(f"none of the pairs' images is under {folder}")
    data = ImageData(torch.stack([img for img in images if img is not None]), torch.zeros(len(index), dtype=torch.long))
    emb, _ = embeddings_of(model, data, bundle, engine)
    keep = [p for p in pairs if path(p.name_a, p.num_a) in index and path(p.name_b, p.num_b) in index]
    if not keep:
        raise DataError(f"no pair of {len(pairs)} has both images under {folder}")
    sel = Pairs(
        torch.tensor([index[path(p.name_a, p.num_a)] for p in keep]),
        torch.tensor([index[path(p.name_b, p.num_b)] for p in keep]),
        torch.tensor([p.same for p in keep]),
        torch.tensor([p.fold for p in keep]),
    )
    mean, std = kfold_accuracy(pair_scores(emb, sel), sel.same, sel.fold)
    return {
        "lfw_pairs_acc": mean,
        "lfw_pairs_acc_std": std,
        "lfw_pairs_used": len(keep),
        "lfw_pairs_missing": len(pairs) - len(keep),
    }
