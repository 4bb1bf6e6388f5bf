"""The one benchmark runner: ``python benchmarks/run.py CONFIG.yaml [--out DIR]``.

A config names its task, dataset, model, training recipe, forget sets, methods and method
overrides in the one schema of ``lethe_vision.bench_config``; results (JSON, Markdown, plots) go to
``benchmarks/results/<out>``. The task is the ``lethe.tasks`` entry point of that name (each task
package registers one ``BenchTask``): the YAML is read into its config dataclass
(``lethe.config.read_config``: one line naming the key for any bad key or value), checked, and run
(or rewritten / merged, for the tasks that take those options).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from lethe.cli_support import print_report
from lethe.errors import ConfigError, LetheError
from lethe.tasks import RunOptions, get_task

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


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
        "--methods",
        default=None,
        metavar="NAMES",
        help="classification: run only these of the config's methods (comma-separated); --merge joins the parts",
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
        "--models-only",
        nargs="?",
        const="all",
        choices=("all", "originals", "oracles"),
        help="classification: train and cache the originals and/or oracles of the selected seeds and forget sets, "
        "then stop (processes side by side fill the config's cache)",
    )
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help="speed: recompute the targets of the output folder's results.json and rewrite the report",
    )
    args = parser.parse_args(argv)

    cfg = yaml.safe_load(Path(args.config).read_text())
    if not isinstance(cfg, dict):
        print(f"benchmarks/run.py: error: {args.config} is not a mapping of keys to values", file=sys.stderr)
        return 2
    name = cfg.get("task", "classification")
    try:
        task = get_task(name)
        given = {
            "forget_set": args.forget_set,
            "methods": args.methods,
            "resume": args.resume,
            "models_only": args.models_only,
        }
        for option in (o for o, value in given.items() if value and o not in task.options):
            raise ConfigError(f"--{option.replace('_', '-')} is not an option of the {name!r} task")
        if args.rewrite and task.rewrite is None:
            raise ConfigError(f"--rewrite is not an option of the {name!r} task")
        if args.merge and task.merge is None:
            raise ConfigError(f"--merge is not an option of the {name!r} task")
        try:
            config = task.read(cfg)
        except ConfigError as err:
            raise ConfigError(f"{args.config}: {err}") from None
        options = RunOptions(
            config_path=str(Path(args.config)),
            seeds=tuple(int(v) for v in args.seeds.split(",") if v.strip()) if args.seeds else None,
            forget_sets=tuple(args.forget_set) if args.forget_set else None,
            methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else None,
            resume=args.resume,
            models_only=args.models_only,
        )
        out = Path(args.out) if args.out else RESULTS / config.out
        if args.check:
            return 0
        if args.rewrite:
            task.rewrite(config, out)
        elif args.merge:
            task.merge(config, args.merge, out, options)
        else:
            task.run(config, out, options)
        if args.models_only is None:
            print_report(out / "results.md")
    except (LetheError, ValueError) as err:
        print(f"benchmarks/run.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
