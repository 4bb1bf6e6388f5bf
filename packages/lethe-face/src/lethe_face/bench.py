"""Face benchmark: original, retrain oracle, ``delete``, ``svd`` and any registry method, for each
identity-head type, evaluated together; ``run_config`` is the whole job of ``benchmarks/run.py``
for ``task: face``."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import lethe
from lethe.engine import Engine, environment
from lethe.errors import ConfigError
from lethe.io import main_print, write_json_atomic
from lethe.metrics import avg_gap
from lethe_face.datasets import FaceData, FaceOptions, load_faces
from lethe_face.metrics import VerifyOptions, official_pairs_accuracy, read_pairs
from lethe_face.models import HEADS, FaceModelSpec
from lethe_face.pipeline import PROTOCOLS, FaceRun, ProtocolOptions, evaluate_face, method_overrides
from lethe_face.report import plot_face_grid, write_face_report
from lethe_vision.pipeline import EvalOptions, TrainRecipe, eval_options, outputs_on, unlearn_model


@dataclass
class FaceBenchConfig:
    """One face benchmark: the model (``spec``; its head is replaced by each of ``heads``), the
    protocol, recipe, methods and evaluation settings."""

    forget: Any
    spec: FaceModelSpec = field(default_factory=lambda: FaceModelSpec(num_classes=2))
    heads: tuple[str, ...] = ("linear", "cosine")
    protocol: str = "all"
    protocol_options: ProtocolOptions = field(default_factory=ProtocolOptions)
    recipe: TrainRecipe = field(default_factory=lambda: TrainRecipe(epochs=20))
    methods: tuple[str, ...] = ("delete", "svd")
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per-head overrides on top of ``method_overrides``: ``{head: {method: {key: value}}}``
    head_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    evaluation: EvalOptions = field(default_factory=EvalOptions)
    verification: VerifyOptions = field(default_factory=VerifyOptions)
    val_fraction: float = 0.1
    seed: int = 0
    #: repeated runs: one original (and oracle, and unlearning) per seed, which draws the validation
    #: images held out of train, the initialisation and the order; the faces' train/test split stays
    #: ``seed``'s, so every seed is scored on the same test images. None: one run at ``seed``
    seeds: tuple[int, ...] | None = None
    unlearn_batch_size: int = 64
    examples: int = 4
    official_pairs: bool = False


#: Top-level keys of a face config besides the FaceBenchConfig fields built from sub-mappings.
RUNNER_KEYS = {
    "task",
    "title",
    "out",
    "note",
    "_path",
    "dataset",
    "data_root",
    "workers",
    "progress",
    "data",
    "model",
    "overrides",
    "head_overrides",
    "recipe",
    "head_recipe",
    "evaluation",
    "verification",
    "protocol_options",
}


def config_from_mapping(cfg: Mapping[str, Any]) -> FaceBenchConfig:
    """A ``FaceBenchConfig`` from a YAML mapping (``model``, ``recipe``, ``evaluation``, ... are
    sub-mappings of the dataclasses' fields); unknown keys are a ConfigError."""
    nested = {"spec", "recipe", "evaluation", "verification", "protocol_options", "method_overrides", "head_overrides"}
    plain = {f.name for f in dataclasses.fields(FaceBenchConfig)} - nested
    unknown = set(cfg) - plain - RUNNER_KEYS
    if unknown:
        raise ConfigError(f"unknown face config keys {sorted(unknown)}; known: {sorted(plain | RUNNER_KEYS)}")
    if "forget" not in cfg:
        raise ConfigError("a face config needs 'forget': the identities to forget")
    values = {k: cfg[k] for k in plain if k in cfg}
    for key in ("heads", "methods", "seeds"):
        if key in values:
            values[key] = tuple(values[key])
    protocol = dict(cfg.get("protocol_options", {}))
    if "head_recipe" in cfg:
        protocol["head_recipe"] = lethe.build_settings(TrainRecipe, cfg["head_recipe"], "head_recipe")
    return FaceBenchConfig(
        spec=lethe.build_settings(FaceModelSpec, {"num_classes": 2, **cfg.get("model", {})}, "model"),
        recipe=lethe.build_settings(TrainRecipe, cfg.get("recipe", {}), "recipe"),
        evaluation=eval_options(cfg.get("evaluation")),
        verification=lethe.build_settings(VerifyOptions, cfg.get("verification", {}), "verification"),
        protocol_options=lethe.build_settings(ProtocolOptions, protocol, "protocol_options"),
        method_overrides={k: dict(v) for k, v in cfg.get("overrides", {}).items()},
        head_overrides={
            head: {m: dict(v) for m, v in (per_method or {}).items()}
            for head, per_method in cfg.get("head_overrides", {}).items()
        },
        **values,
    )


def head_method_overrides(config: FaceBenchConfig, head: str, method: str) -> dict[str, Any]:
    """The config's overrides of ``method`` for ``head``: ``head_overrides`` over ``overrides``."""
    return {**config.method_overrides.get(method, {}), **config.head_overrides.get(head, {}).get(method, {})}


def check_config(config: FaceBenchConfig) -> None:
    """Everything that can fail before loading data and training."""
    for method in config.methods:
        lethe.get_method(method)
    for method, overrides in config.method_overrides.items():
        lethe.method_settings(method, overrides)
    for head, per_method in config.head_overrides.items():
        if head not in config.heads:
            raise ConfigError(f"head_overrides names head {head!r}, which is not one of {list(config.heads)}")
        for method in per_method:
            lethe.method_settings(method, head_method_overrides(config, head, method))
    for head in config.heads:
        HEADS.get(head)
    PROTOCOLS.get(config.protocol)
    if not config.heads:
        raise ConfigError("name at least one head type (linear, cosine)")
    if config.seeds is not None and (not config.seeds or len(set(config.seeds)) != len(config.seeds)):
        raise ConfigError(f"seeds must name at least one seed, each once; got {list(config.seeds)}")
    if config.examples < 0:
        raise ConfigError(f"examples must not be negative, got {config.examples}")


def run_face_bench(data: FaceData, config: FaceBenchConfig, engine: Engine, log: Callable[[str], None] = main_print):
    """Run the protocol for each head type; returns ``(result, grid)`` where ``grid`` holds the
    example images and predictions of the picture grid."""
    check_config(config)
    bundle = data.bundle
    pairs = read_pairs(data.pairs_file) if config.official_pairs and data.pairs_file else None
    rows: list[dict[str, Any]] = []
    predictions: dict[str, dict[str, list[str]]] = {}
    run: FaceRun | None = None
    seeds = config.seeds or (config.seed,)
    for seed in seeds:
        seeded = replace(engine, seed=seed)
        for head in config.heads:
            run = protocol_run(data, config, head, seeded)
            # the picture grid shows the first seed's models
            grid_predictions = predictions.setdefault(head, {}) if seed == seeds[0] else None
            rows += run_head(run, head, seed, config, seeded, pairs, data, grid_predictions, log)
    assert run is not None
    splits = run.splits
    header = {
        "dataset": bundle.name,
        "data": data.record,
        "protocol": config.protocol,
        **{k: v for k, v in run.info.items() if not k.endswith("_log")},
        "forget": [splits.bundle.classes[c] for c in splits.forget_classes],
        "identities evaluated": splits.bundle.num_classes,
        "model": asdict(run.spec) | {"head": list(config.heads)},
        "recipe": asdict(config.recipe),
        "protocol_options": asdict(config.protocol_options),
        "train images": len(splits.train),
        "validation images (held out of train)": len(splits.validation),
        "test images": len(splits.test),
        "seed": config.seed,
        **({"seeds (one original each; means judged)": list(seeds)} if len(seeds) > 1 else {}),
        "evaluation": asdict(config.evaluation),
        "verification": asdict(config.verification),
        "method_overrides": config.method_overrides,
        **({"head_overrides": config.head_overrides} if config.head_overrides else {}),
        **environment(engine),
    }
    examples = pick_examples(run, config.examples, config.seed)
    grid = {
        "images": examples.images,
        "truth": [splits.bundle.classes[i] for i in examples.labels.tolist()],
        "forgotten": [i in splits.forget_classes for i in examples.labels.tolist()],
        "predictions": predictions,
    }
    result = {"header": header, "rows": rows, "examples": {k: v for k, v in grid.items() if k != "images"}}
    return result, grid


def protocol_run(data: FaceData, config: FaceBenchConfig, head: str, engine: Engine) -> FaceRun:
    """The config's protocol for one head type: the trained original, its splits and its oracle;
    ``engine.seed`` draws the validation images, the initialisation and the order."""
    protocol, _ = PROTOCOLS.get(config.protocol)
    return protocol(
        data.bundle,
        data.identities(config.forget),
        replace(config.spec, head=head),
        config.recipe,
        engine,
        config.val_fraction,
        config.protocol_options,
    )


def run_head(
    run: FaceRun,
    head: str,
    seed: int,
    config: FaceBenchConfig,
    engine: Engine,
    pairs: list | None,
    data: FaceData,
    predictions: dict[str, list[str]] | None,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The rows of one head and seed: original, retrain oracle, then each method, evaluated alike;
    ``predictions`` (when given) gets each model's top prediction on the grid's examples."""
    bundle = run.splits.bundle
    examples = pick_examples(run, config.examples, config.seed)
    rows: list[dict[str, Any]] = []

    def add(name: str, model, seconds: float, extra: dict) -> None:
        metrics = evaluate_face(model, run.splits, engine, config.evaluation, config.verification)
        if pairs is not None:
            metrics.update(
                official_pairs_accuracy(
                    model, data.folder, pairs, data.bundle, engine, data.record["size"], data.record["crop"]
                )
            )
        rows.append({"head": head, "seed": seed, "method": name, **metrics, "seconds": seconds, **extra})
        if name != "retrain" and predictions is not None:
            pred = outputs_on(model, examples, bundle, engine).logits.argmax(1)
            predictions[name] = [bundle.classes[i] for i in pred.tolist()]
        log(
            f"seed {seed} {head:>7} {name:>10}: "
            + ", ".join(f"{k} {metrics[k]:.2f}" for k in ("forget_test", "retain_test", "verif_acc", "tar_forget"))
            + f", seconds {seconds:.1f}"
        )

    add("original", run.original, run.original_seconds, {"train_log": run.original_log})
    oracle, seconds, train_log = run.retrain()
    add("retrain", oracle, seconds, {"train_log": train_log})
    for method in config.methods:
        overrides = method_overrides(method, head_method_overrides(config, head, method))
        model, record = unlearn_model(run.original, method, run.splits, engine, overrides, config.unlearn_batch_size)
        extra = {k: v for k, v in record.extra.items() if k != "grid"}
        add(method, model, record.seconds, {"settings": record.settings, "log": record.log, "extra": extra})
    oracle_row = rows[1]
    for row in rows:
        row["avg_gap"] = avg_gap(row, oracle_row)
        row["seconds_vs_retrain"] = row["seconds"] / oracle_row["seconds"] if oracle_row["seconds"] else float("nan")
    return rows


def pick_examples(run: FaceRun, count: int, seed: int):
    """``count`` test images of forgotten identities, then ``count`` of kept ones (seeded)."""
    test = run.splits.test
    gen = torch.Generator().manual_seed(seed)
    forgotten = test.of_classes(run.splits.forget_classes)
    kept = test.of_classes(run.splits.forget_classes, keep=False)
    take = [d.subset(torch.randperm(len(d), generator=gen)[: max(1, count)].sort().values) for d in (forgotten, kept)]
    return type(test)(torch.cat([t.images for t in take]), torch.cat([t.labels for t in take]))


def write_face_bench(result: Mapping[str, Any], grid: Mapping[str, Any], out: str | Path, title: str) -> None:
    """Write ``results.json``, ``results.md`` and ``faces.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result)
    write_face_report(out / "results.md", title, result["header"], result["rows"])
    seeds = {r.get("seed") for r in result["rows"]}
    which = f" (seed {result['rows'][0]['seed']}'s models)" if len(seeds) > 1 else ""
    plot_face_grid(
        out / "faces.png",
        grid["images"],
        grid["truth"],
        grid["forgotten"],
        grid["predictions"],
        f"{title}: top prediction of each model{which}",
    )


def load_config_data(cfg: Mapping[str, Any], config: FaceBenchConfig) -> tuple[FaceData, Engine]:
    """The faces a config names (its ``data`` options, seeded by the config) and the engine it runs on."""
    options = lethe.build_settings(FaceOptions, {"seed": config.seed, **cfg.get("data", {})}, "data")
    data = load_faces(cfg["dataset"], cfg.get("data_root"), options)
    engine = Engine(
        seed=config.seed, progress=cfg.get("progress", sys.stderr.isatty()), num_workers=cfg.get("workers", 0)
    )
    return data, engine


def run_config(cfg: Mapping[str, Any], out: str | Path, log: Callable[[str], None] = main_print) -> dict[str, Any]:
    """Run a face benchmark YAML (as a mapping) and write its results under ``out``."""
    config = config_from_mapping(cfg)
    check_config(config)
    data, engine = load_config_data(cfg, config)
    result, grid = run_face_bench(data, config, engine, log)
    result["header"]["config"] = cfg.get("_path")
    if cfg.get("note"):
        result["header"]["note"] = cfg["note"]
    title = cfg.get("title", f"Forgetting identities on {data.bundle.name} ({config.spec.embedder})")
    write_face_bench(result, grid, out, title)
    return result


#: the face task of ``benchmarks/run.py`` (``check_benchmark``: its ``--check``)
run_benchmark = run_config


def check_benchmark(cfg: Mapping[str, Any]) -> None:
    """Validate a face benchmark YAML without loading data (``check_config``)."""
    check_config(config_from_mapping(cfg))
