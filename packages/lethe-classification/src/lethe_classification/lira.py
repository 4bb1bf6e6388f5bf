"""A LiRA-style attack on class unlearning: can an attacker tell a method's output from the oracle?

Following LiRA (Carlini et al., IEEE S&P 2022) and U-LiRA (Hayes et al., SaTML 2025), P pairs of
models are trained, each on its own random half of the training split: an original (all classes),
the retrain oracle (the half without the forgotten classes), a second oracle (the oracle-vs-oracle
reference) and every method applied to the original. The three trainings of a pair have seeds of
their own (``seed + j``, ``+ 1000``, ``+ 2000``: model initialisation and data order), so neither
oracle shares the original's initialisation (which the method outputs inherit) and the two oracles
are exchangeable, drawn as the shadows of their hypothesis are (U-LiRA).
On a fixed sample of forget-class training images the attacker takes ``phi = log(p / (1 - p))`` of
the true class, fits Gaussians under "unlearned by M" and under "retrained" over the other P - 1
pairs (the shadows) and labels each held-out model by the sign of the mean log-likelihood ratio
(``lira_stats``, pooled per-sample variances). Accuracy / AUC of 50 % mean the method's outputs
look like the oracle's; every within-pair swap of the two roles gives the spread chance gives.

    python -m lethe_classification.lira benchmarks/configs/lira/fashion-mnist-small-cnn.yaml
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import lethe
from lethe.config import read_config
from lethe.engine import Engine, environment
from lethe.errors import ConfigError, LetheError
from lethe.io import main_print, write_json_atomic, write_text_atomic
from lethe.metrics import accuracy
from lethe_classification.bench import BenchConfig
from lethe_classification.lira_stats import VARIANCES, AttackResult, Chance, attack_table, chance, logit_confidence
from lethe_vision.bench_config import BenchConfigBase, ModelSection, class_list, run_settings
from lethe_vision.data import DatasetBundle, parse_classes, per_class_sample
from lethe_vision.pipeline import Splits, TrainRecipe, make_splits, model_spec, outputs_on, train_model, unlearn_model
from lethe_vision.report import header_lines, markdown_table

ORACLE, ORACLE_2, ORIGINAL = "retrain", "retrain-2", "original"
#: Seed offsets of a pair's trainings (pair j: ``seed + j`` plus these): independent initialisations
#: and data orders, so the oracle shares nothing with the original but the data half.
SEED_OFFSETS = {ORIGINAL: 0, ORACLE: 1000, ORACLE_2: 2000}


@dataclass
class LiraConfig(BenchConfig):
    """One attack run: the protocol of ``lethe_classification.bench`` (``BenchConfig``: model, forget
    classes, recipe, methods and their overrides; its evaluation and cache are not read) on P data halves."""

    #: number of pairs P; each is attacked with the other P - 1 as shadows
    pairs: int = 8
    #: share of the training split each pair trains on
    fraction: float = 0.5
    #: forget-class training images the attacker scores, per forgotten class (seeded sample, the
    #: same for every pair; about ``fraction`` of them are in a pair's training half)
    samples: int = 1000
    #: how the Gaussians' variances are fitted (``lira_stats.VARIANCES``)
    variance: str = "pooled"

    def __post_init__(self) -> None:
        if self.pairs < 3:
            raise ConfigError(f"pairs must be at least 3 (2 shadows per target), got {self.pairs}")
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.samples < 1:
            raise ConfigError(f"samples must be at least 1, got {self.samples}")
        if self.variance not in VARIANCES:
            raise ConfigError(f"variance must be one of {', '.join(VARIANCES)}, got {self.variance!r}")


def data_half(splits: Splits, fraction: float, seed: int) -> Splits:
    """``splits`` with its training data cut to a seeded random ``fraction``."""
    gen = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(splits.train), generator=gen)[: round(fraction * len(splits.train))]
    return Splits(
        splits.bundle,
        splits.forget_classes,
        splits.train.subset(keep.sort().values),
        splits.validation,
        splits.test,
        splits.val_fraction,
        seed,
    )


def train_pair(
    bundle: DatasetBundle, config: LiraConfig, splits: Splits, index: int, engine: Engine, log=main_print
) -> dict[str, Any]:
    """Train pair ``index``; returns, per role, its model and what ran: seconds (training or
    unlearning), epochs and seed, and for a method its resolved settings."""
    seed = config.seed + index
    half = data_half(splits, config.fraction, seed)
    spec = model_spec(config.arch, bundle, config.width)
    models: dict[str, Any] = {}
    for role, data in ((ORIGINAL, half.train), (ORACLE, half.retain_train), (ORACLE_2, half.retain_train)):
        engine.seed = seed + SEED_OFFSETS[role]
        model, seconds, epochs = train_model(spec, data, bundle, config.recipe, engine, f"pair {index} {role}")
        models[role] = (model, {"seconds": seconds, "epochs": len(epochs), "seed": engine.seed})
    engine.seed = seed  # the methods start from the original and run with its seed
    for method in config.methods:
        model, record = unlearn_model(
            models[ORIGINAL][0], method, half, engine, config.method_overrides.get(method), config.unlearn_batch_size
        )
        models[method] = (
            model,
            {"seconds": record.seconds, "epochs": len(record.log), "seed": seed, "settings": dict(record.settings)},
        )
    log(
        f"pair {index}: "
        + ", ".join(f"{role} {ran['seconds']:.1f} s / {ran['epochs']} ep" for role, (_, ran) in models.items())
    )
    return models


def measure(models: Mapping[str, tuple], targets, splits: Splits, engine: Engine) -> dict[str, dict[str, Any]]:
    """``phi`` on ``targets`` and the accuracies (forget samples, retained test data) of each model."""
    retain_test = splits.test.of_classes(splits.forget_classes, keep=False)
    result = {}
    for role, (model, ran) in models.items():
        out = outputs_on(model, targets, splits.bundle, engine)
        kept = outputs_on(model, retain_test, splits.bundle, engine)
        result[role] = {
            "phi": logit_confidence(out.logits, out.labels),
            "forget_acc": accuracy(out),
            "retain_test": accuracy(kept),
            **ran,
        }
    return result


def run_lira(bundle: DatasetBundle, config: LiraConfig, engine: Engine, log=main_print) -> dict[str, Any]:
    """Train the P pairs, attack each with the others as shadows; returns header, rows, scores and
    ``phi`` (role -> ``[P, n]``, for re-analysis; not part of the JSON)."""
    for method in config.methods:  # unknown names and settings fail before training
        lethe.method_settings(method, config.method_overrides.get(method))
    splits = make_splits(bundle, config.forget, config.val_fraction, config.seed)
    forget_train = splits.forget_train
    targets = per_class_sample(forget_train, config.samples, config.seed)
    start = time.perf_counter()
    per_pair = [
        measure(train_pair(bundle, config, splits, j, engine, log), targets, splits, engine)
        for j in range(config.pairs)
    ]
    roles = list(per_pair[0])
    phi = {role: np.stack([pair[role]["phi"] for pair in per_pair]) for role in roles}
    attacks = attack_table(phi, ORACLE, config.variance)
    nulls = {role: chance(phi[role], phi[ORACLE], config.variance, seed=config.seed) for role in attacks}
    rows = [lira_row(role, attacks.get(role), [pair[role] for pair in per_pair], nulls.get(role)) for role in roles]
    reference = nulls[ORACLE_2]
    names = ("attack_acc", "attack_auc", "pair_acc")
    spread = ", ".join(
        f"{name} {lo:.1f}-{hi:.1f}" for c, name in enumerate(names) for lo, hi in [reference.interval(c)]
    )
    header = {
        "dataset": bundle.name,
        "arch": config.arch,
        "width": config.width,
        "forget": [f"{c} ({bundle.classes[c]})" for c in splits.forget_classes],
        "recipe": asdict(config.recipe),
        "methods": list(config.methods),
        "method_overrides": config.method_overrides,
        "pairs (P; each attacked with the other P - 1 as shadows, K)": f"{config.pairs} (K = {config.pairs - 1})",
        "training images per pair": f"{round(config.fraction * len(splits.train))} "
        f"(a random {config.fraction:g} of {len(splits.train)})",
        "attacked forget-class training images": len(targets),
        "variance": {
            "pooled": "per sample, pooled over both hypotheses (floored at 0.1 x the median)",
            "fixed": "fixed (one per hypothesis)",
            "per_sample": "per sample",
        }[config.variance],
        "seeds (pair j)": "original seed + j (and every method), retrain seed + j + 1000, retrain-2 seed + j + 2000",
        "chance (95 % of the metrics over all within-pair swaps of retrain and retrain-2)": spread,
        "seed": config.seed,
        "seconds": round(time.perf_counter() - start, 1),
        **environment(engine),
    }
    scores = {
        role: {"method": a.scores_method.tolist(), "oracle": a.scores_oracle.tolist()} for role, a in attacks.items()
    }
    return {"header": header, "rows": rows, "scores": scores, "phi": phi}


def lira_row(
    role: str, attack: AttackResult | None, pairs: Sequence[Mapping[str, Any]], null: Chance | None = None
) -> dict[str, Any]:
    """One table row: the attack's accuracy / AUC against the oracle (and its permutation p-value),
    the models' means and what ran (epochs, seconds, seeds, a method's resolved settings)."""
    row: dict[str, Any] = {"method": role}
    if attack is not None:
        row.update(attack_acc=attack.accuracy, attack_auc=attack.auc, pair_acc=attack.pair_accuracy)
    if null is not None and attack is not None:
        row.update(p_perm=null.p_value(attack))
    row.update(
        mean_phi=float(np.mean([p["phi"].mean() for p in pairs])),
        forget_acc=float(np.mean([p["forget_acc"] for p in pairs])),
        retain_test=float(np.mean([p["retain_test"] for p in pairs])),
        epochs=float(np.mean([p["epochs"] for p in pairs])),
        seconds=float(np.mean([p["seconds"] for p in pairs])),
        epochs_per_pair=[p["epochs"] for p in pairs],
        seconds_per_pair=[round(float(p["seconds"]), 2) for p in pairs],
        seeds=[p["seed"] for p in pairs],
    )
    if "settings" in pairs[0]:
        row["settings"] = pairs[0]["settings"]
    return row


COLUMNS = (
    "attack_acc",
    "attack_auc",
    "pair_acc",
    "p_perm",
    "mean_phi",
    "forget_acc",
    "retain_test",
    "epochs",
    "seconds",
)

#: A method is told apart from the oracle when the attack labels at least this share of models
#: right, ranks them with at least this AUC (percent) and no more than this share of within-pair
#: role swaps reaches its AUC (``p_perm``).
TOLD_APART = (75.0, 90.0, 0.05)


def verdict(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Sentences saying which methods the attacker tells from the oracle (``TOLD_APART``), with the
    oracle-vs-oracle reference beside them."""
    acc, auc_, p = TOLD_APART
    told = [
        r["method"]
        for r in rows
        if r.get("attack_acc", 0) >= acc and r.get("attack_auc", 0) >= auc_ and r.get("p_perm", 0.0) <= p
    ]
    kept = [r["method"] for r in rows if "attack_acc" in r and r["method"] not in told]
    ref = next((r for r in rows if r["method"] == ORACLE_2 and "attack_acc" in r), None)
    lines = [
        f"Told apart from the retrain oracle (attack accuracy >= {acc:g} %, AUC >= {auc_:g} % and p_perm <= {p:g}): "
        + (", ".join(told) or "none")
        + ".",
        "Not told apart at this scale: " + (", ".join(kept) or "none") + ".",
    ]
    if ref is not None:
        lines.append(
            f"Reference (oracle vs oracle, {ORACLE_2}): attack accuracy {ref['attack_acc']:.2f} %, "
            f"AUC {ref['attack_auc']:.2f} %, pair accuracy {ref['pair_acc']:.2f} % "
            f"(p_perm {ref.get('p_perm', float('nan')):.3f})."
        )
    return lines


def settings_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per method row: its resolved settings and the epochs it ran in each pair."""
    return [
        f"- **{r['method']}**: settings {r['settings']}; epochs run per pair {r['epochs_per_pair']}; "
        f"seconds per pair {r['seconds_per_pair']}"
        for r in rows
        if "settings" in r
    ]


def write_lira(result: Mapping[str, Any], out: str | Path, title: str) -> str:
    """Write ``results.json`` and ``results.md`` under ``out``; returns the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if "phi" in result:
        phi = {role: np.asarray(v, np.float32) for role, v in result["phi"].items()}
        np.savez_compressed(out / "phi.npz", **phi)
        result = {k: v for k, v in result.items() if k != "phi"}
    write_json_atomic(out / "results.json", result)
    lines = [f"# {title}", "", *header_lines(result["header"]), ""]
    lines += [
        "Columns: `attack_acc`, share of held-out models (method outputs and oracles) the attacker labels "
        "right; `attack_auc`, ROC AUC of its scores; `pair_acc`, share of pairs where the method's output "
        "scores above its own oracle (all percent, 50 = indistinguishable from the oracle). `retrain-2` is "
        "a second oracle from another seed (the oracle-vs-oracle reference: what chance gives with these P). "
        "`p_perm`: share of the within-pair swaps of the row's model and the oracle (all 2^P) whose AUC "
        "reaches the row's (the permutation p-value; its smallest value is 2 / 2^P). "
        "`mean_phi`: mean logit confidence log(p / (1 - p)) of the true class on the attacked images; "
        "`forget_acc`: accuracy on them; `retain_test`: accuracy on the retained classes' test images; "
        "`epochs`: epochs run; `seconds`: training or unlearning time (means over pairs). "
        "`phi.npz` holds every model's phi (role -> [P, n]).",
        "",
        markdown_table(result["rows"], COLUMNS),
        *verdict(result["rows"]),
        "",
        "What ran (resolved method settings, epochs and seconds of each pair):",
        "",
        *settings_lines(result["rows"]),
        "",
    ]
    text = "\n".join(lines)
    write_text_atomic(out / "results.md", text)
    return text


@dataclass(kw_only=True)
class LiraBenchConfig(BenchConfigBase):
    """A LiRA config YAML (``benchmarks/configs/lira/``): the shared benchmark keys
    (``lethe_vision.bench_config``; one forget set, one seed) and the attack's own."""

    task: str = "lira"
    model: ModelSection
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    val_fraction: float = lethe.setting(0.05, gt=0, lt=1)
    #: number of pairs P; each is attacked with the other P - 1 as shadows
    pairs: int = lethe.setting(8, ge=3)
    #: share of the training split each pair trains on
    fraction: float = lethe.setting(0.5, gt=0, le=1)
    #: forget-class training images the attacker scores, per forgotten class
    samples: int = lethe.setting(1000, ge=1)
    #: how the Gaussians' variances are fitted (``lira_stats.VARIANCES``)
    variance: str = lethe.setting("pooled", choices=VARIANCES)

    def __post_init__(self) -> None:
        if len(self.forget_sets) != 1 or len(self.seeds) != 1:
            raise ConfigError("a LiRA config takes one forget set and one seed (forget_sets: [X], seeds: [N])")


def config_from_yaml(cfg: Mapping[str, Any], bundle: DatasetBundle) -> LiraConfig:
    """``LiraConfig`` from a YAML mapping (``LiraBenchConfig``'s keys, ``benchmarks/configs/lira/``;
    ``lethe_vision.bench_config.run_settings``)."""
    return lira_config(read_config(LiraBenchConfig, cfg), bundle)


def lira_config(config: LiraBenchConfig, bundle: DatasetBundle) -> LiraConfig:
    """The attack run of a read config (``run_settings``), its forget classes named in ``bundle``."""
    return run_settings(LiraConfig, config, forget=parse_classes(class_list(config.forget_sets[0]), bundle.classes))


def main(argv: Sequence[str] | None = None) -> int:
    from lethe_vision.datasets import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("config", help="YAML config, e.g. benchmarks/configs/lira/fashion-mnist-small-cnn.yaml")
    parser.add_argument("--out", default=None, help="output folder (default: benchmarks/results/<config out>)")
    parser.add_argument("--pairs", type=int, default=None, help="override the config's number of pairs")
    args = parser.parse_args(argv)
    try:
        cfg = yaml.safe_load(Path(args.config).read_text())
        if args.pairs is not None:
            cfg["pairs"] = args.pairs
        checked = read_config(LiraBenchConfig, cfg)  # every key checked before the data loads
        bundle = load_dataset(checked.dataset, checked.data_root)
        config = lira_config(checked, bundle)
        engine = Engine(seed=config.seed, progress=False)
        result = run_lira(bundle, config, engine)
    except LetheError as err:
        print(f"lethe_classification.lira: error: {err}", file=sys.stderr)
        return 2
    argv = sys.argv[1:] if argv is None else list(argv)
    # "config file", not "config": results_pages.py reads "config" as a benchmarks/run.py config
    result["header"] = {
        "command": "python -m lethe_classification.lira " + shlex.join(argv),
        "config file": args.config,
        **result["header"],
        **({"note": cfg["note"]} if cfg.get("note") else {}),
    }
    out = Path(args.out) if args.out else Path("benchmarks/results") / cfg["out"]
    print(write_lira(result, out, cfg.get("title", f"LiRA-style attack on {bundle.name}")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
