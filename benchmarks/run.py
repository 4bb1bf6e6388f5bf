"""The one benchmark runner: ``python benchmarks/run.py CONFIG.yaml [--out DIR]``.

A config names the task, dataset, model, training recipe, forget classes, methods and method
overrides; results (JSON, Markdown, plots) go to ``benchmarks/results/<out>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import json
import os
import sys
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


def print_report(path: Path) -> None:
    from lethe.cli_support import print_report as show

    show(path)


def forget_set(entry, classes):
    """A ``forget_sets`` entry: classes (``3``, ``"cat,dog"``) or a mapping with ``classes`` and
    optionally ``methods`` and ``strongest_baselines``."""
    from lethe.errors import ConfigError
    from lethe_classification.bench import ForgetSet
    from lethe_vision.data import parse_classes

    if not isinstance(entry, dict):
        return ForgetSet(parse_classes(str(entry), classes))
    unknown = set(entry) - {"classes", "methods", "strongest_baselines", "seeds"}
    if unknown or "classes" not in entry:
        raise ConfigError(f"a forget set takes classes, methods, strongest_baselines, seeds; got {sorted(entry)}")
    methods, seeds = entry.get("methods"), entry.get("seeds")
    return ForgetSet(parse_classes(str(entry["classes"]), classes), tuple(methods) if methods else None,
                     int(entry.get("strongest_baselines", 0)), tuple(seeds) if seeds is not None else None)  # fmt: skip


def only_sets(forget_sets: list, wanted: list[str], classes) -> list:
    """The config's forget sets whose classes are among ``wanted`` (``--forget-set``), in config order."""
    from lethe.errors import ConfigError
    from lethe_vision.data import parse_classes

    picked = {tuple(sorted(parse_classes(str(w), classes))): w for w in wanted}
    have = {tuple(sorted(fs.classes)) for fs in forget_sets}
    missing = [w for key, w in picked.items() if key not in have]
    if missing:
        raise ConfigError(f"--forget-set {', '.join(missing)}: not a forget set of this config")
    return [fs for fs in forget_sets if tuple(sorted(fs.classes)) in picked]


def write_classification_suite(cfg: dict, runs: list, out: Path, title: str) -> None:
    """Mean ± std tables, scatter and per-class plot of ``runs`` (every run's header holds its
    device and versions; the suite header takes the first run's)."""
    from lethe_classification.bench import write_suite

    header = {k: v for k, v in runs[0]["header"].items() if k not in ("forget", "seed")}
    strongest = {", ".join(map(str, r["forget"])): r["header"]["strongest_baselines"]
                 for r in runs if "strongest_baselines" in r["header"]}  # fmt: skip
    if strongest:
        header["strongest baselines (lowest mean avg_gap on the same seed's earlier sets)"] = strongest
    header.update(forget_sets=[list(f) for f in sorted({tuple(r["forget"]) for r in runs}, key=lambda f: (len(f), f))],
                  seeds=sorted({r["header"]["seed"] for r in runs}), config=cfg.get("_path"),
                  note=cfg.get("note", ""))  # fmt: skip
    write_suite(runs, out, title, header)


def merge_classification(cfg: dict, parts: list[Path], out: Path) -> None:
    """One suite from the ``runs.json`` of runs split across processes (``--seeds``, ``--forget-set``)."""
    from lethe.errors import DataError
    from lethe_classification.bench import derive_columns

    runs = []
    for part in parts:
        if not (part / "runs.json").is_file():
            raise DataError(f"{part} has no runs.json")
        runs += json.loads((part / "runs.json").read_text())
    runs.sort(key=lambda r: (len(r["forget"]), r["header"]["seed"], r["forget"]))
    for run in runs:
        derive_columns(run["rows"])  # recomputed from the stored metrics (and added if a part predates one)
    write_classification_suite(cfg, runs, out, cfg.get("title", "Class forgetting"))
    print_report(out / "results.md")


def run_classification(cfg: dict, out: Path) -> None:
    from lethe.engine import Engine
    from lethe_classification.bench import (
        BenchConfig,
        run_bench,
        run_suite,
        write_bench,
    )
    from lethe_vision.datasets import load_dataset
    from lethe_vision.pipeline import TrainRecipe, eval_options

    bundle = load_dataset(cfg["dataset"], cfg.get("data_root"), image_size=cfg.get("image_size"))
    if "mean" in cfg or "std" in cfg:  # the normalisation the (pretrained) model expects
        mean, std = tuple(cfg.get("mean", bundle.mean)), tuple(cfg.get("std", bundle.std))
        bundle = dataclasses.replace(bundle, mean=mean, std=std)
    forget_sets = [forget_set(f, bundle.classes) for f in cfg.get("forget_sets", [cfg.get("forget")])]
    if cfg.get("only_sets"):
        forget_sets = only_sets(forget_sets, cfg["only_sets"], bundle.classes)
    config = BenchConfig(
        arch=cfg["arch"],
        forget=forget_sets[0].classes,
        methods=tuple(cfg.get("methods", ["delete", "svd"])),
        width=cfg.get("width"),
        recipe=TrainRecipe(**cfg.get("recipe", {})),
        val_fraction=cfg.get("val_fraction", 0.05),
        seed=cfg.get("seed", 0),
        method_overrides=cfg.get("overrides", {}),
        evaluation=eval_options(cfg.get("evaluation")),
        retain_per_class=cfg.get("retain_per_class"),
        oracle=bool(cfg.get("oracle", True)),
        cache=cfg.get("cache"),
        variants=cfg.get("variants", {}),
        pretrained=cfg.get("pretrained"),
    )
    engine = Engine(seed=config.seed, progress=sys.stderr.isatty(), num_workers=cfg.get("workers", 0),
                    data_on_device=bool(cfg.get("data_on_device", False)))
    title = cfg.get("title", f"Class forgetting on {bundle.name} with {config.arch}")
    if "forget_sets" in cfg or "seeds" in cfg:
        seeds = cfg.get("seeds", [config.seed])
        write = functools.partial(write_classification_suite, cfg, out=out, title=title)
        run_suite(bundle, config, forget_sets, seeds, engine, on_run=write)
        print_report(out / "results.md")
        return
    result = run_bench(bundle, config, engine)
    result["header"]["config"] = cfg.get("_path")
    if cfg.get("note"):
        result["header"]["note"] = cfg["note"]
    write_bench(result, out, title)
    print_report(out / "results.md")


def run_backdoor(cfg: dict, out: Path) -> None:
    from lethe_backdoor.bench import run_config

    run_config(cfg, out)
    print_report(out / "results.md")


def run_segmentation(cfg: dict, out: Path) -> None:
    from lethe.engine import Engine
    from lethe_segmentation.bench import run_config

    engine = Engine(seed=cfg.get("seed", 0), progress=sys.stderr.isatty(), num_workers=cfg.get("workers", 0))
    run_config(cfg, out, engine)
    print_report(out / "results.md")


def _check_methods(methods, overrides: dict, settings=None) -> None:
    """Every method is registered and every override names a setting of it."""
    import lethe

    settings = settings or lethe.method_settings
    for method in methods:
        settings(method)
    for method, values in (overrides or {}).items():
        settings(method, values)


def check_classification(cfg: dict) -> None:
    import lethe
    from lethe.pretrained import check_pretrained
    from lethe_classification.bench import BenchConfig
    from lethe_vision.pipeline import TrainRecipe, eval_options

    lethe.build_settings(TrainRecipe, cfg.get("recipe", {}), "recipe")
    eval_options(cfg.get("evaluation"))
    if cfg.get("pretrained"):
        check_pretrained(cfg["pretrained"])

    per_set = [m for f in cfg.get("forget_sets", []) if isinstance(f, dict) for m in f.get("methods") or []]
    variants = BenchConfig(arch="", forget=(), variants=cfg.get("variants", {}))
    for name in [*cfg.get("methods", []), *per_set]:
        lethe.method_settings(*variants.resolve(name))
    _check_methods([], cfg.get("overrides"))


def check_backdoor(cfg: dict) -> None:
    from lethe_backdoor.attacks import build_attack
    from lethe_backdoor.bench import config_from_mapping
    from lethe_backdoor.defences import defence_settings

    config = config_from_mapping(cfg)
    build_attack(config.attack, config.attack_overrides)
    _check_methods(config.methods, config.method_overrides, defence_settings)


def check_segmentation(cfg: dict) -> None:
    import lethe
    from lethe_segmentation.pipeline import TrainRecipe
    from lethe_segmentation.transforms import parse_size

    lethe.build_settings(TrainRecipe, cfg.get("recipe", {}), "recipe")
    parse_size(cfg.get("size"))
    parse_size(cfg.get("crop"), "crop")
    _check_methods(cfg.get("methods", []), cfg.get("overrides"))


def run_face(cfg: dict, out: Path) -> None:
    from lethe_face.bench import run_config

    run_config(cfg, out)
    print_report(out / "results.md")


def check_face(cfg: dict) -> None:
    from lethe_face.bench import check_config, config_from_mapping

    check_config(config_from_mapping(cfg))


def _script(name: str):
    """The module of ``benchmarks/<name>.py`` (``speed``, ``speed_segmentation``), however this runner
    was loaded (script or imported by tests)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(name)


def script_task(name: str) -> tuple:
    """``(run, check)`` of a task whose runner is the ``run_config`` / ``check`` pair of a script."""

    def run(cfg: dict, out: Path) -> None:
        _script(name).run_config(cfg, out)
        print_report(out / "results.md")

    def check(cfg: dict) -> None:
        _script(name).check(cfg)

    return run, check


#: task name -> (run the config, check the config without running it)
TASKS = {
    "classification": (run_classification, check_classification),
    "backdoor": (run_backdoor, check_backdoor),
    "segmentation": (run_segmentation, check_segmentation),
    "face": (run_face, check_face),
    "speed": script_task("speed"),
    "speed-segmentation": script_task("speed_segmentation"),
}


def rewrite_speed(cfg: dict, out: Path) -> None:
    _script("speed").rewrite_report(out, cfg.get("title", "Speed"))
    print_report(out / "results.md")


#: task -> rewrite its report from the output folder's results.json without measuring (``--rewrite``)
REWRITABLE = {"speed": rewrite_speed}

#: tasks whose runner can keep the forget sets of an earlier, interrupted run (``--resume``)
RESUMABLE = {"segmentation"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="YAML config under benchmarks/configs/")
    parser.add_argument("--out", default=None, help="output folder (default: results/<config out>)")
    parser.add_argument("--check", action="store_true", help="validate the config's settings and stop")
    parser.add_argument("--seeds", default=None, help="run only these seeds of a suite, e.g. 1 (comma-separated)")
    parser.add_argument(
        "--forget-set",
        action="append",
        default=None,
        metavar="CLASSES",
        help="classification suites: run only this forget set of the config (repeatable), e.g. truck",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        metavar="DIR",
        help="write one suite from the runs.json of these output folders (runs split by --seeds or --forget-set)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="segmentation: keep the forget sets the output folder's results.json already has",
    )
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help="speed: recompute the targets of the output folder's results.json and rewrite the report",
    )
    args = parser.parse_args(argv)
    from lethe.errors import ConfigError, LetheError

    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["_path"] = str(Path(args.config))
    out = Path(args.out) if args.out else RESULTS / cfg["out"]
    task = cfg.get("task", "classification")
    if task not in TASKS:
        print(f"benchmarks/run.py: error: unknown task {task!r}; tasks are {', '.join(TASKS)}", file=sys.stderr)
        return 2
    run, check = TASKS[task]
    try:
        if args.resume:
            if task not in RESUMABLE:
                raise ConfigError(f"--resume is for the {', '.join(sorted(RESUMABLE))} task, not {task!r}")
            cfg["resume"] = True
        if args.forget_set:
            if task != "classification":
                raise ConfigError(f"--forget-set is for the classification task, not {task!r}")
            cfg["only_sets"] = args.forget_set
        if args.seeds is not None:
            cfg["seeds"] = [int(v) for v in args.seeds.split(",") if v.strip()]
        check(cfg)
        if args.rewrite:
            if task not in REWRITABLE:
                raise ConfigError(f"--rewrite is for the {', '.join(sorted(REWRITABLE))} task, not {task!r}")
            REWRITABLE[task](cfg, out)
        elif args.merge:
            merge_classification(cfg, args.merge, out)
        elif not args.check:
            run(cfg, out)
    except LetheError as err:
        print(f"benchmarks/run.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
