"""``lethe-face``: train, unlearn, evaluate and benchmark identity forgetting in face recognition.

Examples::

    lethe-face train --dataset att --embedder light-resnet --head cosine --epochs 30 --out runs/att.safetensors
    lethe-face unlearn --checkpoint runs/att.safetensors --forget s1 --method delete --out runs/att-s1.safetensors
    lethe-face evaluate --checkpoint runs/att-s1.safetensors --forget s1 --json runs/att-s1.json
    lethe-face forget --checkpoint runs/att.safetensors --photos photos/s1 --out runs/att-s1.safetensors --grid s1.png
    lethe-face bench benchmarks/configs/face-att-cpu.yaml --out runs/face-att
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
from lethe.pretrained import list_pretrained
from lethe_face.align import ALIGNMENTS
from lethe_face.checkpoints import load_face_model, save_face_model
from lethe_face.datasets import FACE_DATASETS, FaceData, FaceOptions, load_faces
from lethe_face.metrics import VerifyOptions, official_pairs_accuracy, read_pairs
from lethe_face.models import EMBEDDERS, HEADS, FaceModelSpec, build_face_model
from lethe_face.pipeline import evaluate_face, imprint_head, method_overrides, train_face
from lethe_vision.pipeline import EvalOptions, TrainRecipe, make_splits, unlearn_model
from lethe_vision.recipe_args import recipe_fields, training_record

PROG = "lethe-face"


def _data(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=True, help=f"one of: {', '.join(FACE_DATASETS.names())}")
    g.add_argument("--min-images", type=int, default=None, help="drop identities with fewer images (lfw: 20)")
    g.add_argument("--size", type=int, default=None, help="image side in pixels (lfw 112, att 96)")
    g.add_argument("--test-fraction", type=float, default=FaceOptions.test_fraction, help="per-identity test share")
    g.add_argument(
        "--align",
        nargs="?",
        const="mtcnn",
        default=None,
        choices=ALIGNMENTS,
        help="cut faces with MTCNN (mtcnn, the default), or as dlib's 150 px chips from MTCNN's five points "
        "(dlib-chip, for --embedder dlib-resnet); cached under the data root",
    )
    g.add_argument("--val-fraction", type=float, default=0.1, help="training share held out for tuning (SVD)")


def _model(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--embedder", default="light-resnet", help=f"one of: {', '.join(EMBEDDERS.names())}")
    g.add_argument("--head", default="cosine", help=f"one of: {', '.join(HEADS.names())}")
    g.add_argument("--width", type=int, default=None, help="light-resnet base width (default 16)")
    g.add_argument("--embedding-dim", type=int, default=None, help="embedding size (128; inception-resnet-v1: 512)")
    g.add_argument("--scale", type=float, default=FaceModelSpec.scale, help="cosine head scale s")
    g.add_argument("--margin", type=float, default=FaceModelSpec.margin, help="cosine head additive angular margin m")
    g.add_argument(
        "--pretrained",
        default=None,
        metavar="NAME",
        help="inception-resnet-v1: vggface2 (weights found locally, never downloaded); timm:<name> "
        f"embedders: one of {', '.join(list_pretrained())}",
    )
    g.add_argument("--weights", default=None, help="local VGGFace2 state dict (default: facenet-pytorch's cache)")
    g.add_argument(
        "--frozen-blocks",
        type=int,
        default=0,
        help="dlib-resnet: run the stem and this many of its 14 residual blocks without gradients",
    )
    g.add_argument(
        "--imprint",
        action="store_true",
        help="start the identity head from the class-mean embeddings (a fresh head on a pretrained embedder)",
    )
    g.add_argument("--epochs", type=int, default=20)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate (cosine decay)")
    g.add_argument("--weight-decay", type=float, default=5e-4)


def _evaluation(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument("--no-probe", action="store_true", help="skip probe_forget (linear probe on embeddings)")
    g.add_argument("--relearn-per-class", type=int, default=0, help="forget images for relearn_steps (0 skips)")
    g.add_argument(
        "--pairs-per-identity",
        type=int,
        default=VerifyOptions.pairs_per_identity,
        help="genuine verification pairs per identity (and as many impostor pairs)",
    )
    g.add_argument("--pairs", default=None, help="official LFW pairs.txt: adds its 10-fold accuracy")


def build_parser() -> argparse.ArgumentParser:
    parser, command = cli.command_parser(PROG, __doc__)

    p = command("train", cmd_train, help="train embedder + identity head (the original, or an oracle with --exclude)")
    _data(p)
    _model(p)
    p.add_argument("--exclude", default="", help="identities left out of training (the retrain oracle)")
    cli.add_output_arg(p, "--out", required=True, help="new checkpoint file (.safetensors)")
    cli.add_runtime_args(p)

    p = command("unlearn", cmd_unlearn, help="make a trained checkpoint forget identities")
    cli.add_unlearn_args(p, "identities", batch_size=64)
    cli.add_runtime_args(p)

    p = command(
        "forget", cmd_forget, help="forget one person given a folder of their photos (DELETE needs nothing else)"
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint written by 'train'")
    p.add_argument("--photos", required=True, help="folder of the person's photos (the forget set)")
    p.add_argument("--person", default=None, help="their identity in the checkpoint (default: the folder's name)")
    p.add_argument("--method", default="delete", help=f"one of: {', '.join(lethe.list_methods())}")
    cli.add_set_arg(p, "epochs=10")
    p.add_argument("--batch-size", type=int, default=64)
    cli.add_output_arg(p, "--out", required=True, help="new checkpoint file for the unlearned model")
    cli.add_output_arg(p, "--record", help="also write the run record (JSON) here")
    cli.add_output_arg(
        p, "--grid", help="also draw the photos and kept people's faces, predicted before and after (PNG)"
    )
    cli.add_runtime_args(p)

    p = command("evaluate", cmd_evaluate, help="identification, MIA, probe and verification metrics of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--forget", required=True, help="the forgotten identities to evaluate")
    cli.add_output_arg(p, "--json", help="write the metrics here (JSON)")
    _evaluation(p)
    cli.add_runtime_args(p)

    p = command("bench", cmd_bench, help="run a face benchmark config (YAML): original, oracle and methods")
    p.add_argument("config", help="YAML config, e.g. benchmarks/configs/face-att-cpu.yaml")
    cli.add_output_arg(
        p, "--out", required=True, folder=True, help="output folder: results.json, results.md, faces.png"
    )
    p.add_argument("--data-root", default=None, help="dataset folder (default: $LETHE_DATA or ./data)")
    return parser


def _options_from(args: argparse.Namespace) -> FaceOptions:
    return FaceOptions(
        min_images=args.min_images, size=args.size, test_fraction=args.test_fraction, seed=args.seed, align=args.align
    )


def _recipe_from(args: argparse.Namespace) -> TrainRecipe:
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not args.lr > 0 or args.weight_decay < 0:
        raise ConfigError(f"--lr must be positive and --weight-decay not negative; got {args.lr}, {args.weight_decay}")
    return TrainRecipe(**recipe_fields(args), warmup_epochs=min(1, args.epochs - 1))


def _data_from_checkpoint(info: dict, args: argparse.Namespace) -> FaceData:
    try:
        options = FaceOptions(**info.get("data", {}))
    except TypeError as err:
        raise ConfigError(f"the checkpoint's data options are invalid: {err}") from None
    data = load_faces(info["dataset"], args.data_root, options)
    if data.bundle.classes != info.get("classes"):
        raise ConfigError(
            f"the identities of {info['dataset']} under this data root differ from the checkpoint's "
            f"({data.bundle.num_classes} vs {len(info.get('classes') or [])})"
        )
    return data


def _splits(data: FaceData, info: dict, forget: str):
    split = info.get("split", {})
    return make_splits(data.bundle, data.identities(forget), split.get("val_fraction", 0.1), split.get("seed", 0))


def cmd_train(args: argparse.Namespace) -> None:
    recipe = _recipe_from(args)
    if args.weights and args.pretrained != "vggface2":
        raise ConfigError(
            "--weights is the local VGGFace2 state dict of --pretrained vggface2 (with --embedder "
            "inception-resnet-v1); it is not used otherwise"
        )
    dim = args.embedding_dim or (512 if args.embedder == "inception-resnet-v1" else FaceModelSpec.embedding_dim)
    spec = FaceModelSpec(
        2,
        args.embedder,
        args.head,
        embedding_dim=dim,
        width=args.width,
        scale=args.scale,
        margin=args.margin,
        pretrained=args.pretrained,
        weights=args.weights,
        frozen_blocks=args.frozen_blocks,
    )
    build_face_model(spec, load_pretrained=False)  # bad model settings fail before the data loads
    engine = cli.engine_from_args(args)
    data = load_faces(args.dataset, args.data_root, _options_from(args))
    bundle = data.bundle
    exclude = data.identities(args.exclude) if args.exclude.strip() else ()
    splits = make_splits(bundle, exclude, args.val_fraction, args.seed)
    spec.num_classes, spec.image_size = bundle.num_classes, bundle.image_size
    model = build_face_model(spec)
    train = splits.retain_train if exclude else splits.train
    if args.imprint:
        imprint_head(model, train, bundle, engine, spec.scale)
    model, seconds, log = train_face(model, train, bundle, recipe, engine)
    info = {
        "model": spec.to_dict(),
        "dataset": args.dataset,
        "data": _options_from(args).to_dict(),
        "data_record": data.record,
        "classes": bundle.classes,
        **training_record(args, recipe, seconds, log, excluded=[bundle.classes[c] for c in exclude]),
    }
    save_face_model(model, args.out, info)
    print(
        f"trained {args.embedder} + {args.head} head on {bundle.num_classes} identities of {args.dataset} "
        f"in {seconds:.1f}s; saved {args.out}"
    )


def cmd_unlearn(args: argparse.Namespace) -> None:
    overrides = method_overrides(args.method, parse_assignments(args.set))
    lethe.method_settings(args.method, overrides)
    engine = cli.engine_from_args(args)
    model, info = load_face_model(args.checkpoint)
    splits = _splits(_data_from_checkpoint(info, args), info, args.forget)
    unlearned, record = unlearn_model(model, args.method, splits, engine, overrides, args.batch_size)
    names = [splits.bundle.classes[c] for c in record.forget_classes]
    cli.save_unlearned(unlearned, record, info, args, save_face_model, forget=names)
    print(f"{args.method} forgot {', '.join(names)} in {record.seconds:.1f}s; saved {args.out}")


def cmd_forget(args: argparse.Namespace) -> None:
    from lethe_face import forget_person as fp

    overrides = method_overrides(args.method, parse_assignments(args.set))
    lethe.method_settings(args.method, overrides)
    engine = cli.engine_from_args(args)
    model, info = load_face_model(args.checkpoint)
    name = args.person or Path(args.photos).name
    person = fp.person_index(info["classes"], name)
    files = fp.photo_files(args.photos)
    options = FaceOptions(**info.get("data", {}))
    record = info.get("data_record", {})
    photos = fp.photo_data(
        fp.load_photos(files, options, record.get("size", options.size), record.get("crop", 1.0)), person
    )
    reads_dataset = lethe.get_method(args.method).needs_retain  # svd too: it reads retained data
    data = _data_from_checkpoint(info, args) if reads_dataset or args.grid else None
    splits = fp.photo_splits(photos, person, info, data)
    unlearned, run = unlearn_model(model, args.method, splits, engine, overrides, args.batch_size)
    head = info["model"].get("head", "identity")
    cli.save_unlearned(
        unlearned,
        run,
        info,
        args,
        save_face_model,
        extra=[(args.grid, lambda path: fp.write_grid(path, model, unlearned, splits, person, engine, head))],
        forget=[name],
        photos=len(files),
    )
    print(f"{args.method} forgot {name} from {len(files)} photos in {run.seconds:.1f}s; saved {args.out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    if args.relearn_per_class < 0 or args.pairs_per_identity < 1:
        raise ConfigError("--relearn-per-class must be >= 0 and --pairs-per-identity >= 1")
    engine = cli.engine_from_args(args)
    model, info = load_face_model(args.checkpoint)
    data = _data_from_checkpoint(info, args)
    splits = _splits(data, info, args.forget)
    pairs = read_pairs(args.pairs) if args.pairs else None
    evaluation = EvalOptions(probe=not args.no_probe, relearn_per_class=args.relearn_per_class)
    metrics = evaluate_face(
        model, splits, engine, evaluation, VerifyOptions(pairs_per_identity=args.pairs_per_identity)
    )
    if pairs is not None:
        metrics.update(
            official_pairs_accuracy(
                model, Path(data.folder), pairs, data.bundle, engine, data.record["size"], data.record["crop"]
            )
        )
    output = {
        "checkpoint": str(args.checkpoint),
        "forget": [splits.bundle.classes[c] for c in splits.forget_classes],
        "metrics": metrics,
        "data": data.record,
    }
    if args.json:
        write_json_atomic(args.json, output)
    for key, value in metrics.items():
        print(f"{key:>22}: {value:.2f}" if isinstance(value, float) else f"{key:>22}: {value}")


def cmd_bench(args: argparse.Namespace) -> None:
    from dataclasses import replace

    import yaml

    from lethe.tasks import RunOptions
    from lethe_face.bench import config_from_mapping, run_benchmark

    try:
        cfg = yaml.safe_load(Path(args.config).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config {args.config}: {str(err).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{args.config} is not a mapping")
    try:
        config = config_from_mapping(cfg)
    except ConfigError as err:
        raise ConfigError(f"{args.config}: {err}") from None
    if args.data_root:
        config = replace(config, data_root=args.data_root)

    def run(out: Path) -> None:
        run_benchmark(config, out, RunOptions(config_path=args.config), log=lambda line: print(line, file=sys.stderr))

    cli.write_results(args.out, run)


def main(argv: list[str] | None = None) -> int:
    return cli.run_command(PROG, build_parser(), argv=argv)


if __name__ == "__main__":
    sys.exit(main())
