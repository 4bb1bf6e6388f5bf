"""``lethe-classify``: train, unlearn, evaluate and benchmark class forgetting in image classifiers.

Examples::

    lethe-classify train --dataset fashion-mnist --arch small-cnn --epochs 3 --out runs/fm.safetensors
    lethe-classify unlearn --checkpoint runs/fm.safetensors --forget 3 --method delete --out runs/fm-f3.safetensors
    lethe-classify evaluate --checkpoint runs/fm-f3.safetensors --forget 3 --json runs/fm-f3.json
    lethe-classify bench --dataset fashion-mnist --arch small-cnn --epochs 3 --forget 3 --out runs/bench
    lethe-classify train --dataset imagefolder:data/flowers --arch timm:tf_efficientnet_lite0 \
        --pretrained efficientnet-lite0 --image-size 224 --mean 0.5 --std 0.5 --lr 0.01 --out runs/flowers.safetensors
    lethe-classify import --weights my.pth --arch timm:resnet18 --classes cat,dog,fox --image-size 64 \
        --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --dataset imagefolder:data/pets --out runs/mine.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lethe
from lethe import cli_support as cli
from lethe import parse_assignments
from lethe.errors import ConfigError
from lethe.io import write_json_atomic
from lethe.metrics import avg_gap
from lethe_classification.bench import BenchConfig, run_bench, write_bench
from lethe_vision.checkpoints import import_model, load_model, save_model
from lethe_vision.data import align_classes, parse_classes
from lethe_vision.datasets import DATASETS
from lethe_vision.models import MODELS, ModelSpec
from lethe_vision.pipeline import (
    EvalOptions,
    check_input,
    evaluate_model,
    make_splits,
    model_spec,
    train_model,
    unlearn_model,
)
from lethe_vision.preprocess import (
    Preprocess,
    add_preprocess_args,
    load_preprocessed,
    preprocess_from_args,
)
from lethe_vision.recipe_args import (
    add_pretrained_arg,
    add_recipe_args,
    parse_method_overrides,
    pretrained_from_args,
    recipe_from_args,
    training_record,
)

PROG = "lethe-classify"


def _data(p: argparse.ArgumentParser, with_dataset: bool = True) -> None:
    if with_dataset:
        p.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS.names())}")
    p.add_argument(
        "--val-fraction", type=float, default=0.05, help="share of training data held out as validation (tuning only)"
    )


def _evaluation(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument("--mia-max-samples", type=int, default=None, help="cap per side for the MIA attacker")
    g.add_argument("--no-probe", action="store_true", help="skip probe_forget (linear probe on features)")
    g.add_argument(
        "--relearn-per-class",
        type=int,
        default=EvalOptions.relearn_per_class,
        help="forget samples per class for relearn_steps (0 skips it)",
    )


def _eval_options_from(args: argparse.Namespace) -> EvalOptions:
    if args.relearn_per_class < 0:
        raise ConfigError(f"--relearn-per-class must not be negative, got {args.relearn_per_class}")
    return EvalOptions(
        probe=not args.no_probe, relearn_per_class=args.relearn_per_class, mia_max_samples=args.mia_max_samples
    )


def build_parser() -> argparse.ArgumentParser:
    parser, command = cli.command_parser(PROG, __doc__)

    p = command("train", cmd_train, help="train a classifier (the original model, or an oracle with --exclude)")
    _data(p)
    add_recipe_args(p)
    add_pretrained_arg(p)
    add_preprocess_args(p)
    p.add_argument("--exclude", default="", help="classes left out of training (e.g. the retrain oracle: --exclude 3)")
    cli.add_output_arg(p, "--out", required=True, help="new checkpoint file (.safetensors)")
    cli.add_runtime_args(p)

    p = command("unlearn", cmd_unlearn, help="make a trained checkpoint forget classes")
    cli.add_unlearn_args(p, "classes", batch_size=128)
    _checkpoint_data(p)
    cli.add_runtime_args(p)

    p = command("evaluate", cmd_evaluate, help="forget/retain accuracies and MIA of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--forget", required=True, help="the forgotten classes to evaluate")
    p.add_argument("--oracle", default=None, help="retrain-oracle checkpoint: adds avg_gap")
    cli.add_output_arg(p, "--json", help="write the metrics here (JSON)")
    _checkpoint_data(p)
    _evaluation(p)
    cli.add_runtime_args(p)

    p = command("bench", cmd_bench, help="original, retrain oracle and methods, evaluated together")
    _data(p)
    add_recipe_args(p)
    add_preprocess_args(p)
    p.add_argument("--forget", required=True, help="classes to forget")
    p.add_argument("--methods", default="delete,svd", help="comma-separated method names")
    cli.add_set_arg(p, "delete.lr=1e-2", per_method=True)
    _evaluation(p)
    cli.add_output_arg(
        p, "--out", required=True, folder=True, help="output folder: results.json, results.md, per_class.png"
    )
    cli.add_runtime_args(p)

    p = command(
        "import", cmd_import, help="make a checkpoint of your own model (a state dict for a named architecture)"
    )
    p.add_argument("--weights", required=True, help="the state dict: .pth, .pt or .safetensors")
    p.add_argument("--arch", required=True, help=f"its architecture, one of: {', '.join(MODELS.names())}")
    p.add_argument("--width", type=int, default=None, help="base width of a lethe architecture")
    p.add_argument(
        "--classes", required=True, help="class names in the order of its outputs: a,b,c or a file with one per line"
    )
    p.add_argument("--channels", type=int, default=3, choices=(1, 3), help="input channels (default 3)")
    g = p.add_argument_group("input preprocessing (required: what the model was trained with)")
    g.add_argument("--image-size", type=int, required=True, help="input side in pixels (images are resized to it)")
    g.add_argument("--mean", required=True, help="per-channel mean, e.g. 0.485,0.456,0.406 (or one value)")
    g.add_argument("--std", required=True, help="per-channel std, e.g. 0.229,0.224,0.225 (or one value)")
    p.add_argument(
        "--dataset", default=None, help="dataset that unlearn/evaluate use by default (else they need --dataset)"
    )
    cli.add_output_arg(p, "--out", required=True, help="new checkpoint file (.safetensors)")
    return parser


def _checkpoint_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help="dataset to use (default: the checkpoint's)")
    add_preprocess_args(p, default_help="the checkpoint's")


def _splits_from_checkpoint(info: dict, args: argparse.Namespace, forget_text: str, model):
    """The checkpoint's dataset (or ``--dataset``) with its recorded preprocessing (or the options'),
    classes in the model's order, and the checkpoint's split settings."""
    dataset = args.dataset or info.get("dataset")
    if not dataset:
        raise ConfigError(f"{args.checkpoint} names no dataset; pass --dataset")
    pre = preprocess_from_args(args).over(Preprocess.from_dict(info.get("preprocess"), str(args.checkpoint)))
    bundle = load_preprocessed(dataset, args.data_root, pre)
    if info.get("classes"):
        bundle = align_classes(bundle, info["classes"])
    spec = ModelSpec(**info["model"])
    if (bundle.channels, bundle.image_size) != (spec.in_channels, spec.image_size):
        check_input(model, spec, bundle.channels, bundle.image_size)
    split = info.get("split", {})
    forget = parse_classes(forget_text, bundle.classes)
    if not forget:
        raise ConfigError("--forget names no class; name at least one class to forget")
    splits = make_splits(bundle, forget, split.get("val_fraction", 0.05), split.get("seed", 0))
    return splits, {"dataset": dataset, "preprocess": Preprocess.of(bundle).to_dict()}


def cmd_train(args: argparse.Namespace) -> None:
    engine = cli.engine_from_args(args)
    recipe = recipe_from_args(args)
    pretrained = pretrained_from_args(args)
    bundle = load_preprocessed(args.dataset, args.data_root, preprocess_from_args(args))
    exclude = parse_classes(args.exclude, bundle.classes)
    splits = make_splits(bundle, exclude, args.val_fraction, args.seed)
    spec = model_spec(args.arch, bundle, args.width, pretrained)
    data = splits.retain_train if exclude else splits.train
    model, seconds, log = train_model(spec, data, bundle, recipe, engine)
    info = {
        "model": spec.to_dict(),
        "dataset": args.dataset,
        "classes": bundle.classes,
        "preprocess": Preprocess.of(bundle).to_dict(),
        **training_record(args, recipe, seconds, log, excluded_classes=list(exclude)),
    }
    save_model(model, args.out, info)
    print(f"trained {args.arch} on {args.dataset} in {seconds:.1f}s; saved {args.out}")


def cmd_unlearn(args: argparse.Namespace) -> None:
    engine = cli.engine_from_args(args)
    overrides = parse_assignments(args.set)
    lethe.method_settings(args.method, overrides)
    model, info = load_model(args.checkpoint)
    splits, used = _splits_from_checkpoint(info, args, args.forget, model)
    unlearned, record = unlearn_model(model, args.method, splits, engine, overrides, args.batch_size)
    cli.save_unlearned(unlearned, record, {**info, **used}, args, save_model, forget_classes=record.forget_classes)
    print(f"{args.method} forgot classes {record.forget_classes} in {record.seconds:.1f}s; saved {args.out}")


def _load_oracle(path: str, splits):
    """The retrain oracle of ``--oracle``: a checkpoint of the same classes, taking the inputs of
    the evaluated data (an oracle of another dataset is an error, not a crash mid-evaluation)."""
    oracle, oracle_info = load_model(path)
    classes = list(splits.bundle.classes)
    spec = ModelSpec(**oracle_info["model"])
    recorded = oracle_info.get("classes")
    if spec.num_classes != len(classes) or (recorded is not None and list(recorded) != classes):
        raise ConfigError(
            f"--oracle {path} has other classes ({oracle_info.get('dataset')}, {spec.num_classes} classes) than "
            f"the evaluated data ({splits.bundle.name}, {len(classes)} classes, in the checkpoint's order); "
            "give the retrain oracle of this dataset"
        )
    channels, size = splits.bundle.channels, splits.bundle.image_size
    if (spec.in_channels, spec.image_size) != (channels, size):
        try:
            check_input(oracle, spec, channels, size)
        except ConfigError:
            raise ConfigError(
                f"--oracle {path} takes {spec.in_channels}x{spec.image_size}x{spec.image_size} inputs, the "
                f"evaluated data is {channels}x{size}x{size}; give the retrain oracle of this dataset"
            ) from None
    return oracle


def cmd_evaluate(args: argparse.Namespace) -> None:
    engine = cli.engine_from_args(args)
    model, info = load_model(args.checkpoint)
    splits, _ = _splits_from_checkpoint(info, args, args.forget, model)
    options = _eval_options_from(args)
    oracle = _load_oracle(args.oracle, splits) if args.oracle else None
    result = evaluate_model(model, splits, engine, options)
    metrics = dict(result.metrics)
    if oracle is not None:
        oracle_metrics = evaluate_model(oracle, splits, engine, options).metrics
        metrics["avg_gap"] = avg_gap(metrics, oracle_metrics)
        metrics["oracle"] = oracle_metrics
    output = {
        "checkpoint": str(args.checkpoint),
        "forget": list(splits.forget_classes),
        "metrics": metrics,
        "per_class_test": result.per_class_test,
    }
    if args.json:
        write_json_atomic(args.json, output)
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            print(f"{key:>14}: {value:.2f}" if isinstance(value, float) else f"{key:>14}: {value}")


def cmd_bench(args: argparse.Namespace) -> None:
    engine = cli.engine_from_args(args)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    overrides = parse_method_overrides(args.set)
    recipe = recipe_from_args(args)
    bundle = load_preprocessed(args.dataset, args.data_root, preprocess_from_args(args))
    config = BenchConfig(
        arch=args.arch,
        forget=parse_classes(args.forget, bundle.classes),
        methods=methods,
        width=args.width,
        recipe=recipe,
        val_fraction=args.val_fraction,
        seed=args.seed,
        method_overrides=overrides,
        evaluation=_eval_options_from(args),
    )
    result = run_bench(bundle, config, engine)
    title = f"Class forgetting on {bundle.name} with {args.arch}"
    cli.write_results(args.out, lambda out: write_bench(result, out, title))


def _class_names(text: str) -> list[str]:
    """``a,b,c``, or the lines of a file of that name."""
    path = Path(text)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [name.strip() for name in text.split(",") if name.strip()]


def cmd_import(args: argparse.Namespace) -> None:
    classes = _class_names(args.classes)
    pre = preprocess_from_args(args)
    spec = ModelSpec(args.arch, len(classes), args.channels, pre.image_size, args.width)
    import_model(args.weights, spec, classes, pre.mean, pre.std, args.out, dataset=args.dataset)
    print(f"imported {args.arch} with {len(classes)} classes from {args.weights}; saved {args.out}")


def main(argv: list[str] | None = None) -> int:
    return cli.run_command(PROG, build_parser(), argv=argv)


if __name__ == "__main__":
    sys.exit(main())
