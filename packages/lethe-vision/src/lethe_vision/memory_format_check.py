"""Training and evaluation throughput on this machine's CPU in the two memory formats (contiguous
NCHW and channels_last), for the models lethe's CPU benchmarks train: why ``Engine.channels_last``
applies on every device. ``python benchmarks/memory_format_check.py --out FILE.md``

Random-initialised models and random inputs (the cost of a step does not depend on the values);
each cell is the median of ``--steps`` SGD steps (forward, cross-entropy, backward, update) at
batch 128 after one warm-up step, and of the same number of no-grad forwards in eval mode.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lethe.io import write_text_atomic
from lethe_vision.models import ModelSpec, build_model

#: (architecture, width, input channels, image size) of the CPU benchmarks' classification models
MODELS = (
    ("timm:tf_efficientnet_lite0", None, 3, 96),
    ("timm:tf_efficientnet_lite0", None, 3, 64),
    ("cifar-resnet18", 16, 3, 32),
    ("small-cnn", None, 1, 28),
)
BATCH = 128


def images_per_second(model: torch.nn.Module, x: torch.Tensor, steps: int, train: bool) -> float:
    """Median images/s over ``steps`` timed steps (one untimed warm-up step first)."""
    y = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train(train)
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        if train:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(x)
        if step:
            times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    columns = ("train NCHW", "train channels_last", "speed-up", "eval NCHW", "eval channels_last", "speed-up")
    header = "| model | input | " + " | ".join(columns) + " |"
    lines = [
        "# Images per second on the CPU, contiguous (NCHW) against channels_last",
        "",
        f"command: `python benchmarks/memory_format_check.py --out {args.out}`; {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, batch {BATCH}, median of {args.steps} steps",
        "",
        header,
        "|---|---|---|---|---|---|---|---|",
    ]
    for arch, width, channels, size in MODELS:
        spec = ModelSpec(arch=arch, num_classes=10, in_channels=channels, image_size=size, width=width)
        x = torch.randn(BATCH, channels, size, size)
        cells = []
        for train in (True, False):
            rates = []
            for fmt in (torch.contiguous_format, torch.channels_last):
                model = build_model(spec).to(memory_format=fmt)
                rates.append(images_per_second(model, x.contiguous(memory_format=fmt), args.steps, train))
            cells += [f"{rates[0]:.0f}", f"{rates[1]:.0f}", f"{rates[1] / rates[0]:.2f}x"]
        name = arch + (f" width {width}" if width else "")
        lines.append(f"| {name} | {channels}x{size}x{size} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    return 0
