"""Evaluation protocol of methods.md s.3: one meaning per number.

Accuracies are percentages. ``mia_efficacy`` follows the SalUn / l1-sparse "confidence" attack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def split_accuracies(
    train: Outputs, test: Outputs, forget_classes: Sequence[int]
) -> dict[str, float]:
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


def mia_efficacy(
    retain_train: Outputs,
    retain_test: Outputs,
    forget_train: Outputs,
    *,
    seed: int = 0,
    max_samples: int | None = None,
) -> float:
    """Membership-inference efficacy, the SalUn / l1-sparse "confidence" protocol (percent).

    Members: a random subset of retained training samples, as many as retained test samples;
    non-members: the retained test samples. Feature: softmax probability of the true label.
    Attacker: RBF SVC (C=3, gamma="auto"). Score: share of forget-train samples the attacker
    calls non-member. The two sides are always the same size: when fewer retained training
    samples are given than test samples, the non-members are subsampled too (an unbalanced
    attacker would call everything a non-member). ``max_samples`` optionally caps each side.
    """
    from sklearn.svm import SVC

    rng = np.random.default_rng(seed)
    nonmember_all = retain_test.true_class_probability().numpy()
    member_all = retain_train.true_class_probability().numpy()
    n = min(len(nonmember_all), len(member_all), max_samples if max_samples is not None else len(nonmember_all))
    nonmember = nonmember_all if n == len(nonmember_all) else rng.choice(nonmember_all, n, replace=False)
    member = rng.choice(member_all, n, replace=False)
    target = forget_train.true_class_probability().numpy()
    if len(member) == 0 or len(nonmember) == 0 or len(target) == 0:
        return float("nan")
    x = np.concatenate([member, nonmember]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    attacker = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return 100.0 * float((attacker.predict(target.reshape(-1, 1)) == 0).mean())


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
