"""The one benchmark runner: ``python benchmarks/run.py CONFIG.yaml [--out DIR]``.

A config names the task, dataset, model, training recipe, forget classes, methods and method
overrides; results (JSON, Markdown, plots) go to ``benchmarks/results/<out>``. Each task is a module
of a task package with ``run_benchmark(cfg, out)`` and ``check_benchmark(cfg)`` (and, for the
options only some tasks take, ``merge_benchmark(cfg, parts, out)`` and ``rewrite_benchmark(cfg, out)``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


class Task(NamedTuple):
    """A config's ``task``: the module that runs it and the task-only options it takes."""

    module: str
    options: frozenset[str] = frozenset()


#: task name -> its module and options (imported only when a config names the task)
TASKS = {
    "classification": Task("lethe_classification.bench", frozenset({"--forget-set", "--merge"})),
    "backdoor": Task("lethe_backdoor.bench"),
    "segmentation": Task("lethe_segmentation.bench", frozenset({"--resume"})),
    "face": Task("lethe_face.bench"),
    "speed": Task("lethe_classification.speed", frozenset({"--rewrite"})),
    "speed-segmentation": Task("lethe_segmentation.speed"),
}


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
    from lethe.cli_support import print_report
    from lethe.errors import ConfigError, LetheError

    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["_path"] = str(Path(args.config))
    out = Path(args.out) if args.out else RESULTS / cfg["out"]
    name = cfg.get("task", "classification")
    if name not in TASKS:
        print(f"benchmarks/run.py: error: unknown task {name!r}; tasks are {', '.join(TASKS)}", file=sys.stderr)
        return 2
    given = {"--resume": args.resume, "--forget-set": args.forget_set, "--rewrite": args.rewrite, "--merge": args.merge}
    try:
        for option in (o for o, value in given.items() if value and o not in TASKS[name].options):
            takers = sorted(t for t, task in TASKS.items() if option in task.options)
            raise ConfigError(f"{option} is for the {', '.join(takers)} task, not {name!r}")
        task = importlib.import_module(TASKS[name].module)
        if args.resume:
            cfg["resume"] = True
        if args.forget_set:
            cfg["only_sets"] = args.forget_set
        if args.seeds is not None:
            cfg["seeds"] = [int(v) for v in args.seeds.split(",") if v.strip()]
        task.check_benchmark(cfg)
        if args.rewrite:
            task.rewrite_benchmark(cfg, out)
        elif args.merge:
            task.merge_benchmark(cfg, args.merge, out)
        elif args.check:
            return 0
        else:
            task.run_benchmark(cfg, out)
        print_report(out / "results.md")
    except LetheError as err:
        print(f"benchmarks/run.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
