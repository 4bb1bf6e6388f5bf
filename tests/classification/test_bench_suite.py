"""lethe_classification.bench: choosing the strongest baselines from earlier runs."""

import math

import pytest

from lethe.errors import ConfigError
from lethe_classification.bench import derive_columns, strongest_baselines


def _run(**gaps):
    return {"rows": [{"method": m, "avg_gap": g} for m, g in gaps.items()]}


def test_strongest_baselines_ranks_by_mean_gap_and_skips_the_papers_methods():
    runs = [
        _run(original=9, retrain=0, delete=0.1, svd=0.2, scrub=1.0, salun=3.0, finetune=2.0),
        _run(original=9, retrain=0, delete=0.1, svd=0.2, scrub=4.0, salun=1.0, finetune=2.0),
    ]
    assert strongest_baselines(runs, 2) == ["finetune", "salun"]  # means 2.0, 2.0 (name order), scrub 2.5
    assert strongest_baselines(runs, 1, exclude=["finetune"]) == ["salun"]


def test_strongest_baselines_needs_enough_earlier_baselines():
    with pytest.raises(ConfigError, match="ran only 1"):
        strongest_baselines([_run(retrain=0, delete=0.1, scrub=1.0)], 2)


def test_derive_columns_against_the_oracle_row():
    metrics = ("forget_train", "retain_train", "forget_test", "retain_test", "mia_efficacy")
    rows = [
        {"method": "original", **dict(zip(metrics, (80, 70, 78, 68, 20), strict=True)), "seconds": 30.0},
        {"method": "retrain", **dict(zip(metrics, (0, 72, 0, 70, 100), strict=True)), "seconds": 60.0},
        {"method": "delete", **dict(zip(metrics, (1, 71, 2, 69, 0), strict=True)), "seconds": 6.0},
    ]
    derive_columns(rows)
    original, oracle, delete = rows
    assert oracle["avg_gap"] == oracle["acc_gap"] == 0.0 and oracle["seconds_vs_retrain"] == 1.0
    assert delete["acc_gap"] == pytest.approx((1 + 1 + 2 + 1) / 4)  # the four accuracies only
    assert delete["avg_gap"] == pytest.approx((1 + 1 + 2 + 1 + 100) / 5)  # and the MIA
    assert original["seconds_vs_retrain"] == 0.5 and delete["seconds_vs_retrain"] == 0.1
    before = [dict(r) for r in rows]
    derive_columns(rows)
    assert rows == before  # recomputing changes nothing


def test_derive_columns_without_an_oracle_leaves_the_gaps_empty_and_the_tables_show_dashes():
    from lethe_classification.report import aggregate, aggregate_markdown

    rows = [
        {"method": "original", "forget_test": 80.0, "retain_test": 70.0, "seconds": 30.0},
        {"method": "svd", "forget_test": 1.0, "retain_test": 69.0, "seconds": 3.0},
    ]
    derive_columns(rows)
    assert all(math.isnan(r[c]) for r in rows for c in ("avg_gap", "acc_gap", "seconds_vs_retrain"))
    summary = aggregate([{"forget": [3], "rows": rows}])
    assert "avg_gap" not in summary["1 class"]["svd"] and summary["1 class"]["svd"]["forget_test"][0] == 1.0
    table = aggregate_markdown(summary)
    assert "nan" not in table and "| svd | - | - | 1.00 ± 0.00 | 69.00 ± 0.00 |" in table


def test_variants_run_a_method_with_their_own_settings():
    from lethe_classification.bench import BenchConfig

    config = BenchConfig(
        arch="small-cnn",
        forget=(1,),
        methods=("delete", "delete-frozen-bn"),
        method_overrides={"delete": {"epochs": 3}},
        variants={"delete-frozen-bn": {"method": "delete", "overrides": {"freeze_bn": True}}},
    )
    assert config.resolve("delete") == ("delete", {"epochs": 3})
    assert config.resolve("delete-frozen-bn") == ("delete", {"epochs": 3, "freeze_bn": True})
    bad = BenchConfig(arch="small-cnn", forget=(1,), variants={"x": {"overrides": {}}})
    with pytest.raises(ConfigError, match="variants.x takes method and overrides"):
        bad.resolve("x")
