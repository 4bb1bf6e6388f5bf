"""``lethe-segment``: train, unlearn, evaluate and benchmark class forgetting in semantic segmentation.

Examples (CamVid at 96x128 on a CPU)::

    lethe-segment train --dataset camvid --arch Unet --encoder resnet18 --size 96x128 --epochs 40 \\
        --out runs/cv.safetensors
    lethe-segment train --dataset camvid --arch Unet --encoder resnet18 --size 96x128 --epochs 40 \\
        --forget-as-ignore Car --out runs/cv-oracle-car.safetensors
    lethe-segment unlearn --checkpoint runs/cv.safetensors --forget Car --method delete --out runs/cv-car.safetensors
    lethe-segment evaluate --checkpoint runs/cv-car.safetensors --forget Car --oracle runs/cv-oracle-car.safetensors
    lethe-segment bench --dataset camvid --size 96x128 --epochs 40 --forget Car --forget Pedestrian --out runs/bench

Errors in the input (unknown class, bad label values, image/label size mismatch, ...) are one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import lethe
from lethe import cli_support as cli
from lethe import parse_assignments
from lethe.errors import ConfigError
from lethe.io import write_json_atomic
from lethe.pretrained import check_pretrained, list_pretrained
from lethe_segmentation.bench import BenchConfig, run_bench, write_bench
from lethe_segmentation.checkpoints import load_model, save_model
from lethe_segmentation.datasets import DATASETS, load_dataset, parse_classes
from lethe_segmentation.metrics import METRICS, distribution_gap
from lethe_segmentation.models import MODELS, ModelSpec, build_model
from lethe_segmentation.pipeline import (
    CLASS_WEIGHTS,
    PIXEL_METHODS,
    TrainRecipe,
    check_forget,
    evaluate_model,
    make_splits,
    resolve_resolution,
    train_model,
    unlearn_model,
)
from lethe_segmentation.transforms import Resolution, parse_size
from lethe_vision.recipe_args import recipe_fields, training_record

PROG = "lethe-segment"
#: a ``--model-arg`` value taken as a string when it is not JSON (``activation=sigmoid``)
PLAIN_WORD = re.compile(r"[A-Za-z_][\w.\-]*")


def _recipe(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS.names())}")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of train held out for tuning when the dataset has no val split",
    )
    g = p.add_argument_group("model (segmentation-models-pytorch)")
    g.add_argument("--arch", default="Unet", help=f"one of: {', '.join(MODELS.names())}")
    g.add_argument("--encoder", default="resnet18", help="an smp encoder name, or tu-<any timm model>")
    g.add_argument("--encoder-depth", type=int, default=None, help="encoder stages (smp default 5)")
    g.add_argument("--decoder-channels", default=None, help="Unet-family decoder widths, e.g. 128,64,32,16,8")
    g.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other smp argument, value as JSON (e.g. decoder_pyramid_channels=64; a plain word "
        "is a string: activation=sigmoid)",
    )
    g.add_argument("--encoder-weights", default="none", help="none (offline, random init) or imagenet")
    g.add_argument(
        "--pretrained",
        default=None,
        metavar="NAME",
        help=f"encoder weights from lethe's registry: {', '.join(list_pretrained())} "
        "(e.g. efficientnet-lite0 with --encoder tu-tf_efficientnet_lite0)",
    )
    g = p.add_argument_group("resolution and recipe")
    g.add_argument("--size", default=None, help="resize images to HEIGHTxWIDTH (e.g. 96x128); default native")
    g.add_argument("--crop", default=None, help="training crop HEIGHTxWIDTH (default: --size, or native)")
    g.add_argument("--epochs", type=int, default=TrainRecipe.epochs)
    g.add_argument("--batch-size", type=int, default=TrainRecipe.batch_size)
    g.add_argument("--lr", type=float, default=TrainRecipe.lr, help="peak SGD learning rate (cosine decay)")
    g.add_argument("--weight-decay", type=float, default=TrainRecipe.weight_decay)
    g.add_argument("--warmup-epochs", type=int, default=TrainRecipe.warmup_epochs, help="linear warm-up epochs")
    g.add_argument(
        "--class-weights",
        default=TrainRecipe.class_weights,
        choices=CLASS_WEIGHTS,
        help="loss weights per class: none, or median_frequency (SegNet's CamVid recipe)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser, command = cli.command_parser(PROG, __doc__)

    p = command("train", cmd_train, help="train a segmentation model (or the retrain oracle with --forget-as-ignore)")
    _recipe(p)
    p.add_argument(
        "--forget-as-ignore", default="", help="classes relabelled as ignore (the retrain oracle): names or indices"
    )
    cli.add_output_arg(p, "--out", required=True, help="new checkpoint file (.safetensors)")
    cli.add_runtime_args(p)

    p = command("unlearn", cmd_unlearn, help="make a trained checkpoint stop labelling classes")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by 'train'")
    p.add_argument("--forget", required=True, help="classes to forget: names or indices, comma separated")
    p.add_argument("--method", default="delete", help=f"one of: {', '.join(PIXEL_METHODS.names())}")
    cli.add_set_arg(p, "lr=1e-3 or --set forget_pixel_weight=5")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--retain-images", type=int, default=32, help="svd: retained images for the activations")
    cli.add_output_arg(p, "--out", required=True, help="new checkpoint file for the unlearned model")
    cli.add_output_arg(p, "--record", help="also write the run record (JSON) here")
    cli.add_runtime_args(p)

    p = command("evaluate", cmd_evaluate, help="per-class IoU, miou_retain, iou_forget, recall_forget of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--forget", default=None, help="forgotten classes (default: those recorded in the checkpoint)")
    p.add_argument("--oracle", default=None, help="retrain-oracle checkpoint: adds forget_to_gap")
    p.add_argument("--batch-size", type=int, default=16)
    cli.add_output_arg(p, "--json", help="write the metrics here (JSON)")
    cli.add_runtime_args(p)

    p = command("bench", cmd_bench, help="original, retrain oracle and methods per forget set, with overlays")
    _recipe(p)
    p.add_argument(
        "--forget",
        action="append",
        required=True,
        help="one forget set (comma-separated classes); repeat for several sets",
    )
    p.add_argument("--methods", default="delete,svd,finetune,random_label", help="comma-separated method names")
    cli.add_set_arg(p, "delete.epochs=10", per_method=True)
    p.add_argument("--unlearn-batch-size", type=int, default=8)
    p.add_argument("--retain-images", type=int, default=32, help="svd: retained images for the activations")
    p.add_argument("--overlays", type=int, default=4, help="test images in each overlay figure")
    p.add_argument("--cache", default=None, help="folder keeping original/oracle checkpoints for reuse")
    p.add_argument("--title", default=None)
    cli.add_output_arg(
        p, "--out", required=True, folder=True, help="output folder: results.json, results.md, overlays_*.png"
    )
    cli.add_runtime_args(p)
    return parser


def _positive(value: float, flag: str) -> None:
    if not value > 0:
        raise ConfigError(f"{flag} must be positive, got {value}")


def _recipe_from(args: argparse.Namespace) -> TrainRecipe:
    _positive(args.epochs, "--epochs")
    _positive(args.batch_size, "--batch-size")
    _positive(args.lr, "--lr")
    if args.weight_decay < 0:
        raise ConfigError(f"--weight-decay must not be negative, got {args.weight_decay}")
    if not 0 <= args.warmup_epochs <= args.epochs:
        raise ConfigError(f"--warmup-epochs must lie in 0..--epochs, got {args.warmup_epochs}")
    return TrainRecipe(**recipe_fields(args), warmup_epochs=args.warmup_epochs, class_weights=args.class_weights)


def _spec_from(args: argparse.Namespace, num_classes: int) -> ModelSpec:
    kwargs = {}
    for key, value in parse_assignments(args.model_arg).items():
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError as err:
            if not PLAIN_WORD.fullmatch(value):  # a word is a string; anything else must be JSON
                raise ConfigError(
                    f"--model-arg {key}={value}: the value is neither JSON nor a plain word "
                    f"({err.msg} at character {err.pos})"
                ) from None
            kwargs[key] = value
    decoder = None
    if args.decoder_channels:
        try:
            decoder = [int(v) for v in args.decoder_channels.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--decoder-channels must be integers, got {args.decoder_channels!r}") from None
    weights = None if str(args.encoder_weights).lower() in ("none", "", "null") else args.encoder_weights
    if args.pretrained is not None:
        check_pretrained(args.pretrained)
        if weights:
            raise ConfigError("--encoder-weights and --pretrained both given; give one")
    return ModelSpec(
        args.arch, args.encoder, num_classes, args.encoder_depth, decoder, kwargs, weights, args.pretrained
    )


def _resolution_from(args: argparse.Namespace) -> Resolution:
    return Resolution(parse_size(args.size), parse_size(args.crop, "--crop"))


def _splits_from_checkpoint(info: dict, args: argparse.Namespace):
    bundle = load_dataset(info["dataset"], args.data_root)
    if list(bundle.classes) != list(info.get("classes", bundle.classes)):
        raise ConfigError(f"the checkpoint's classes differ from those of dataset {info['dataset']}")
    split = info.get("split", {})
    resolution = Resolution.from_dict(info.get("resolution", {}))
    return make_splits(bundle, resolution, split.get("val_fraction", 0.1), split.get("seed", 0))


def cmd_train(args: argparse.Namespace) -> None:
    engine = cli.engine_from_args(args)
    recipe = _recipe_from(args)
    bundle = load_dataset(args.dataset, args.data_root)
    spec = _spec_from(args, bundle.num_classes)
    splits = make_splits(bundle, _resolution_from(args), args.val_fraction, args.seed)
    ignore = parse_classes(args.forget_as_ignore, bundle.classes, bundle.name)
    if ignore:
        ignore = check_forget(splits, ignore)
    splits.resolution = resolve_resolution(build_model(spec), spec, splits.resolution, splits.native)
    model, seconds, log = train_model(spec, splits, recipe, engine, ignore, desc="retrain" if ignore else "train")
    info = {
        "model": spec.to_dict(),
        "dataset": args.dataset,
        "classes": bundle.classes,
        "resolution": splits.resolution.to_dict(),
        **training_record(args, recipe, seconds, log, ignored_classes=list(ignore)),
    }
    save_model(model, args.out, info)
    print(f"trained {spec.arch} ({spec.encoder}) on {args.dataset} in {seconds:.1f}s; saved {args.out}")


def cmd_unlearn(args: argparse.Namespace) -> None:
    _positive(args.batch_size, "--batch-size")
    engine = cli.engine_from_args(args)
    overrides = parse_assignments(args.set)
    lethe.method_settings(args.method, overrides)
    model, info = load_model(args.checkpoint)
    splits = _splits_from_checkpoint(info, args)
    forget = parse_classes(args.forget, splits.bundle.classes, splits.bundle.name)
    unlearned, record = unlearn_model(
        model, args.method, splits, forget, engine, overrides, args.batch_size, args.retain_images
    )
    cli.save_unlearned(unlearned, record, info, args, save_model, forget_classes=record.forget_classes)
    names = ", ".join(splits.bundle.classes[c] for c in record.forget_classes)
    print(f"{args.method} forgot {names} in {record.seconds:.1f}s; saved {args.out}")


def _recorded_forget(info: dict) -> list[int]:
    unlearned = info.get("unlearned") or {}
    return list(unlearned.get("forget_classes") or info.get("ignored_classes") or [])


def _load_oracle(path: str, classes: list[str]):
    """The retrain oracle of ``--oracle``: a checkpoint of the evaluated dataset's classes."""
    oracle, info = load_model(path)
    theirs = list(info.get("classes") or [])
    if theirs != list(classes):
        raise ConfigError(
            f"--oracle {path} has other classes ({_names(theirs)}) than the checkpoint's dataset "
            f"({_names(classes)}); give the retrain oracle of this dataset"
        )
    return oracle


def _names(classes: list[str], most: int = 8) -> str:
    return ", ".join(classes[:most]) + (f", ... ({len(classes)} classes)" if len(classes) > most else "")


def cmd_evaluate(args: argparse.Namespace) -> None:
    _positive(args.batch_size, "--batch-size")
    engine = cli.engine_from_args(args)
    model, info = load_model(args.checkpoint)
    splits = _splits_from_checkpoint(info, args)
    classes = splits.bundle.classes
    oracle = _load_oracle(args.oracle, classes) if args.oracle else None
    if args.forget is not None:
        forget = parse_classes(args.forget, classes, splits.bundle.name)
    else:
        forget = tuple(_recorded_forget(info))
    if forget:
        forget = check_forget(splits, forget)
    metrics = evaluate_model(model, splits, forget, engine, batch_size=args.batch_size)
    if oracle is not None:
        oracle_metrics = evaluate_model(oracle, splits, forget, engine, batch_size=args.batch_size)
        metrics["forget_to_gap"] = distribution_gap(metrics["forget_to"], oracle_metrics["forget_to"])
        metrics["oracle"] = {k: v for k, v in oracle_metrics.items() if k != "confusion"}
    output = {"checkpoint": str(args.checkpoint), "forget": list(forget), "classes": classes, "metrics": metrics}
    if args.json:
        write_json_atomic(args.json, output)
    for key in (*METRICS, "recall_forget_train", "forget_to_gap"):
        if key in metrics:
            print(f"{key:>22}: {metrics[key]:.2f}")
    print("iou: " + ", ".join(f"{c} {v:.1f}" for c, v in zip(classes, metrics["iou"], strict=True)))
    if forget:
        went = zip(classes, metrics["forget_to"], strict=True)
        print("forgotten pixels predicted as: " + ", ".join(f"{c} {v:.1f}%" for c, v in went if v >= 0.05))


def parse_method_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """``["delete.lr=1e-2"]`` -> ``{"delete": {"lr": "1e-2"}}``."""
    result: dict[str, dict[str, str]] = {}
    for key, value in parse_assignments(items).items():
        method, sep, name = key.partition(".")
        if not sep or not name:
            raise ConfigError(f"bench --set needs METHOD.KEY=VALUE, got {key}={value}")
        result.setdefault(method, {})[name] = value
    return result


def cmd_bench(args: argparse.Namespace) -> None:
    engine = cli.engine_from_args(args)
    recipe = _recipe_from(args)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    overrides = parse_method_overrides(args.set)
    bundle = load_dataset(args.dataset, args.data_root)
    forget_sets = [parse_classes(f, bundle.classes, bundle.name) for f in args.forget]
    config = BenchConfig(
        spec=_spec_from(args, bundle.num_classes),
        forget_sets=forget_sets,
        methods=methods,
        resolution=_resolution_from(args),
        recipe=recipe,
        val_fraction=args.val_fraction,
        seed=args.seed,
        unlearn_batch_size=args.unlearn_batch_size,
        retain_images=args.retain_images,
        method_overrides=overrides,
        overlays=args.overlays,
        cache=args.cache,
    )
    result = run_bench(bundle, args.dataset, config, engine)
    title = args.title or f"Class forgetting in segmentation: {bundle.name}, {config.spec.arch} {config.spec.encoder}"
    cli.write_results(args.out, lambda out: write_bench(result, out, title))


def main(argv: list[str] | None = None) -> int:
    return cli.run_command(PROG, build_parser(), argv=argv)


if __name__ == "__main__":
    sys.exit(main())
