"""The one benchmark runner: ``python benchmarks/run.py CONFIG.yaml [--out DIR]``.

A config names the task, dataset, model, training recipe, forget classes, methods and method
overrides; results (JSON, Markdown, plots) go to ``benchmarks/results/<out>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


def run_classification(cfg: dict, out: Path) -> None:
    from lethe.engine import Engine
    from lethe_classification.bench import BenchConfig, run_bench, write_bench
    from lethe_classification.data import parse_classes
    from lethe_classification.datasets import load_dataset
    from lethe_classification.pipeline import TrainRecipe, eval_options

    bundle = load_dataset(cfg["dataset"], cfg.get("data_root"))
    config = BenchConfig(
        arch=cfg["arch"],
        forget=parse_classes(str(cfg["forget"]), bundle.classes),
        methods=tuple(cfg.get("methods", ["delete", "svd"])),
        width=cfg.get("width"),
        recipe=TrainRecipe(**cfg.get("recipe", {})),
        val_fraction=cfg.get("val_fraction", 0.05),
        seed=cfg.get("seed", 0),
        method_overrides=cfg.get("overrides", {}),
        evaluation=eval_options(cfg.get("evaluation")),
    )
    engine = Engine(seed=config.seed, progress=sys.stderr.isatty(), num_workers=cfg.get("workers", 0))
    result = run_bench(bundle, config, engine)
    result["header"]["config"] = cfg.get("_path")
    if cfg.get("note"):
        result["header"]["note"] = cfg["note"]
    write_bench(result, out, cfg.get("title", f"Class forgetting on {bundle.name} with {config.arch}"))
    print((out / "results.md").read_text())


TASKS = {"classification": run_classification}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="YAML config under benchmarks/configs/")
    parser.add_argument("--out", default=None, help="output folder (default: results/<config out>)")
    args = parser.parse_args(argv)
    from lethe.errors import LetheError

    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["_path"] = str(Path(args.config))
    out = Path(args.out) if args.out else RESULTS / cfg["out"]
    try:
        TASKS[cfg.get("task", "classification")](cfg, out)
    except LetheError as err:
        print(f"benchmarks/run.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
