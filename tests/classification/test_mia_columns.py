"""The SVC_MIA attack columns: evaluated, reported, and left out of reports written before them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lethe.engine import Engine
from lethe.errors import ConfigError
from lethe.metrics import MIA_COLUMNS
from lethe_classification.report import COLUMNS, aggregate, aggregate_markdown, present_columns, write_report
from lethe_classification.rewrite import rewrite_classification
from lethe_vision.datasets import load_dataset
from lethe_vision.pipeline import EvalOptions, build_checked, eval_options, evaluate_model, make_splits, model_spec

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "classification"
NEW = ("mia_correctness", "mia_entropy", "mia_m_entropy", "mia_prob")


def test_evaluate_model_reports_every_attack(tiny_spec):
    bundle = load_dataset(tiny_spec)
    splits = make_splits(bundle, [1])
    model = build_checked(model_spec("small-cnn", bundle, 4))
    metrics = evaluate_model(
        model, splits, Engine(progress=False), EvalOptions(probe=False, relearn_per_class=0)
    ).metrics
    assert set(MIA_COLUMNS.values()) <= set(metrics)
    confidence_only = EvalOptions(probe=False, relearn_per_class=0, mia_attacks=("confidence",))
    only = evaluate_model(model, splits, Engine(progress=False), confidence_only).metrics
    assert only["mia_efficacy"] == metrics["mia_efficacy"] and not set(NEW) & set(only)


def test_eval_options_check_the_attacks():
    assert eval_options({"mia_attacks": ["confidence", "entropy"]}).mia_attacks == ("confidence", "entropy")
    with pytest.raises(ConfigError, match="unknown"):
        eval_options({"mia_attacks": ["confidence", "loss"]})
    with pytest.raises(ConfigError, match="must include confidence"):
        eval_options({"mia_attacks": ["entropy"]})


def _row(method: str, new: bool) -> dict:
    row = {"method": method, **{c: 1.0 for c in COLUMNS if c not in NEW}}
    return {**row, **({c: 2.0 for c in NEW} if new else {})}


def test_report_shows_the_new_columns_only_when_measured(tmp_path):
    new = write_report(tmp_path / "new.md", "t", {}, [_row("a", True)])
    assert all(f"| {c} |" in new or f" {c} |" in new for c in NEW)
    old = write_report(tmp_path / "old.md", "t", {}, [_row("a", False)])
    assert not any(c in old for c in NEW) and "mia_efficacy" in old
    # a column every row lacks but that is not new (probe off) still shows, as "-"
    assert "probe_forget" in present_columns([{"method": "a"}])
    runs = [{"forget": [1], "rows": [_row("a", False)]}]
    assert not any(c in aggregate_markdown(aggregate(runs)) for c in NEW)
    assert all(c in aggregate_markdown(aggregate([{"forget": [1], "rows": [_row("a", True)]}])) for c in NEW)


@pytest.mark.parametrize("folder", ["fashion-mnist-small-cnn", "fashion-mnist-delete-bn-cpu"])
def test_rewriting_a_committed_report_changes_nothing(tmp_path, folder):
    src = RESULTS / folder
    if not src.is_dir():
        pytest.skip(f"{src} is not committed")
    out = tmp_path / folder
    shutil.copytree(src, out)
    rewrite_classification(out)
    for name in ("results.md", "summary.json"):
        if (src / name).is_file():
            assert (out / name).read_bytes() == (src / name).read_bytes(), name
