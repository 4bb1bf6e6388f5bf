"""What the defender knows: a small, explicit budget of trigger-stamped samples.

A budget is a share of the training set (``"0.01"``: 1 %) or a number of images (``"500"``).
It counts STAMPED samples, the forget set of an unlearning defence; each is labelled with the
attack's target (the class DELETE masks, methods.md s.1). Stamped images whose true class is the
target carry no backdoor behaviour to remove and are never part of a budget. Two sources:

- ``stamp``: the defender knows the trigger and stamps clean images of its own pool (the clean
  training images held out of training, see ``poison.py``).
- ``poisoned``: the defender has identified that many poisoned training samples (for example with
  a detection method) and uses them as they are.

Beside the stamped samples the defender holds as many clean images (all classes, true labels)
from its pool, for the defences that need clean data (SVD's retained activations, fine-tuning,
fine-pruning, random labelling). Both draws are seeded and nested: a smaller budget of the same
seed is a prefix of a larger one, so a budget sweep varies only the amount of knowledge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lethe.errors import ConfigError
from lethe_backdoor.poison import BackdoorSplits
from lethe_vision.data import ImageData

SOURCES = ("stamp", "poisoned")
BUDGET_SEED, BUDGET_STAMP_SEED = 404, 505


@dataclass(frozen=True)
class BudgetSpec:
    """A parsed budget: a ``fraction`` of the training set or a ``count`` of images."""

    text: str
    fraction: float | None = None
    count: int | None = None

    def size(self, train_size: int) -> int:
        """The number of stamped samples for a training set of ``train_size`` (at least one)."""
        if self.count is not None:
            return self.count
        return max(1, round(self.fraction * train_size))


def parse_budget(text: str | float | int) -> BudgetSpec:
    """``"0.01"`` (a share of the training set, in (0, 1]) or ``"500"`` (a number of images)."""
    raw = str(text).strip()
    if raw.isdigit():
        count = int(raw)
        if count < 1:
            raise ConfigError(f"budget must be at least one image, got {raw!r}")
        return BudgetSpec(raw, count=count)
    try:
        fraction = float(raw)
    except ValueError:
        raise ConfigError(f"budget {raw!r} is neither a share of the training set (0.01) nor a count (500)") from None
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise ConfigError(f"budget share must be in (0, 1] of the training set, got {raw!r}")
    return BudgetSpec(raw, fraction=fraction)


def parse_budgets(text: str) -> tuple[BudgetSpec, ...]:
    """A comma-separated list of budgets."""
    specs = tuple(parse_budget(t) for t in str(text).split(",") if t.strip())
    if not specs:
        raise ConfigError("name at least one budget")
    return specs


@dataclass
class DefenderBudget:
    """The defender's data: ``stamped`` (target labels: the forget set) and ``clean`` images."""

    source: str
    spec: str
    target: int
    clean: ImageData  # clean images with their true labels, every class
    stamped: ImageData  # trigger-stamped images labelled with the target
    stamped_true: torch.Tensor = field(repr=False)  # the true labels of ``stamped``

    @property
    def size(self) -> int:
        return len(self.stamped)

    def stamped_true_data(self) -> ImageData:
        """The stamped images with their TRUE labels (to measure ASR / robust accuracy on them)."""
        return ImageData(self.stamped.images, self.stamped_true)

    def split(self, fraction: float, seed: int) -> tuple[DefenderBudget, DefenderBudget]:
        """``(fit, held_out)``: ``fraction`` of the clean and of the stamped images held out (at
        least one each), e.g. to tune SVD's alphas without touching test data."""
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"held-out fraction of the budget must be in (0, 1), got {fraction}")
        if len(self.clean) < 2 or len(self.stamped) < 2:
            raise ConfigError(
                f"a budget of {self.size} stamped and {len(self.clean)} clean images is too small to hold "
                "a tuning part out; raise the budget or turn tuning off (--set tune=false)"
            )
        gen = torch.Generator().manual_seed(seed + BUDGET_SEED)

        def cut(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            order = torch.randperm(n, generator=gen)
            held = min(n - 1, max(1, round(fraction * n)))
            return order[held:].sort().values, order[:held].sort().values

        c_fit, c_held = cut(len(self.clean))
        s_fit, s_held = cut(len(self.stamped))

        def part(c: torch.Tensor, s: torch.Tensor) -> DefenderBudget:
            return DefenderBudget(
                self.source, self.spec, self.target, self.clean.subset(c), self.stamped.subset(s), self.stamped_true[s]
            )

        return part(c_fit, s_fit), part(c_held, s_held)

    def describe(self) -> dict:
        return {"budget": self.spec, "source": self.source, "stamped": self.size, "clean": len(self.clean)}


def available(splits: BackdoorSplits, source: str) -> int:
    """How many stamped samples a defender can have from ``source``."""
    check_source(source)
    if source == "stamp":
        return int((splits.pool.labels != splits.target).sum())
    return int((splits.poison_labels != splits.target).sum())


def check_source(source: str) -> None:
    if source not in SOURCES:
        raise ConfigError(f"unknown budget source {source!r}; choose from {', '.join(SOURCES)}")


def budget_size(splits: BackdoorSplits, spec: BudgetSpec | str, source: str) -> int:
    """The budget's number of stamped samples; a ConfigError when the source has fewer."""
    spec = parse_budget(spec) if isinstance(spec, str) else spec
    n = spec.size(len(splits.train))
    have = available(splits, source)
    if n > have:
        if source == "stamp":
            where = (
                f"the defender's clean pool holds {len(splits.pool)} images, {have} of them outside the "
                f"target class {splits.target} (the pool is the --val-fraction held out at training)"
            )
        else:
            where = f"the training set has {have} poisoned samples outside the target class {splits.target}"
        raise ConfigError(f"budget {spec.text} ({n} stamped samples) is larger than available: {where}")
    if n > len(splits.pool):
        raise ConfigError(
            f"budget {spec.text} needs {n} clean images but the defender's clean pool holds {len(splits.pool)}"
        )
    return n


def _pool_draw(splits: BackdoorSplits, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """``(clean, stamp_candidates, generator)``: the pool indices a budget of ``n`` takes as its
    clean images and, for the ``stamp`` source, as the images it stamps (the first ``n`` non-target
    ones of the same seeded order)."""
    gen = torch.Generator().manual_seed(splits.seed + BUDGET_SEED)
    order = torch.randperm(len(splits.pool), generator=gen)
    return order[:n], order[splits.pool.labels[order] != splits.target][:n], gen


def unused_pool(splits: BackdoorSplits, spec: BudgetSpec | str, source: str = "stamp") -> ImageData:
    """The defender's pool images that the budget ``spec`` does not use, clean with true labels: a
    validation set for choosing a defence's settings without touching test data."""
    spec = parse_budget(spec) if isinstance(spec, str) else spec
    clean, candidates, _ = _pool_draw(splits, budget_size(splits, spec, source))
    keep = torch.ones(len(splits.pool), dtype=torch.bool)
    keep[clean] = False
    if source == "stamp":
        keep[candidates] = False
    return splits.pool.subset(torch.nonzero(keep).view(-1))


def make_budget(splits: BackdoorSplits, spec: BudgetSpec | str, source: str = "stamp") -> DefenderBudget:
    """Draw the defender's budget (seeded by ``splits.seed``): ``n`` stamped and ``n`` clean images."""
    spec = parse_budget(spec) if isinstance(spec, str) else spec
    n = budget_size(splits, spec, source)
    target = splits.target
    clean_index, candidates, gen = _pool_draw(splits, n)
    clean = splits.pool.subset(clean_index)
    if source == "stamp":
        stamp_gen = torch.Generator().manual_seed(splits.seed + BUDGET_STAMP_SEED)
        images = splits.attack.stamp(splits.pool.images[candidates], stamp_gen)
        true = splits.pool.labels[candidates].clone()
    else:
        keep = splits.poison_labels != target
        index, true_all = splits.poison_indices[keep], splits.poison_labels[keep]
        pick = torch.randperm(len(index), generator=gen)[:n]
        images = splits.train.images[index[pick]].clone()  # already stamped, as the model saw them
        true = true_all[pick].clone()
    stamped = ImageData(images, torch.full((n,), target, dtype=torch.long))
    return DefenderBudget(source, spec.text, target, clean, stamped, true)
