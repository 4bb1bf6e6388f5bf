"""Choose an unlearning method's settings for a face benchmark on its validation split, never on test data.

``python benchmarks/tune_face_delete.py CONFIG --head cosine --grid lr=1e-4,3e-4,1e-3 --out DIR``
trains the config's original model for one identity head (as ``benchmarks/run.py`` does), runs the
method (``--method``, default ``delete``, with the config's overrides for that head under the
grid's) for every setting of the grid, and scores each on the validation images held out of
training (``val_fraction`` of the config): accuracy on the forgotten identities and on the kept
ones. The chosen setting has the highest kept-identity validation accuracy among those whose
forgotten-identity validation accuracy is at most ``--max-forget`` (the issue's 5 %). Test
accuracies are written beside, for the record only. Writes ``results.json`` and ``results.md``
under ``--out``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from lethe_vision.tuning import TuningReport, combinations, parse_grid, tuning_parser

REPORT = TuningReport(
    title="Choosing {method}'s settings for the {head} head on validation images",
    intro="Validation: the training images held out of training (the config's val_fraction); forget / "
    "retain are identification accuracies on the forgotten and the kept identities.",
    columns=("forget", "retain"),
    reference="original",
    limit="forget",
    objective="retain",
    limit_header="max_forget",
)


def mean_scores(rows: list[dict]) -> dict:
    """Mean seconds and validation / test scores over the rows of one setting (one per seed)."""
    return {
        "seconds": sum(r["seconds"] for r in rows) / len(rows),
        **{
            part: {c: sum(r[part][c] for r in rows) / len(rows) for c in REPORT.columns}
            for part in ("validation", "test")
        },
    }


def main(argv: list[str] | None = None) -> int:
    from lethe.cli_support import run_command

    p = tuning_parser(
        "tune_face_delete.py",
        __doc__,
        "--max-forget",
        5.0,
        "largest validation accuracy (%%) on the forgotten identities to accept",
    )
    p.add_argument("config", help="a face benchmark YAML (benchmarks/configs/face-*.yaml)")
    p.add_argument("--head", required=True, help="the identity head to tune for (linear, cosine)")
    p.add_argument(
        "--val-seeds",
        default=None,
        metavar="S1,S2",
        help="repeated hold-out: for each seed, hold out other validation images (the test "
        "split stays the config's data.seed's), train that original and score the grid; means are "
        "compared (default: the config's first seed only)",
    )

    def run(args: argparse.Namespace) -> None:
        import yaml

        import lethe
        from lethe.engine import environment
        from lethe.errors import ConfigError
        from lethe.metrics import forget_mask, split_accuracies
        from lethe_face.bench import config_from_mapping, head_method_overrides, load_config_data, protocol_run
        from lethe_face.pipeline import method_overrides
        from lethe_vision.pipeline import outputs_on, unlearn_model

        try:
            cfg = yaml.safe_load(Path(args.config).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config {args.config}: {str(err).splitlines()[0]}") from None
        try:
            config = config_from_mapping(cfg)
        except ConfigError as err:
            raise ConfigError(f"{args.config}: {err}") from None
        if args.head not in config.heads:
            raise ConfigError(f"--head {args.head!r} is not one of the config's heads {list(config.heads)}")
        combos = combinations(parse_grid(args.grid))
        base = head_method_overrides(config, args.head, args.method)
        settings = [method_overrides(args.method, {**base, **combo}) for combo in combos]
        for overrides in settings:
            lethe.method_settings(args.method, overrides)  # bad names fail before anything trains
        data, engine = load_config_data(config)
        val_seeds = [int(v) for v in args.val_seeds.split(",")] if args.val_seeds else [config.seeds[0]]
        originals, per_seed, val_counts = [], [[] for _ in combos], []
        for val_seed in val_seeds:
            # the faces' train/test split stays the config's (data.seed); the seed draws the validation images
            # held out of train, and the original's initialisation and order
            seeded = replace(engine, seed=val_seed)
            run = protocol_run(data, config, args.head, seeded)
            splits = run.splits

            def scores(model, splits=splits, seeded=seeded) -> dict:
                acc = split_accuracies(
                    outputs_on(model, splits.validation, splits.bundle, seeded),
                    outputs_on(model, splits.test, splits.bundle, seeded),
                    splits.forget_classes,
                )
                return {
                    part: {c: acc[f"{c}_{name}"] for c in REPORT.columns}
                    for part, name in (("validation", "train"), ("test", "test"))
                }

            originals.append({"seconds": run.original_seconds, **scores(run.original)})
            for i, (combo, overrides) in enumerate(zip(combos, settings, strict=True)):
                model, record = unlearn_model(run.original, args.method, splits, seeded, overrides, config.batch_size)
                per_seed[i].append({"settings": record.settings, "seconds": record.seconds, **scores(model)})
                print(f"seed {val_seed} {combo}: validation {per_seed[i][-1]['validation']}", flush=True)
            held = int(forget_mask(splits.validation.labels, splits.forget_classes).sum())
            val_counts.append(f"{len(splits.validation)} ({held} of the forgotten identities)")
        original = {"overrides": {}, **mean_scores(originals)}
        runs = [
            {"overrides": combo, "settings": seeds[0]["settings"], **mean_scores(seeds), "per_seed": seeds}
            for combo, seeds in zip(combos, per_seed, strict=True)
        ]
        header = {
            "config": str(args.config),
            "head": args.head,
            "method": args.method,
            "forget": [splits.bundle.classes[c] for c in splits.forget_classes],
            "base settings": method_overrides(args.method, base),
            "validation images": val_counts[0] if len(val_seeds) == 1 else f"per seed: {', '.join(val_counts)}",
            "max_forget": args.max_forget,
            "seed": config.data.seed,
            **environment(engine),
        }
        if len(val_seeds) > 1:
            header["validation seeds (originals trained per seed; means shown)"] = val_seeds
        REPORT.write(args.out, header, original, runs)

    return run_command("tune_face_delete.py", p, {"run": run}, argv)
