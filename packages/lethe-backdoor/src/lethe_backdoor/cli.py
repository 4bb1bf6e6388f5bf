"""``lethe-backdoor``: poison and train a backdoored classifier, remove the backdoor by unlearning,
evaluate and benchmark.

Examples::

    lethe-backdoor train --dataset cifar10 --arch cifar-resnet18 --width 16 --attack badnets --target 0 \\
        --rate 0.1 --epochs 15 --out runs/badnets.safetensors
    lethe-backdoor unlearn --checkpoint runs/badnets.safetensors --method delete --budget 0.01 \\
        --budget-source stamp --out runs/badnets-delete.safetensors
    lethe-backdoor evaluate --checkpoint runs/badnets-delete.safetensors --json runs/badnets-delete.json
    lethe-backdoor bench --dataset cifar10 --arch cifar-resnet18 --width 16 --attack blended --epochs 15 \\
        --methods delete,svd,finetune,fine_pruning,random_label,gradient_ascent \\
        --budgets 0.01,0.005,0.002,0.001 --out runs/bench-blended
"""

from __future__ import annotations

import argparse
import sys

from lethe import cli_support as cli
from lethe import parse_assignments
from lethe.errors import ConfigError
from lethe.io import write_json_atomic
from lethe_backdoor.attacks import build_attack, list_attacks
from lethe_backdoor.bench import (
    DEFAULT_BUDGETS,
    DEFAULT_METHODS,
    BackdoorBenchConfig,
    run_backdoor_bench,
    write_backdoor_bench,
)
from lethe_backdoor.budget import SOURCES, check_source, make_budget, parse_budget, parse_budgets
from lethe_backdoor.checkpoints import load_backdoored, save_backdoored
from lethe_backdoor.defences import defence_settings, list_defences, run_defence
from lethe_backdoor.metrics import evaluate_backdoor
from lethe_backdoor.poison import make_backdoor_splits
from lethe_vision.checkpoints import save_model
from lethe_vision.datasets import DATASETS, load_dataset
from lethe_vision.pipeline import model_spec, train_model
from lethe_vision.recipe_args import (
    add_pretrained_arg,
    add_recipe_args,
    parse_method_overrides,
    pretrained_from_args,
    recipe_from_args,
    training_record,
)

PROG = "lethe-backdoor"


def _poisoning(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS.names())}")
    p.add_argument("--attack", default="badnets", help=f"one of: {', '.join(list_attacks())}")
    p.add_argument("--target", type=int, default=None, help="the attack's target label (default 0)")
    p.add_argument("--rate", type=float, default=None, help="poisoning rate in (0, 1] (default 0.1)")
    p.add_argument(
        "--attack-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an attack setting, e.g. size=4, position=random, pattern=white, alpha=0.1",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.05,
        help="share of training data held out of training: the defender's clean pool",
    )


def build_parser() -> argparse.ArgumentParser:
    parser, command = cli.command_parser(PROG, __doc__)

    p = command("train", cmd_train, aliases=["poison"], help="poison a dataset and train a backdoored classifier")
    _poisoning(p)
    add_recipe_args(p)
    add_pretrained_arg(p)
    cli.add_output_arg(p, "--out", required=True, help="new checkpoint file (.safetensors)")
    cli.add_runtime_args(p, "seed for poisoning, splits, initialisation and order")

    p = command("unlearn", cmd_unlearn, help="remove the backdoor of a checkpoint with the defender's budget")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by 'train'")
    p.add_argument("--method", default="delete", help=f"one of: {', '.join(list_defences())}")
    p.add_argument(
        "--budget",
        default="0.01",
        help="stamped samples the defender has: a share of the training set (0.01) or a count",
    )
    p.add_argument(
        "--budget-source",
        default="stamp",
        choices=SOURCES,
        help="stamp: clean images stamped with the known trigger; poisoned: identified poisoned training samples",
    )
    cli.add_set_arg(p, "lr=1e-3")
    p.add_argument("--batch-size", type=int, default=128)
    cli.add_output_arg(p, "--out", required=True, help="new checkpoint file for the defended model")
    cli.add_output_arg(p, "--record", help="also write the run record (JSON) here")
    cli.add_runtime_args(p, "seed for poisoning, splits, initialisation and order")

    p = command("evaluate", cmd_evaluate, help="clean_acc, asr and robust_acc of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    cli.add_output_arg(p, "--json", help="write the metrics here (JSON)")
    cli.add_runtime_args(p, "seed for poisoning, splits, initialisation and order")

    p = command("bench", cmd_bench, help="backdoored model, every defence and a budget sweep, evaluated together")
    _poisoning(p)
    add_recipe_args(p)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated defences")
    p.add_argument("--budget", default="0.01", help="the defender's budget of the main table")
    p.add_argument("--budgets", default=",".join(DEFAULT_BUDGETS), help="budgets swept (comma separated)")
    p.add_argument("--sweep-methods", default="delete", help="defences run at every budget (comma separated)")
    p.add_argument("--budget-source", default="stamp", choices=SOURCES)
    cli.add_set_arg(p, "delete.epochs=5", per_method=True)
    p.add_argument("--unlearn-batch-size", type=int, default=128)
    p.add_argument("--examples", type=int, default=4, help="test images in the example figure")
    cli.add_output_arg(p, "--out", required=True, folder=True, help="output folder: results.json, results.md, two PNGs")
    cli.add_runtime_args(p, "seed for poisoning, splits, initialisation and order")
    return parser


def _attack_overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = dict(parse_assignments(args.attack_set))
    for key in ("target", "rate"):
        value = getattr(args, key)
        if value is not None:
            if key in overrides:
                raise ConfigError(f"--{key} and --attack-set {key}=... both given; give one")
            overrides[key] = value
    return overrides


def _check_batch(value: int, flag: str) -> None:
    if value < 1:
        raise ConfigError(f"{flag} must be at least 1, got {value}")


def cmd_train(args: argparse.Namespace) -> None:
    engine = cli.engine_from_args(args)
    recipe = recipe_from_args(args)
    pretrained = pretrained_from_args(args)
    attack = build_attack(args.attack, _attack_overrides(args))
    bundle = load_dataset(args.dataset, args.data_root)
    splits = make_backdoor_splits(bundle, attack, args.val_fraction, args.seed)
    spec = model_spec(args.arch, bundle, args.width, pretrained)
    model, seconds, log = train_model(spec, splits.train, bundle, recipe, engine, "backdoored")
    info = {
        "model": spec.to_dict(),
        "dataset": args.dataset,
        "classes": bundle.classes,
        **training_record(args, recipe, seconds, log, excluded_classes=[]),
    }
    save_backdoored(model, args.out, info, splits)
    print(
        f"trained {args.arch} on {args.dataset} poisoned by {attack.describe()} "
        f"({splits.num_poisoned} of {len(splits.train)} samples) in {seconds:.1f}s; saved {args.out}"
    )


def cmd_unlearn(args: argparse.Namespace) -> None:
    _check_batch(args.batch_size, "--batch-size")
    engine = cli.engine_from_args(args)
    overrides = parse_assignments(args.set)
    defence_settings(args.method, overrides)
    spec = parse_budget(args.budget)
    check_source(args.budget_source)
    model, info, splits = load_backdoored(args.checkpoint, args.data_root)
    budget = make_budget(splits, spec, args.budget_source)
    defended, record = run_defence(model, args.method, budget, splits.bundle, engine, overrides, args.batch_size)
    cli.save_unlearned(
        defended, record, info, args, save_model, forget_classes=record.forget_classes, budget=budget.describe()
    )
    print(
        f"{args.method} on {budget.size} stamped / {len(budget.clean)} clean images ({args.budget_source}) "
        f"in {record.seconds:.1f}s; saved {args.out}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    engine = cli.engine_from_args(args)
    model, info, splits = load_backdoored(args.checkpoint, args.data_root)
    metrics = evaluate_backdoor(model, splits, engine)
    output = {
        "checkpoint": str(args.checkpoint),
        "attack": splits.attack.to_dict(),
        "target": splits.target,
        "metrics": metrics,
        "unlearned": info.get("unlearned"),
    }
    if args.json:
        write_json_atomic(args.json, output)
    for key, value in metrics.items():
        print(f"{key:>10}: {value:.2f}")


def cmd_bench(args: argparse.Namespace) -> None:
    _check_batch(args.unlearn_batch_size, "--unlearn-batch-size")
    engine = cli.engine_from_args(args)
    config = BackdoorBenchConfig(
        arch=args.arch,
        attack=args.attack,
        attack_overrides=_attack_overrides(args),
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        budget=parse_budget(args.budget).text,
        budgets=tuple(b.text for b in parse_budgets(args.budgets)),
        sweep_methods=tuple(m.strip() for m in args.sweep_methods.split(",") if m.strip()),
        budget_source=args.budget_source,
        width=args.width,
        recipe=recipe_from_args(args),
        val_fraction=args.val_fraction,
        seed=args.seed,
        batch_size=args.unlearn_batch_size,
        method_overrides=parse_method_overrides(args.set),
        examples=args.examples,
    )
    build_attack(config.attack, config.attack_overrides)  # bad settings fail before the dataset loads
    bundle = load_dataset(args.dataset, args.data_root)
    output = run_backdoor_bench(bundle, config, engine)
    title = f"Backdoor removal on {bundle.name} with {args.arch}, {config.attack} attack"
    cli.write_results(args.out, lambda out: write_backdoor_bench(output, out, title))


def main(argv: list[str] | None = None) -> int:
    return cli.run_command(PROG, build_parser(), argv=argv)


if __name__ == "__main__":
    sys.exit(main())
