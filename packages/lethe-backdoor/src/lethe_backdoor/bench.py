"""``bench``: poison, train the backdoored model, run every defence on the defender's budget,
sweep the budget for the defences under study, and write results.json, results.md and two PNGs.

Everything is validated (attack against the dataset, method names and settings, every budget
against what the defender can have) before the first training step, so bad input fails in
seconds and leaves nothing behind.

``BackdoorTaskConfig`` is the benchmark YAML's schema (the shared keys in
``lethe_vision.bench_config``); ``TASK`` registers ``run_benchmark`` / ``check_benchmark`` as the
``backdoor`` task of ``benchmarks/run.py`` (``lethe.tasks``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lethe
from lethe.cli_support import check_method_settings
from lethe.engine import Engine, environment
from lethe.errors import ConfigError
from lethe.io import main_print, write_json_atomic
from lethe.tasks import BenchTask, RunOptions
from lethe_backdoor.attacks import build_attack
from lethe_backdoor.budget import SOURCES, budget_size, check_source, make_budget, parse_budget
from lethe_backdoor.defences import defence_settings, run_defence
from lethe_backdoor.metrics import evaluate_backdoor, outputs_on
from lethe_backdoor.poison import BackdoorSplits, make_backdoor_splits, stamped_test
from lethe_backdoor.report import plot_budget_sweep, plot_examples, write_markdown
from lethe_vision.bench_config import BenchConfigBase, ModelSection, run_settings
from lethe_vision.data import DatasetBundle, ImageData
from lethe_vision.pipeline import TrainRecipe, model_spec, train_model

DEFAULT_METHODS = ("delete", "svd", "finetune", "fine_pruning", "random_label", "gradient_ascent")
DEFAULT_BUDGETS = ("0.01", "0.005", "0.002", "0.001")


@dataclass
class BackdoorBenchConfig:
    """One backdoor benchmark run. ``budget`` is the defender's budget of the main table;
    ``budgets`` are swept for each of ``sweep_methods``; ``focus`` is the defence shown in the
    example figure and checked against the issue's criteria."""

    arch: str
    attack: str = "badnets"
    attack_overrides: dict[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = DEFAULT_METHODS
    budget: str = "0.01"
    budgets: tuple[str, ...] = DEFAULT_BUDGETS
    sweep_methods: tuple[str, ...] = ("delete",)
    budget_source: str = "stamp"
    focus: str = "delete"
    width: int | None = None
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    val_fraction: float = 0.05
    seed: int = 0
    batch_size: int = 128
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: int = 4


@dataclass
class BenchOutput:
    """The JSON-serialisable ``result`` and the example images of the figure."""

    result: dict[str, Any]
    clean_images: torch.Tensor
    stamped_images: torch.Tensor


def prepare(bundle: DatasetBundle, config: BackdoorBenchConfig) -> BackdoorSplits:
    """Check everything that can be checked before training; returns the poisoned splits."""
    if config.examples < 0:
        raise ConfigError(f"examples must not be negative, got {config.examples}")
    attack = build_attack(config.attack, config.attack_overrides)
    names = tuple(dict.fromkeys((*config.methods, *config.sweep_methods)))
    if not config.methods:
        raise ConfigError("name at least one defence")
    for name in names:
        defence_settings(name, config.method_overrides.get(name))
    for name in config.method_overrides:
        if name not in names:
            raise ConfigError(f"settings are given for {name!r}, which this run does not use")
    check_source(config.budget_source)
    splits = make_backdoor_splits(bundle, attack, config.val_fraction, config.seed)
    for text in (config.budget, *config.budgets):
        budget_size(splits, parse_budget(text), config.budget_source)
    return splits


def run_backdoor_bench(
    bundle: DatasetBundle, config: BackdoorBenchConfig, engine: Engine, log: Callable[[str], None] = main_print
) -> BenchOutput:
    """Train the backdoored model, run the defences and the budget sweep, evaluate everything."""
    splits = prepare(bundle, config)
    spec = model_spec(config.arch, bundle, config.width)
    stamped = stamped_test(splits)
    model, train_seconds, train_log = train_model(spec, splits.train, bundle, config.recipe, engine, "backdoored")
    base = evaluate_backdoor(model, splits, engine, stamped)
    rows: list[dict[str, Any]] = [
        {"method": "backdoored", **base, "delta_clean_acc": 0.0, "seconds": train_seconds, "train_log": train_log}
    ]
    log(_line("backdoored", rows[0]))
    main = make_budget(splits, config.budget, config.budget_source)
    models: dict[str, nn.Module] = {}
    for method in config.methods:
        defended, record = run_defence(
            model, method, main, bundle, engine, config.method_overrides.get(method), config.batch_size
        )
        row = _row(method, defended, record, splits, engine, stamped, base)
        rows.append(row)
        log(_line(method, row))
        if method == config.focus:
            models[method] = defended
    sweep: list[dict[str, Any]] = []
    for method in config.sweep_methods:
        for text in config.budgets:
            reuse = method in config.methods and _same_budget(text, config.budget)
            if reuse:
                row = next(r for r in rows if r["method"] == method)
            else:
                budget = make_budget(splits, text, config.budget_source)
                defended, record = run_defence(
                    model, method, budget, bundle, engine, config.method_overrides.get(method), config.batch_size
                )
                row = _row(method, defended, record, splits, engine, stamped, base)
                if method == config.focus and method not in models:
                    models[method] = defended
            sweep.append(
                {
                    **{k: row[k] for k in ("method", "clean_acc", "asr", "robust_acc", "seconds")},
                    "budget": text,
                    "stamped": row["stamped"],
                    "clean": row["clean"],
                }
            )
            log(f"  sweep {method} budget {text}: " + _line(method, row))
    after = models.get(config.focus)
    examples, clean_images, stamped_images = _examples(model, after, splits, stamped, engine, config, bundle)
    header = {
        "dataset": bundle.name,
        "arch": config.arch,
        "width": config.width,
        "attack": splits.attack.describe(),
        "target": f"{splits.target} ({bundle.classes[splits.target]})",
        "poisoned training samples": f"{splits.num_poisoned} of {len(splits.train)}",
        "defender's clean pool (held out of training)": len(splits.pool),
        "test samples": len(splits.test),
        "stamped test samples (non-target)": len(stamped),
        "recipe": asdict(config.recipe),
        "budget": config.budget,
        "budget source": config.budget_source,
        "budgets swept": list(config.budgets),
        "seed": config.seed,
        "method_overrides": config.method_overrides,
        **environment(engine),
    }
    result = {
        "header": header,
        "classes": bundle.classes,
        "attack": splits.attack.to_dict(),
        "focus": config.focus,
        "budget": main.describe(),
        "rows": rows,
        "sweep": sweep,
        "examples": examples,
    }
    return BenchOutput(result, clean_images, stamped_images)


def _row(method, model, record, splits, engine, stamped, base) -> dict[str, Any]:
    metrics = evaluate_backdoor(model, splits, engine, stamped)
    budget = record.extra.get("budget", {})
    extra = {k: v for k, v in record.extra.items() if k not in ("grid", "budget", "curve", "pruned_channels")}
    return {
        "method": method,
        **metrics,
        "delta_clean_acc": metrics["clean_acc"] - base["clean_acc"],
        "seconds": record.seconds,
        "stamped": budget.get("stamped"),
        "clean": budget.get("clean"),
        "settings": record.settings,
        "log": record.log,
        "extra": extra,
    }


def _same_budget(a: str, b: str) -> bool:
    pa, pb = parse_budget(a), parse_budget(b)
    return (pa.fraction, pa.count) == (pb.fraction, pb.count)


def _line(name: str, row: Mapping[str, Any]) -> str:
    return f"{name:>16}: " + ", ".join(f"{k} {row[k]:.2f}" for k in ("clean_acc", "asr", "robust_acc", "seconds"))


def _examples(
    before: nn.Module,
    after: nn.Module | None,
    splits: BackdoorSplits,
    stamped: ImageData,
    engine: Engine,
    config: BackdoorBenchConfig,
    bundle: DatasetBundle,
) -> tuple[list[dict[str, Any]], torch.Tensor, torch.Tensor]:
    """The first stamped test image of each of ``config.examples`` classes, with predictions."""
    test = splits.test.of_classes([splits.target], keep=False)  # the same order as ``stamped``
    chosen, seen = [], set()
    for i, label in enumerate(test.labels.tolist()):
        if label not in seen:
            seen.add(label)
            chosen.append(i)
        if len(chosen) == config.examples:
            break
    index = torch.as_tensor(chosen, dtype=torch.long)
    clean = test.subset(index)
    marked = stamped.subset(index)
    preds: dict[str, list[int]] = {}
    models = {"backdoored": before, **({config.focus: after} if after is not None else {})}
    for name, model in models.items():
        for kind, data in (("clean", clean), ("stamped", marked)):
            preds[f"{kind}_{name}"] = outputs_on(model, data, bundle, engine).logits.argmax(1).tolist()
    examples = [
        {"test_index": int(i), "true": int(clean.labels[j]), **{k: v[j] for k, v in preds.items()}}
        for j, i in enumerate(index.tolist())
    ]
    return examples, clean.images, marked.images


def write_backdoor_bench(output: BenchOutput, out: str | Path, title: str) -> None:
    """Write ``results.json``, ``results.md``, ``asr_vs_budget.png`` and ``examples.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = output.result
    write_json_atomic(out / "results.json", result)
    write_markdown(out / "results.md", result, title)
    plot_budget_sweep(out / "asr_vs_budget.png", result, title)
    focus = result["focus"] if any(f"clean_{result['focus']}" in e for e in result["examples"][:1]) else "backdoored"
    if result["examples"]:
        plot_examples(
            out / "examples.png",
            output.clean_images,
            output.stamped_images,
            result["examples"],
            result["classes"],
            "backdoored",
            focus,
            f"{title}: clean and stamped test images",
        )


@dataclass(kw_only=True)
class BackdoorTaskConfig(BenchConfigBase):
    """A backdoor benchmark YAML (``benchmarks/configs/backdoor-*.yaml``; the shared keys in
    ``lethe_vision.bench_config``): one backdoored model and its defences (``methods``, settings
    under ``overrides``) on the defender's ``budget``, ``budgets`` swept for ``sweep_methods``.

    What is forgotten is fixed by the attack: its target class under its trigger
    (``attack_settings.target``), on the stamped images of the budget. There is no list of classes
    to choose, so ``forget_sets`` is left out (empty). One seed per run."""

    task: str = "backdoor"
    model: ModelSection
    #: a backdoor run forgets the attack's target under its trigger: no forget sets to list
    forget_sets: tuple[Any, ...] = ()
    methods: tuple[str, ...] = lethe.setting(DEFAULT_METHODS, min_items=1)
    #: the attack (``lethe_backdoor.attacks``: badnets, blended) and its settings over its defaults
    attack: str = "badnets"
    attack_settings: dict[str, Any] = field(default_factory=dict)
    #: the defender's budget of the main table: a share of the training set ("0.01") or a count ("500")
    budget: str | float = "0.01"
    #: the budgets swept for each of ``sweep_methods``
    budgets: tuple[str | float, ...] = lethe.setting(DEFAULT_BUDGETS, min_items=1)
    sweep_methods: tuple[str, ...] = ("delete",)
    #: where the budget's stamped samples come from: stamped pool images or identified poisoned ones
    budget_source: str = lethe.setting("stamp", choices=SOURCES)
    #: the defence shown in the example figure
    focus: str = "delete"
    #: training the backdoored model (``recipe.batch_size``; ``batch_size`` is the defences')
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    #: the stratified share of the training data held out clean as the defender's pool
    val_fraction: float = lethe.setting(0.05, gt=0, lt=1)
    #: stamped test images (one per class) in the example figure
    examples: int = lethe.setting(4, ge=0)

    def __post_init__(self) -> None:
        if self.forget_sets:
            raise ConfigError(
                "forget_sets: a backdoor run forgets the attack's target class under its trigger "
                "(attack_settings.target), not a list of classes; leave forget_sets out"
            )
        if len(self.seeds) != 1:
            raise ConfigError(f"seeds: a backdoor run takes one seed, got {list(self.seeds)}")
        if self.model.pretrained is not None:
            raise ConfigError("model.pretrained: the backdoor benchmark trains its model from random initialisation")
        # numbers as written (0.01 -> "0.01"), checked as budgets before any data loads
        self.budget = parse_budget(self.budget).text
        self.budgets = tuple(parse_budget(b).text for b in self.budgets)


def bench_config(config: BackdoorTaskConfig, seed: int | None = None) -> BackdoorBenchConfig:
    """The run settings of ``config`` (``lethe_vision.bench_config.run_settings``, with ``seed`` in
    place of its own, if given): the attack's settings and each defence's overrides as copies."""
    return run_settings(
        BackdoorBenchConfig,
        config,
        attack_overrides=dict(config.attack_settings),
        seed=config.seeds[0] if seed is None else seed,
        method_overrides={k: dict(v) for k, v in config.overrides.items()},
    )


def run_benchmark(
    config: BackdoorTaskConfig,
    out: str | Path,
    options: RunOptions = RunOptions(),
    log: Callable[[str], None] = main_print,
) -> BenchOutput:
    """Run a backdoor benchmark config and write its results under ``out``: the whole job of
    ``benchmarks/run.py`` for ``task: backdoor`` (``options.seeds``: the runner's ``--seeds``, which
    may name only the config's seed)."""
    from lethe_vision.datasets import load_dataset

    if options.seeds and set(options.seeds) != set(config.seeds):
        raise ConfigError(f"--seeds {','.join(map(str, options.seeds))}: this config runs seed {config.seeds[0]}")
    run = bench_config(config)
    build_attack(run.attack, run.attack_overrides)  # bad settings fail before the dataset loads
    bundle = load_dataset(config.dataset, config.data_root)
    engine = Engine(seed=run.seed, progress=sys.stderr.isatty(), num_workers=config.workers)
    output = run_backdoor_bench(bundle, run, engine, log)
    output.result["header"]["config"] = options.config_path
    if config.note:
        output.result["header"]["note"] = config.note
    title = config.title or f"Backdoor removal on {bundle.name} with {run.arch}, {run.attack} attack"
    write_backdoor_bench(output, out, title)
    return output


def check_benchmark(config: BackdoorTaskConfig) -> None:
    """What the config's types cannot say, checked without data: the attack and its settings, and
    every defence (``methods`` and ``sweep_methods``) and its settings under ``overrides``."""
    build_attack(config.attack, config.attack_settings)
    names = tuple(dict.fromkeys((*config.methods, *config.sweep_methods)))
    check_method_settings(names, config.overrides, defence_settings)
    for name in config.overrides:
        if name not in names:
            raise ConfigError(f"overrides: settings are given for {name!r}, which this run does not use")


TASK = BenchTask("backdoor", BackdoorTaskConfig, run_benchmark, check=check_benchmark)
