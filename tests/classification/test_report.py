"""lethe_classification.report: the suite tables, complete and merged from parts still running."""

from lethe_classification.bench import write_suite
from lethe_classification.report import aggregate, method_order, suite_markdown
from lethe_classification.rewrite import rewrite_classification

CLASSES = ["airplane", "automobile", "bird", "cat"]
COLUMNS = ("forget_test", "retain_test")


def _run(seed, forget, **methods):
    rows = [{"method": m, "forget_test": f, "retain_test": r} for m, (f, r) in methods.items()]
    return {"header": {"seed": seed}, "classes": CLASSES, "forget": forget, "rows": rows}


def test_a_complete_suite_has_the_mean_table_only():
    runs = [_run(0, [0], delete=(0.0, 90.0), svd=(1.0, 88.0)), _run(0, [3], delete=(2.0, 92.0), svd=(3.0, 86.0))]
    text = suite_markdown(runs, aggregate(runs), COLUMNS)
    assert "(mean ± std over 2 runs)" in text and "| method | forget_test | retain_test |" in text
    assert "| svd | 2.00 ± 1.00 | 87.00 ± 1.00 |" in text
    assert "Each run" not in text and "| runs |" not in text


def test_a_partial_suite_counts_each_rows_runs_and_shows_every_run():
    runs = [_run(0, [3], delete=(2.0, 92.0), svd=(3.0, 86.0)), _run(1, [0], delete=(0.0, 90.0))]
    text = suite_markdown(runs, aggregate(runs), COLUMNS)
    assert "mean ± std over each method's runs, column runs" in text
    assert "| delete | 2 | 1.00 ± 1.00 | 91.00 ± 1.00 |" in text
    assert "| svd | 1 | 3.00 ± 0.00 | 86.00 ± 0.00 |" in text
    assert "| method | seed 0, cat | seed 1, airplane |" in text
    assert "| delete | 2.00 / 92.00 | 0.00 / 90.00 |" in text and "| svd | 3.00 / 86.00 | - |" in text


def test_rewriting_a_partial_suite_gives_back_the_same_report(tmp_path):
    runs = [_run(0, [3], delete=(2.0, 92.0), svd=(3.0, 86.0)), _run(1, [0], delete=(0.0, 90.0))]
    for run in runs:
        for row in run["rows"]:
            row["per_class_test"] = [50.0] * len(CLASSES)
    write_suite(runs, tmp_path, "t", {"dataset": "x"})
    written = (tmp_path / "results.md").read_text()
    assert "Each run" in written
    rewrite_classification(tmp_path)
    assert (tmp_path / "results.md").read_text() == written


def test_methods_chosen_per_forget_set_size_are_not_a_partial_suite():
    runs = [_run(0, [0], delete=(0.0, 90.0), svd=(1.0, 88.0)), _run(0, [0, 3], delete=(1.0, 91.0))]
    text = suite_markdown(runs, aggregate(runs), COLUMNS)
    assert "Forgetting 2 classes at once (mean ± std over 1 runs)" in text
    assert "Each run" not in text and "| runs |" not in text


def test_parts_with_different_methods_merge_in_the_runs_order():
    runs = [
        _run(0, [0], original=(90.0, 90.0), delete=(0.0, 90.0), salun=(0.0, 89.0)),
        _run(0, [3], original=(80.0, 91.0), delete=(0.0, 92.0), svd=(1.0, 88.0), salun=(0.0, 91.0), ssd=(80.0, 91.0)),
    ]
    assert method_order(runs) == ["original", "delete", "svd", "salun", "ssd"]
    text = suite_markdown(runs, aggregate(runs), COLUMNS)
    mean_table, each_run = text.split("### Each run")
    for table in (mean_table, each_run):
        assert [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| ") and "---" not in line][
            1:
        ] == ["original", "delete", "svd", "salun", "ssd"]
