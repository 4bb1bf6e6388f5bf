"""Face benchmark: original, retrain oracle, ``delete``, ``svd`` and any registry method, for each
identity-head type, evaluated together.

``FaceBenchConfig`` is the benchmark YAML's schema (the shared keys are ``lethe_vision.bench_config``'s);
``TASK`` registers ``run_benchmark`` / ``check_benchmark`` as the ``face`` task of
``benchmarks/run.py`` (``lethe.tasks``).
"""

from __future__ import annotations

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
from lethe.tasks import BenchTask, RunOptions
from lethe_face.datasets import FaceData, FaceOptions, load_faces
from lethe_face.metrics import VerifyOptions, official_pairs_accuracy, read_pairs
from lethe_face.models import EMBEDDERS, HEADS, FaceModelSpec
from lethe_face.pipeline import PROTOCOLS, FaceRun, ProtocolOptions, evaluate_face, method_overrides
from lethe_face.report import plot_face_grid, write_face_report
from lethe_vision.bench_config import BenchConfigBase, resolve_variant
from lethe_vision.pipeline import EvalOptions, TrainRecipe, outputs_on, unlearn_model

#: the ``FaceModelSpec`` fields a benchmark does not set: the protocol sets the number of identities
#: and the image size from the data, and the head type from ``heads``
PROTOCOL_SET = ("num_classes", "head", "image_size")


@dataclass(kw_only=True)
class FaceModelSection:
    """``model:``: the ``FaceModelSpec`` of every model the benchmark trains, less what the protocol
    sets (``PROTOCOL_SET``): the embedder (``lethe_face.models.EMBEDDERS``), its embedding size and
    width, the cosine head's ArcFace scale and margin (ramped over ``margin_warmup_epochs``), the
    weights it starts from and, for ``dlib-resnet``, how many of its blocks stay frozen."""

    embedder: str = "light-resnet"
    embedding_dim: int = lethe.setting(128, ge=1)
    width: int | None = lethe.setting(None, ge=1)
    scale: float = lethe.setting(32.0, gt=0)
    margin: float = lethe.setting(0.5, ge=0)
    margin_warmup_epochs: int = lethe.setting(0, ge=0)
    pretrained: str | None = None
    weights: str | None = None
    frozen_blocks: int = lethe.setting(0, ge=0)

    def spec(self) -> FaceModelSpec:
        """The ``FaceModelSpec`` (its ``PROTOCOL_SET`` fields are placeholders the protocol replaces)."""
        return FaceModelSpec(num_classes=2, **asdict(self))


@dataclass(kw_only=True)
class FaceBenchConfig(BenchConfigBase):
    """A face benchmark YAML (``benchmarks/configs/face-*.yaml``; the shared keys in
    ``lethe_vision.bench_config``): the model (its head replaced by each of ``heads``), the
    protocol, recipe, methods and evaluation settings. ``forget_sets`` holds the one forget set of
    the config (a person, or a list of people forgotten together); ``seeds`` trains one original
    (and oracle, and unlearning) per seed, which draws the validation images held out of train, the
    initialisation and the order, while the faces' train/test split stays ``data.seed``'s, so
    every seed is scored on the same test images."""

    task: str = "face"
    #: how the faces are read; ``data.seed`` draws each person's train/test split (and the
    #: example images of the picture grid)
    data: FaceOptions = field(default_factory=FaceOptions)
    model: FaceModelSection = field(default_factory=FaceModelSection)
    heads: tuple[str, ...] = lethe.setting(("linear", "cosine"), min_items=1)
    protocol: str = "all"
    protocol_options: ProtocolOptions = field(default_factory=ProtocolOptions)
    recipe: TrainRecipe = field(default_factory=lambda: TrainRecipe(epochs=20))
    #: per head, over ``overrides``: ``{head: {method: {key: value}}}``
    head_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: named settings of a method, listed in ``methods`` like one: ``{delete-20-epochs: {method:
    #: delete, overrides: {...}}}`` (its overrides go over the method's own, per head)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_size: int = lethe.setting(64, ge=1)
    evaluation: EvalOptions = field(default_factory=EvalOptions)
    verification: VerifyOptions = field(default_factory=VerifyOptions)
    val_fraction: float = lethe.setting(0.1, ge=0, lt=1)
    #: test images of forgotten (and as many of kept) people in the picture grid
    examples: int = lethe.setting(4, ge=0)
    #: also score the dataset's official verification pairs (LFW's pairs file) where it has them
    official_pairs: bool = False
    #: progress bars (None: when stderr is a terminal)
    progress: bool | None = None

    def __post_init__(self) -> None:
        if len(self.forget_sets) != 1:
            raise ConfigError(
                "a face config names one forget set (a person, or a list of people forgotten together), "
                f"got {len(self.forget_sets)}: {list(self.forget_sets)}"
            )
        check_seeds(self.seeds)
        if not self.heads:
            raise ConfigError("name at least one head type (linear, cosine)")

    @property
    def forget(self) -> Any:
        """The identities to forget: a name or index, a comma-separated string or a list of them."""
        return self.forget_sets[0]


def check_seeds(seeds: tuple[int, ...]) -> None:
    """A ConfigError unless ``seeds`` names at least one seed, each once."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must name at least one seed, each once; got {list(seeds)}")


def config_from_mapping(cfg: Mapping[str, Any], where: str = "config") -> FaceBenchConfig:
    """A checked ``FaceBenchConfig`` from a YAML mapping (``TASK.read``): unknown keys, missing keys
    and values of the wrong type are one-line ConfigErrors."""
    return TASK.read(cfg, where)


def head_method_overrides(config: FaceBenchConfig, head: str, method: str) -> dict[str, Any]:
    """The config's overrides of ``method`` for ``head``: ``head_overrides`` over ``overrides``."""
    return {**config.overrides.get(method, {}), **config.head_overrides.get(head, {}).get(method, {})}


def head_row_settings(config: FaceBenchConfig, head: str, name: str) -> tuple[str, dict[str, Any]]:
    """The registered method and the overrides the ``methods`` entry ``name`` runs for ``head``: the
    method's (``head_method_overrides``), under a variant's own (``resolve_variant``)."""
    method, own = resolve_variant(name, config.variants, {})  # with no overrides: the variant's own
    return method, {**head_method_overrides(config, head, method), **own}


def check_benchmark(config: FaceBenchConfig) -> None:
    """What the config's types cannot say, checked before loading data and training: the methods,
    their settings (per head), the head types, the embedder and the protocol."""
    for name in config.methods:
        for head in config.heads:
            lethe.method_settings(*head_row_settings(config, head, name))
    for method, overrides in config.overrides.items():
        lethe.method_settings(method, overrides)
    for head, per_method in config.head_overrides.items():
        if head not in config.heads:
            raise ConfigError(f"head_overrides names head {head!r}, which is not one of {list(config.heads)}")
        for method in per_method:
            lethe.method_settings(method, head_method_overrides(config, head, method))
    for head in config.heads:
        HEADS.get(head)
    EMBEDDERS.get(config.model.embedder)
    PROTOCOLS.get(config.protocol)


def run_face_bench(data: FaceData, config: FaceBenchConfig, engine: Engine, log: Callable[[str], None] = main_print):
    """Run the protocol for each head type; returns ``(result, grid)`` where ``grid`` holds the
    example images and predictions of the picture grid."""
    check_benchmark(config)
    bundle = data.bundle
    pairs = read_pairs(data.pairs_file) if config.official_pairs and data.pairs_file else None
    rows: list[dict[str, Any]] = []
    predictions: dict[str, dict[str, list[str]]] = {}
    run: FaceRun | None = None
    seeds = config.seeds
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
        "seed": config.data.seed,
        **({"seeds (one original each; means judged)": list(seeds)} if len(seeds) > 1 else {}),
        "evaluation": asdict(config.evaluation),
        "verification": asdict(config.verification),
        "method_overrides": config.overrides,
        **({"head_overrides": config.head_overrides} if config.head_overrides else {}),
        **({"variants": config.variants} if config.variants else {}),
        **environment(engine),
    }
    examples = pick_examples(run, config.examples, config.data.seed)
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
        replace(config.model.spec(), head=head),
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
    examples = pick_examples(run, config.examples, config.data.seed)
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
    for name in config.methods:
        method, settings = head_row_settings(config, head, name)
        overrides = method_overrides(method, settings)
        model, record = unlearn_model(run.original, method, run.splits, engine, overrides, config.batch_size)
        extra = {k: v for k, v in record.extra.items() if k != "grid"}
        add(name, model, record.seconds, {"settings": record.settings, "log": record.log, "extra": extra})
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


def load_config_data(config: FaceBenchConfig) -> tuple[FaceData, Engine]:
    """The faces a config names (its ``data`` options) and the engine it runs on (seeded by its
    first seed; each run takes its own seed)."""
    data = load_faces(config.dataset, config.data_root, config.data)
    progress = sys.stderr.isatty() if config.progress is None else config.progress
    engine = Engine(seed=config.seeds[0], progress=progress, num_workers=config.workers)
    return data, engine


def run_benchmark(
    config: FaceBenchConfig,
    out: str | Path,
    options: RunOptions = RunOptions(),
    log: Callable[[str], None] = main_print,
) -> dict[str, Any]:
    """Run a face benchmark config and write its results under ``out`` (``options.seeds``: the
    runner's ``--seeds``, run instead of the config's)."""
    if options.seeds:
        check_seeds(options.seeds)
        config = replace(config, seeds=tuple(options.seeds))
    check_benchmark(config)
    data, engine = load_config_data(config)
    result, grid = run_face_bench(data, config, engine, log)
    result["header"]["config"] = options.config_path
    if config.note:
        result["header"]["note"] = config.note
    title = config.title or f"Forgetting identities on {data.bundle.name} ({config.model.embedder})"
    write_face_bench(result, grid, out, title)
    return result


def run_config(
    cfg: Mapping[str, Any], out: str | Path, log: Callable[[str], None] = main_print, config_path: str | None = None
) -> dict[str, Any]:
    """Run a face benchmark YAML (as a mapping; ``config_from_mapping``) and write its results under ``out``."""
    return run_benchmark(config_from_mapping(cfg), out, RunOptions(config_path=config_path), log)


#: the ``face`` task of ``benchmarks/run.py`` (entry point ``lethe.tasks``)
TASK = BenchTask("face", FaceBenchConfig, run_benchmark, check=check_benchmark)
