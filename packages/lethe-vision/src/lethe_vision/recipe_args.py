"""Command-line options shared by the CLIs that train a classifier (``lethe-classify``,
``lethe-backdoor``): its model and training recipe, pretrained weights, and a bench's per-method
``--set METHOD.KEY=VALUE`` overrides. ``recipe_fields`` and ``training_record`` also serve
``lethe-face`` and ``lethe-segment``, whose recipe options are their own but for those four."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from lethe import parse_assignments
from lethe.errors import ConfigError
from lethe.pretrained import check_pretrained, list_pretrained
from lethe_vision.models import MODELS
from lethe_vision.pipeline import TrainRecipe


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """``--arch``, ``--width``, ``--epochs``, ``--batch-size``, ``--lr``, ``--weight-decay``."""
    p.add_argument("--arch", required=True, help=f"one of: {', '.join(MODELS.names())}")
    p.add_argument("--width", type=int, default=None, help="base width (cifar-resnet18: 64 is the paper's)")
    p.add_argument("--epochs", type=int, default=TrainRecipe.epochs, help="training epochs")
    p.add_argument("--batch-size", type=int, default=TrainRecipe.batch_size)
    p.add_argument("--lr", type=float, default=TrainRecipe.lr, help="peak SGD learning rate (cosine decay)")
    p.add_argument("--weight-decay", type=float, default=TrainRecipe.weight_decay)


def recipe_from_args(args: argparse.Namespace) -> TrainRecipe:
    """The ``TrainRecipe`` those options describe; a ConfigError naming the option if one is out of range."""
    if args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not args.lr > 0:
        raise ConfigError(f"--lr must be positive, got {args.lr}")
    if args.weight_decay < 0:
        raise ConfigError(f"--weight-decay must not be negative, got {args.weight_decay}")
    return TrainRecipe(**recipe_fields(args))


def recipe_fields(args: argparse.Namespace) -> dict[str, Any]:
    """``--epochs``, ``--batch-size``, ``--lr`` and ``--weight-decay``, the options every
    image-training CLI has, as the recipe's fields of those names (a task's recipe adds its own)."""
    return {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay}


def training_record(args: argparse.Namespace, recipe: Any, seconds: float, log: Any, **left_out: Any) -> dict:
    """The entries of a ``train`` checkpoint's info that every task writes alike, after those of
    its model and data: the split settings (``--val-fraction``, ``--seed``: ``unlearn`` and
    ``evaluate`` rebuild the splits from them), ``left_out`` (what training left out, under the
    task's key, e.g. ``excluded_classes=[3]``), the recipe (a dataclass), the seconds and log."""
    return {
        "split": {"val_fraction": args.val_fraction, "seed": args.seed},
        **left_out,
        "recipe": asdict(recipe),
        "train_seconds": seconds,
        "train_log": log,
    }


def add_pretrained_arg(p: argparse.ArgumentParser) -> None:
    """``--pretrained NAME``: weights the model starts from (``lethe.pretrained``)."""
    p.add_argument(
        "--pretrained",
        default=None,
        metavar="NAME",
        help=f"start from these weights, head re-sized to the classes: {', '.join(list_pretrained())} "
        "(hub: the library's own weights, downloaded; default: random initialisation)",
    )


def pretrained_from_args(args: argparse.Namespace) -> str | None:
    """``--pretrained``, checked against the registered names (None when not given)."""
    if args.pretrained is not None:
        check_pretrained(args.pretrained)
    return args.pretrained


def parse_method_overrides(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``--set`` of a bench: ``["delete.lr=1e-2", "svd.tune=false"]`` -> ``{"delete": {"lr": "1e-2"}, ...}``."""
    result: dict[str, dict[str, str]] = {}
    for key, value in parse_assignments(items).items():
        method, sep, name = key.partition(".")
        if not sep:
            raise ConfigError(f"bench --set needs METHOD.KEY=VALUE, got {key}={value}")
        result.setdefault(method, {})[name] = value
    return result
