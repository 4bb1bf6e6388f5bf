"""``probe_forget``: is the forgotten class still linearly readable inside the model? (methods.md s.3)

Output-level forgetting is not enough for privacy: a linear probe trained on penultimate features
of ALL classes (training data) and tested on the forget-test features shows whether the class
can still be read out of the representation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe.metrics import Outputs, collect_outputs


def head_layer(model: nn.Module) -> nn.Linear:
    """The classifier head: the last ``nn.Linear`` registered in the model."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("the model has no nn.Linear head; pass the feature layer explicitly")
    return linears[-1]


def collect_features(
    model: nn.Module, loader: DataLoader, engine: Engine | None = None, layer: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (the input of ``layer``, default the classifier head) and labels."""
    out = collect_outputs(model, loader, engine, feature_layer=layer or head_layer(model))
    return out.features, out.labels


def probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    max_iter: int = 300,
    seed: int = 0,
) -> float:
    """Accuracy (percent) of a multinomial logistic-regression probe (standardised features)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(test_labels) == 0:
        return float("nan")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    probe.fit(train_features.numpy(), train_labels.numpy())
    return 100.0 * float((probe.predict(test_features.numpy()) == test_labels.numpy()).mean())


def probe_forget(
    model: nn.Module,
    train: DataLoader,
    forget_test: DataLoader,
    engine: Engine | None = None,
    *,
    per_class: int | None = 500,
    seed: int = 0,
) -> float:
    """``probe_forget``: probe trained on training features of all classes (at most ``per_class``
    samples each, seeded), accuracy on the forget-test features (percent)."""
    layer = head_layer(model)
    return probe_from_outputs(
        collect_outputs(model, train, engine, feature_layer=layer),
        collect_outputs(model, forget_test, engine, feature_layer=layer),
        per_class=per_class,
        seed=seed,
    )


def probe_from_outputs(train: Outputs, forget_test: Outputs, *, per_class: int | None = 500, seed: int = 0) -> float:
    """``probe_forget`` from outputs collected with features (``collect_outputs(feature_layer=)``)."""
    x, y = train.features, train.labels
    if per_class is not None:
        x, y = _per_class(x, y, per_class, seed)
    return probe_accuracy(x, y, forget_test.features, forget_test.labels, seed=seed)


def _per_class(x: torch.Tensor, y: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    keep = []
    for c in y.unique().tolist():
        idx = (y == c).nonzero().view(-1).numpy()
        keep.append(rng.choice(idx, min(per_class, len(idx)), replace=False))
    index = torch.as_tensor(np.sort(np.concatenate(keep)))
    return x[index], y[index]
