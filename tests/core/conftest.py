"""A tiny generated 4-class image problem and a small trained conv net, shared by method tests."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lethe
from lethe.engine import cross_entropy_step, sgd
from lethe.metrics import collect_outputs, split_accuracies

NUM_CLASSES = 4


@contextlib.contextmanager
def one_thread():
    """Tiny tensors on a 2-core machine that may be shared: one intra-op thread avoids the large
    slowdowns of oversubscribed OpenMP threads (seen as 10-20x here) and costs nothing at this
    size. Restored afterwards, so other test directories are unaffected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def small_convnet(num_classes: int = NUM_CLASSES) -> nn.Module:
    """Conv + BatchNorm + grouped conv + Linear, all with biases."""
    return nn.Sequential(
        nn.Conv2d(NUM_CLASSES, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


@dataclass
class Toy:
    model: nn.Module  # trained; tests must not modify it (use copy.deepcopy)
    x: torch.Tensor
    y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor

    def loader(self, classes=None, *, val=False, batch_size=32, shuffle=False) -> DataLoader:
        x, y = (self.val_x, self.val_y) if val else (self.x, self.y)
        if classes is not None:
            keep = torch.isin(y, torch.as_tensor(list(classes)))
            x, y = x[keep], y[keep]
        g = torch.Generator().manual_seed(1)
        return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=g)

    def retain_classes(self, forget) -> list[int]:
        return [c for c in range(NUM_CLASSES) if c not in forget]

    def fresh_model(self) -> nn.Module:
        return copy.deepcopy(self.model)

    @staticmethod
    def engine() -> lethe.Engine:
        """A new quiet engine with the default seed (0), as every method test runs with."""
        return lethe.Engine(progress=False)

    def accuracies(self, model: nn.Module, forget) -> dict[str, float]:
        """``split_accuracies`` of ``model`` on the (unshuffled) training and validation sets."""
        return split_accuracies(
            collect_outputs(model, self.loader()), collect_outputs(model, self.loader(val=True)), forget
        )

    @staticmethod
    def assert_forgets(before: dict, after: dict, *, forget_at_most: float, retain_drop: float) -> None:
        """``after`` accuracies (percent) of the forget classes are at most ``forget_at_most`` on the
        training and validation sets, and the retained ones at most ``retain_drop`` points below ``before``."""
        assert after["forget_train"] <= forget_at_most
        assert after["forget_test"] <= forget_at_most
        assert after["retain_train"] >= before["retain_train"] - retain_drop
        assert after["retain_test"] >= before["retain_test"] - retain_drop

    def forget_margin(self, model: nn.Module, cls: int) -> float:
        """Mean logit margin of class ``cls`` over the best other class, on its validation samples."""
        logits = collect_outputs(model, self.loader([cls], val=True)).logits
        others = logits.clone()
        others[:, cls] = float("-inf")
        return (logits[:, cls] - others.max(1).values).mean().item()

    def unlearn(
        self,
        method: str,
        forget,
        *,
        retain: bool | DataLoader | None = True,
        validation: bool | DataLoader | None = False,
        shuffle: bool = True,
        forget_data: DataLoader | None = None,
        model: nn.Module | None = None,
        **kwargs,
    ):
        """``lethe.unlearn(model or the toy model, method, ...)`` on the toy's loaders: ``(model, record)``.

        ``forget``: the classes to forget; their training samples are the forget loader unless
        ``forget_data`` is given. ``retain``: True for the other classes' training samples, False or
        None for no retained data, or a loader. ``validation``: True for the validation set
        (unshuffled), False or None for none, or a loader. ``shuffle``: whether the toy's forget and
        retain loaders shuffle (seeded, so repeated runs see the same order). Other keywords
        (``overrides``, ``inplace``, ``score_fn``, ``engine``) go to ``lethe.unlearn``; the engine
        defaults to a new ``Toy.engine()``.
        """
        if retain is True:
            retain = self.loader(self.retain_classes(forget), shuffle=shuffle)
        elif retain is False:
            retain = None
        if validation is True:
            validation = self.loader(val=True)
        elif validation is False:
            validation = None
        kwargs.setdefault("engine", self.engine())
        return lethe.unlearn(
            self.model if model is None else model,
            method,
            forget=self.loader(forget, shuffle=shuffle) if forget_data is None else forget_data,
            forget_classes=forget,
            retain=retain,
            validation=validation,
            **kwargs,
        )


def blobs(n: int, generator: torch.Generator, means: torch.Tensor):
    """``n`` samples, classes in turn: the class mean plus unit Gaussian noise."""
    y = torch.arange(n) % NUM_CLASSES
    x = means[y] + torch.randn(n, *means.shape[1:], generator=generator)
    return x, y


@pytest.fixture(scope="session")
def toy() -> Toy:
    """Gaussian blobs of 4x8x8 'images', 400 training and 200 validation samples, trained net.

    Class ``c`` has its mean (a random positive pattern) in input channel ``c`` only, so the
    classes use distinct input subspaces and both methods have something clean to remove.
    """
    g = torch.Generator().manual_seed(3)
    means = torch.zeros(NUM_CLASSES, NUM_CLASSES, 8, 8)
    for c in range(NUM_CLASSES):
        means[c, c] = 1.5 + 0.5 * torch.randn(8, 8, generator=g)
    x, y = blobs(400, g, means)
    val_x, val_y = blobs(200, g, means)
    torch.manual_seed(3)
    model = small_convnet()
    engine = lethe.Engine(progress=False)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    with one_thread():
        engine.fit(model, loader, cross_entropy_step, sgd(model, 0.05), 10)
    model.eval()
    return Toy(model, x, y, val_x, val_y)
