"""Evaluation protocol of methods.md s.3: one meaning per number.

Accuracies are percentages. ``mia_efficacy`` follows the SalUn / l1-sparse "confidence" attack;
``mia_attacks`` runs all five SVC attacks of their ``SVC_MIA`` (Jia et al., NeurIPS 2023).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lethe.engine import Engine

#: The metrics ``avg_gap`` averages (methods.md s.3).
GAP_METRICS = ("forget_train", "retain_train", "forget_test", "retain_test", "mia_efficacy")


@dataclass
class Outputs:
    """Collected model outputs on one split: logits ``[N, C]`` and labels ``[N]`` (CPU)."""

    logits: torch.Tensor
    labels: torch.Tensor
    features: torch.Tensor | None = None  # input of the feature layer, when collected

    def subset(self, mask: torch.Tensor) -> Outputs:
        features = None if self.features is None else self.features[mask]
        return Outputs(self.logits[mask], self.labels[mask], features)

    def true_class_probability(self) -> torch.Tensor:
        probs = torch.softmax(self.logits.float(), dim=1)
        return probs.gather(1, self.labels.view(-1, 1)).squeeze(1)


@torch.inference_mode()
def collect_outputs(
    model: nn.Module, loader: DataLoader, engine: Engine | None = None, feature_layer: nn.Module | None = None
) -> Outputs:
    """Run ``model`` in eval mode over ``loader`` of ``(inputs, labels)``; with ``feature_layer``
    also record that layer's input (e.g. the classifier head's: penultimate features)."""
    engine = engine or Engine(progress=False)
    model = engine.prepare(model)
    was_training = model.training
    model.eval()
    logits, labels, features = [], [], []
    handle = None
    if feature_layer is not None:
        handle = feature_layer.register_forward_pre_hook(
            lambda _m, args: features.append(args[0].detach().float().flatten(1).cpu())
        )
    try:
        for batch in engine.progress_bar(loader, "evaluate"):
            x, y = engine.to_device(batch)[:2]
            with engine.autocast():
                out = model(x)
            logits.append(out.float().cpu())
            labels.append(y.cpu())
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    if not logits:
        return Outputs(torch.empty(0, 0), torch.empty(0, dtype=torch.long))
    return Outputs(torch.cat(logits), torch.cat(labels), torch.cat(features) if features else None)


def accuracy(outputs: Outputs) -> float:
    """Top-1 accuracy in percent (NaN for an empty split)."""
    if outputs.labels.numel() == 0:
        return float("nan")
    return 100.0 * (outputs.logits.argmax(1) == outputs.labels).float().mean().item()


def forget_mask(labels: torch.Tensor, forget_classes: Iterable[int]) -> torch.Tensor:
    """True where ``labels`` is one of the forgotten classes."""
    return torch.isin(labels, torch.as_tensor(list(forget_classes), dtype=labels.dtype))


def split_accuracies(train: Outputs, test: Outputs, forget_classes: Sequence[int]) -> dict[str, float]:
    """``forget_train``, ``retain_train``, ``forget_test``, ``retain_test`` (percent)."""
    result = {}
    for split, out in (("train", train), ("test", test)):
        f = forget_mask(out.labels, forget_classes)
        result[f"forget_{split}"] = accuracy(out.subset(f))
        result[f"retain_{split}"] = accuracy(out.subset(~f))
    return result


def per_class_accuracy(outputs: Outputs, num_classes: int) -> list[float]:
    """Accuracy (percent) of each class; NaN where a class has no sample."""
    pred = outputs.logits.argmax(1)
    result = []
    for c in range(num_classes):
        sel = outputs.labels == c
        result.append(100.0 * (pred[sel] == c).float().mean().item() if sel.any() else float("nan"))
    return result


def mia_correctness(outputs: Outputs) -> np.ndarray:
    """1 where the prediction is right, else 0 (the SVC_MIA "correctness" feature)."""
    return (outputs.logits.argmax(1) == outputs.labels).double().numpy()


def mia_confidence(outputs: Outputs) -> np.ndarray:
    """Softmax probability of the true label (the SVC_MIA "confidence" feature)."""
    return outputs.true_class_probability().numpy()


def mia_entropy(outputs: Outputs) -> np.ndarray:
    """Shannon entropy of the softmax, ``-sum_i p_i log p_i`` (the SVC_MIA "entropy" feature)."""
    logp = torch.log_softmax(outputs.logits.double(), dim=1)
    return -(logp.exp() * logp).sum(1).float().numpy()


def mia_m_entropy(outputs: Outputs) -> np.ndarray:
    """Song & Mittal's modified entropy (USENIX Security 2021, eq. 5), which uses the true label y:
    ``-(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``; logs are clamped at ``log 1e-30``
    like SVC_MIA's. (SVC_MIA's ``m_entropy`` indexes ``[:, labels]``, which reverses every column
    whose class occurs in the batch, and takes ``log p`` for ``log(1 - p)``; this is the paper's.)"""
    p = torch.softmax(outputs.logits.double(), dim=1)
    floor = math.log(1e-30)
    log_p = torch.log(p).clamp_min(floor)
    log_not_p = torch.log1p(-p).clamp_min(floor)
    true = torch.nn.functional.one_hot(outputs.labels, p.shape[1]).bool()
    terms = torch.where(true, (1 - p) * log_p, p * log_not_p)
    return -terms.sum(1).float().numpy()


def mia_probability(outputs: Outputs) -> np.ndarray:
    """The full softmax vector ``[N, C]`` (the SVC_MIA "prob" feature)."""
    return torch.softmax(outputs.logits.float(), dim=1).numpy()


#: The five attacks of SVC_MIA (Jia et al., NeurIPS 2023, ``evaluation/SVC_MIA.py`` of
#: OPTML-Group/Unlearn-Sparse, also used by SalUn): attack name -> its feature of the outputs.
MIA_FEATURES: dict[str, Callable[[Outputs], np.ndarray]] = {
    "correctness": mia_correctness,
    "confidence": mia_confidence,
    "entropy": mia_entropy,
    "m_entropy": mia_m_entropy,
    "prob": mia_probability,
}

#: Result column of each attack; the confidence attack keeps its historical name ``mia_efficacy``.
MIA_COLUMNS = {
    "correctness": "mia_correctness",
    "confidence": "mia_efficacy",
    "entropy": "mia_entropy",
    "m_entropy": "mia_m_entropy",
    "prob": "mia_prob",
}


def svc_mia(
    retain_train: Outputs,
    retain_test: Outputs,
    forget_train: Outputs,
    feature: Callable[[Outputs], np.ndarray] = mia_confidence,
    *,
    seed: int = 0,
    max_samples: int | None = None,
) -> float:
    """Membership-inference efficacy of one SVC_MIA attack (percent), the SalUn / l1-sparse protocol.

    Members: a random subset of retained training samples, as many as retained test samples;
    non-members: the retained test samples. ``feature`` maps outputs to one value (or vector) per
    sample. Attacker: RBF SVC (C=3, gamma="auto"), also for the 0/1 correctness feature, as
    SVC_MIA's ``SVC_fit_predict`` does (on one binary feature it amounts to a learnt threshold).
    Score: share of forget-train samples the attacker calls non-member. The two sides are always
    the same size: when fewer retained training samples are given than test samples, the
    non-members are subsampled too (an unbalanced attacker would call everything a non-member).
    ``max_samples`` optionally caps each side.
    """
    from sklearn.svm import SVC

    nonmember_all, member_all = feature(retain_test), feature(retain_train)
    nonmember, member = _balanced(nonmember_all, member_all, seed, max_samples)
    target = feature(forget_train)
    if len(member) == 0 or len(nonmember) == 0 or len(target) == 0:
        return float("nan")
    x = np.concatenate([member, nonmember]).reshape(len(member) + len(nonmember), -1)
    y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    attacker = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return 100.0 * float((attacker.predict(target.reshape(len(target), -1)) == 0).mean())


def _balanced(
    nonmember: np.ndarray, member: np.ndarray, seed: int, max_samples: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """As many members as non-members (rows drawn without replacement, seeded), at most ``max_samples``."""
    rng = np.random.default_rng(seed)
    n = min(len(nonmember), len(member), max_samples if max_samples is not None else len(nonmember))
    if n != len(nonmember):
        nonmember = nonmember[rng.choice(len(nonmember), n, replace=False)]
    return nonmember, member[rng.choice(len(member), n, replace=False)]


def mia_efficacy(
    retain_train: Outputs,
    retain_test: Outputs,
    forget_train: Outputs,
    *,
    seed: int = 0,
    max_samples: int | None = None,
) -> float:
    """The SalUn / l1-sparse "confidence" attack (percent): ``svc_mia`` on the softmax probability
    of the true label."""
    return svc_mia(retain_train, retain_test, forget_train, mia_confidence, seed=seed, max_samples=max_samples)


def mia_attacks(
    retain_train: Outputs,
    retain_test: Outputs,
    forget_train: Outputs,
    attacks: Sequence[str] = tuple(MIA_FEATURES),
    *,
    seed: int = 0,
    max_samples: int | None = None,
) -> dict[str, float]:
    """``svc_mia`` of each of ``attacks`` (names of ``MIA_FEATURES``), keyed by ``MIA_COLUMNS``;
    every attack sees the same members and non-members."""
    unknown = [a for a in attacks if a not in MIA_FEATURES]
    if unknown:
        raise ValueError(f"unknown MIA attacks {unknown}; attacks are {', '.join(MIA_FEATURES)}")
    return {
        MIA_COLUMNS[a]: svc_mia(
            retain_train, retain_test, forget_train, MIA_FEATURES[a], seed=seed, max_samples=max_samples
        )
        for a in attacks
    }


def avg_gap(row: Mapping[str, float], oracle: Mapping[str, float], metrics: Sequence[str] = GAP_METRICS) -> float:
    """Mean absolute difference to the retrain oracle over ``metrics`` (default ``GAP_METRICS``)."""
    return float(np.mean([abs(row[k] - oracle[k]) for k in metrics]))


#: The four accuracies of ``GAP_METRICS``: ``acc_gap`` is ``avg_gap`` without ``mia_efficacy``,
#: which carries no signal when a model does not overfit (train and test confidences alike).
ACCURACY_METRICS = GAP_METRICS[:4]


def class_accuracy_score(outputs: Outputs, forget_classes: Sequence[int]) -> float:
    """SVD tuning criterion ``retain_acc * (1 - forget_acc)`` with accuracies as fractions."""
    f = forget_mask(outputs.labels, forget_classes)
    return (accuracy(outputs.subset(~f)) / 100.0) * (1.0 - accuracy(outputs.subset(f)) / 100.0)
