"""Where the SVD step's time goes (issue 20 part 1): one step of lethe's SVD with its defaults on the
cached original of a segmentation speed config, in this process, with timers around its parts.

    python benchmarks/svd_profile.py benchmarks/configs/speed-camvid-unet-resnet18-cpu.yaml \
        --samples 160 --out benchmarks/results/speed/camvid-unet-resnet18-cpu/svd-profile-160.md

The parts: streaming each side through the model with the Gram hooks (``accumulate_grams``), each
layer's spectrum (``LayerStats.spectrum``: ``eigh`` of its Gram, or of its kept rows' smaller Gram),
every ``torch.linalg.eigh`` call (its dtype and size, and whether float32 failed and was redone in
float64) and the weight updates (``LayerUpdate``). Samples are the speed benchmark's (``side_images``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

import lethe
import lethe.activations as activations
import lethe.methods.svd as svd_method
import lethe.projection as projection
from lethe.engine import Engine
from lethe.errors import LetheError
from lethe.io import write_text_atomic
from lethe.tasks import get_task
from lethe_segmentation.speed import image_tensors, side_images, speed_original


class Timers:
    """Seconds per named part, and a log of every eigh call."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.layers: list[dict] = []
        self.eighs: list[dict] = []

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        setattr(owner, name, timed)


def install(timers: Timers) -> None:
    timers.wrap(svd_method, "accumulate_grams", "stream both sides through the model (forward, patches, Grams)")
    timers.wrap(projection.LayerUpdate, "__init__", "weight updates: per-layer set-up")
    timers.wrap(projection.LayerUpdate, "__call__", "weight updates: applying the alphas")
    spectrum = activations.LayerStats.spectrum

    def layer_spectrum(self, precision=torch.float64):
        start = time.perf_counter()
        kept = bool(self._kept)
        out = spectrum(self, precision)
        seconds = time.perf_counter() - start
        timers.seconds["spectra (eigh and what surrounds it)"] += seconds
        width = (
            self.module.in_channels // self.groups * self.module.kernel_size[0] * self.module.kernel_size[1]
            if (self.kind == "conv")
            else out.vectors.shape[-2]
        )
        timers.layers.append(
            {
                "layer": self.name,
                "d": width,
                "rows": self.rows,
                "path": "kept rows" if kept else "Gram",
                "seconds": seconds,
            }
        )
        return out

    activations.LayerStats.spectrum = layer_spectrum
    eigh = torch.linalg.eigh

    def logged_eigh(matrix, *args, **kwargs):
        start = time.perf_counter()
        try:
            result = eigh(matrix, *args, **kwargs)
            failed = False
            return result
        except torch.linalg.LinAlgError:
            failed = True
            raise
        finally:
            timers.eighs.append(
                {
                    "size": matrix.shape[-1],
                    "dtype": str(matrix.dtype).replace("torch.", ""),
                    "failed": failed,
                    "seconds": time.perf_counter() - start,
                }
            )

    torch.linalg.eigh = logged_eigh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a speed-segmentation config (benchmarks/configs/speed-camvid-*.yaml)")
    parser.add_argument("--samples", type=int, default=160, help="images per side")
    parser.add_argument("--out", required=True, help="Markdown file to write")
    args = parser.parse_args(argv)
    try:
        mapping = yaml.safe_load(Path(args.config).read_text())
        task = mapping.get("task") if isinstance(mapping, dict) else None
        if task != "speed-segmentation":
            raise LetheError(f"task is {task!r}; svd_profile takes a speed-segmentation config")
        config = get_task("speed-segmentation").read(mapping)
    except (OSError, yaml.YAMLError, LetheError) as err:
        print(f"svd_profile: {args.config}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    if Path(args.out).exists():
        print(f"svd_profile: {args.out} exists; remove it first", file=sys.stderr)
        return 2
    engine = Engine(device="cpu", seed=config.seed, progress=False)
    _, splits, forget, original, _ = speed_original(config, engine)
    bundle = splits.bundle
    retain_order, forget_order = side_images(splits, forget, args.samples)
    sides = {
        name: DataLoader(TensorDataset(*image_tensors(splits, order)), batch_size=config.svd_steps.batch_size)
        for name, order in (("retain", retain_order), ("forget", forget_order))
    }
    with torch.no_grad():
        original.eval()(sides["forget"].dataset.tensors[0][:2])  # one-time initialisation out of the timing
    timers = Timers()
    install(timers)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    lethe.unlearn(
        original,
        "svd",
        forget=sides["forget"],
        retain=sides["retain"],
        forget_classes=forget,
        num_classes=bundle.num_classes,
        overrides={"tune": False, **config.svd, "retain_per_class": None, "num_forget": args.samples},
        engine=engine,
        inplace=True,
    )
    total = time.perf_counter() - start
    lines = [
        f"# Where the SVD step's time goes: {config.title or args.config}, {args.samples} images per side",
        "",
        f"Command: `python benchmarks/svd_profile.py {args.config} --samples {args.samples} --out {args.out}` "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {torch.get_num_threads()} thread(s)); "
        f"lethe's SVD defaults, alphas {config.svd['alpha_r']} / {config.svd['alpha_f']}, no tuning; "
        "one run in this process (timers add a little).",
        "",
        f"Whole step: {total:.1f} s.",
        "",
        "| part | seconds | share |",
        "|---|---|---|",
        *(f"| {k} | {v:.1f} | {v / total:.0%} |" for k, v in timers.seconds.items()),
        "",
        "The slowest layers' spectra (both sides):",
        "",
        "| layer | d | rows per side | path | seconds |",
        "|---|---|---|---|---|",
        *(
            f"| {r['layer']} | {r['d']} | {r['rows']} | {r['path']} | {r['seconds']:.2f} |"
            for r in sorted(timers.layers, key=lambda r: -r["seconds"])[:10]
        ),
        "",
        "eigh calls of size 1,000 or more:",
        "",
        "| size | dtype | failed (redone in float64) | seconds |",
        "|---|---|---|---|",
        *(
            f"| {e['size']} | {e['dtype']} | {'yes' if e['failed'] else 'no'} | {e['seconds']:.2f} |"
            for e in timers.eighs
            if e["size"] >= 1000
        ),
        "",
    ]
    write_text_atomic(args.out, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
