"""Where DELETE's retained-accuracy loss comes from on a small model: weights or BatchNorm statistics.

For each forget class: train the original (as the bench does), run DELETE with its published
settings, then evaluate retain_test for four combinations of weights (original / after DELETE) and
BatchNorm running statistics (the original's / DELETE's, which were re-estimated on forget-only
batches), plus DELETE's weights with statistics re-estimated on retained training batches.
``python benchmarks/delete_bn_check.py CONFIG.yaml --classes 7,9 --out FILE.md``
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
import yaml
from torch import nn

from lethe.config import read_config
from lethe.engine import Engine
from lethe.io import write_text_atomic
from lethe.metrics import accuracy, forget_mask
from lethe_classification.bench import ClassificationBenchConfig
from lethe_vision.datasets import load_dataset
from lethe_vision.pipeline import loader, make_splits, model_spec, outputs_on, train_model, unlearn_model


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k or "num_batches" in k}


def with_bn(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    out = copy.deepcopy(model)
    out.load_state_dict({**out.state_dict(), **state})
    return out


@torch.no_grad()
def recalibrate(model: nn.Module, data_loader, engine: Engine, batches: int = 20) -> nn.Module:
    """BatchNorm running statistics re-estimated (cumulative average) on ``batches`` batches."""
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    out.train()
    for i, (x, _) in enumerate(data_loader):
        if i == batches:
            break
        out(engine.to_device(x))
    return out.eval()


def retain_test(model: nn.Module, splits, engine: Engine) -> float:
    out = outputs_on(model, splits.test, splits.bundle, engine)
    return accuracy(out.subset(~forget_mask(out.labels, splits.forget_classes)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--classes", required=True, help="forget classes (indices), one run each")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    config = read_config(ClassificationBenchConfig, yaml.safe_load(args.config.read_text()))
    seed = config.seeds[0]
    bundle = load_dataset(config.dataset, config.data_root)
    engine = Engine(device="cpu", progress=False, seed=seed)
    recipe = config.recipe
    lines = [
        f"# {__doc__.splitlines()[0]}",
        "",
        f"config: `{args.config}`; command: "
        f"`python benchmarks/delete_bn_check.py {args.config} --classes {args.classes} --out {args.out}`",
        "",
        "| forget | original | DELETE | DELETE weights + original BN stats | original weights + DELETE's BN "
        "stats | DELETE weights + BN stats re-estimated on retained data |",
        "|---|---|---|---|---|---|",
    ]
    splits0 = make_splits(bundle, (), 0.05, seed)
    original, _, _ = train_model(
        model_spec(config.model.arch, bundle, config.model.width), splits0.train, bundle, recipe, engine
    )
    for c in (int(x) for x in args.classes.split(",")):
        splits = make_splits(bundle, (c,), 0.05, seed)
        deleted, _ = unlearn_model(original, "delete", splits, engine)
        retained = loader(engine, splits.retain_train, bundle, 128, train=True)
        cells = [
            retain_test(m, splits, engine)
            for m in (
                original,
                deleted,
                with_bn(deleted, bn_state(original)),
                with_bn(original, bn_state(deleted)),
                recalibrate(deleted, retained, engine),
            )
        ]
        lines.append(f"| {c} ({bundle.classes[c]}) | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
        print(lines[-1], flush=True)
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    return 0
