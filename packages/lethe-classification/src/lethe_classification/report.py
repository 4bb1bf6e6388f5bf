"""Classification benchmark reports: the Markdown report, the ``mean ± std`` tables over runs, the
per-class accuracy plot and the forget/retain scatter."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from lethe.io import write_text_atomic
from lethe_vision.report import (
    ACCURACY_COLUMNS,
    column_stats,
    fmt_cell,
    header_lines,
    markdown_table,
    mean_std_cells,
    pyplot,
    save_figure,
)

COLUMNS = (
    *ACCURACY_COLUMNS,
    "mia_correctness",
    "mia_entropy",
    "mia_m_entropy",
    "mia_prob",
    "avg_gap",
    "acc_gap",
    "probe_forget",
    "relearn_steps",
    "seconds",
    "seconds_vs_retrain",
)


#: Columns results written before them lack (the SVC_MIA attacks other than confidence).
OPTIONAL_COLUMNS = ("mia_correctness", "mia_entropy", "mia_m_entropy", "mia_prob")


def present_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> tuple[str, ...]:
    """``columns`` less the ``OPTIONAL_COLUMNS`` no row has: results written before those existed
    keep their tables when the report is rewritten (other columns show "-" where missing)."""
    return tuple(c for c in columns if c not in OPTIONAL_COLUMNS or any(c in row for row in rows))


def _wrapped(title: str, width: int = 80) -> str:
    """A long plot title over several lines, so the figure does not cut it off."""
    return "\n".join(textwrap.wrap(title, width))


def write_report(path: str | os.PathLike, title: str, header: dict[str, Any], rows: Sequence[dict]) -> str:
    """Write the Markdown report (settings list then table) atomically; returns its text."""
    lines = [f"# {title}", ""]
    lines += header_lines(header)
    text = "\n".join(lines) + "\n\n" + markdown_table(rows, present_columns(rows))
    write_text_atomic(path, text)
    return text


def plot_per_class(
    path: str | os.PathLike, classes: Sequence[str], rows: Sequence[dict], forget: Sequence[int], title: str
) -> None:
    """Grouped bars of per-class test accuracy, one group per class, one bar per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(classes)), 4))
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs = [c + (i - (len(rows) - 1) / 2) * width for c in range(len(classes))]
        ax.bar(xs, row["per_class_test"], width, label=row["method"])
    for c in forget:
        ax.axvspan(c - 0.45, c + 0.45, color="red", alpha=0.08)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(_wrapped(title), fontsize=9)
    ax.legend(fontsize=8, ncol=min(7, len(rows)), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    save_figure(fig, path)


def aggregate(runs: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> dict[str, dict[str, dict]]:
    """Mean and standard deviation of every column per method, grouped by the number of
    forgotten classes: ``{"1 class": {"delete": {"forget_test": [mean, std, n], ...}}}``."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        size = len(run["forget"])
        group = grouped.setdefault(f"{size} class{'es' if size > 1 else ''}", {})
        for row in run["rows"]:
            group.setdefault(row["method"], []).append(row)
    order = method_order(runs)
    return {g: {m: column_stats(methods[m], columns) for m in order if m in methods} for g, methods in grouped.items()}


def method_order(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every method of ``runs`` once, each run's row order kept: a method first seen in a later run
    goes right after the method before it there (parts that ran different methods merge in the
    config's order)."""
    order: list[str] = []
    for run in runs:
        before = -1
        for row in run["rows"]:
            if row["method"] not in order:
                order.insert(before + 1, row["method"])
            before = order.index(row["method"])
    return order


def run_counts(methods: Mapping[str, Mapping[str, list[float]]]) -> dict[str, int]:
    """How many runs each method's row of one ``aggregate`` group averages."""
    return {m: max((v[2] for v in cols.values()), default=0) for m, cols in methods.items()}


def aggregate_markdown(summary: dict[str, dict[str, dict]], columns: Sequence[str] | None = None) -> str:
    """One table per group, cells ``mean ± std``; ``columns`` defaults to ``COLUMNS`` less the
    ``OPTIONAL_COLUMNS`` no method measured."""
    if columns is None:
        measured = {c for methods in summary.values() for cols in methods.values() for c in cols}
        columns = tuple(c for c in COLUMNS if c in measured or c not in OPTIONAL_COLUMNS)
    out = []
    for group, methods in summary.items():
        counts = run_counts(methods)
        mixed = len(set(counts.values())) > 1  # a suite merged from parts, some not run yet
        over = "each method's runs, column runs" if mixed else f"{max(counts.values(), default=0)} runs"
        rows = [
            {"method": m, "runs": counts[m], **dict(zip(columns, mean_std_cells(cols, columns), strict=True))}
            for m, cols in methods.items()
        ]
        out.append(f"### Forgetting {group} at once (mean ± std over {over})\n")
        out.append(markdown_table(rows, ("runs", *columns) if mixed else columns))
    return "\n".join(out)


def has_partial_methods(summary: Mapping[str, Mapping[str, Mapping[str, list[float]]]]) -> bool:
    """Whether the methods of one ``aggregate`` group average different numbers of runs (a suite
    merged from parts while some still run)."""
    return any(len(set(run_counts(methods).values())) > 1 for methods in summary.values())


def runs_markdown(runs: Sequence[Mapping[str, Any]], columns: Sequence[str] = ("forget_test", "retain_test")) -> str:
    """One table of every run's own figures: a row per method, a column per run (seed and forget
    set), cells ``columns`` joined by " / "; "-" where the method has not run there."""
    rows = [{"method": m} for m in method_order(runs)]
    labels = []
    for run in runs:
        names = run.get("classes")
        label = f"seed {run['header']['seed']}, " + ", ".join(names[c] if names else str(c) for c in run["forget"])
        labels.append(label)
        ran = {row["method"]: row for row in run["rows"]}
        for row in rows:
            got = ran.get(row["method"])
            row[label] = " / ".join(fmt_cell(got.get(c)) for c in columns) if got else "-"
    return f"### Each run: {' / '.join(columns)}\n\n" + markdown_table(rows, labels)


def suite_markdown(
    runs: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], columns: Sequence[str] | None = None
) -> str:
    """A suite's tables: ``aggregate_markdown`` of its ``summary`` (``aggregate(runs)``), and where
    ``has_partial_methods``, ``runs_markdown`` after it."""
    text = aggregate_markdown(summary, columns)
    return text + "\n" + runs_markdown(runs) if has_partial_methods(summary) else text


def plot_scatter(path: str | os.PathLike, runs: Sequence[dict[str, Any]], title: str) -> None:
    """retain_test against forget_test for every model of every run, one colour per method."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    methods = list(dict.fromkeys(row["method"] for run in runs for row in run["rows"]))
    cmap = plt.get_cmap("tab20")
    for i, method in enumerate(methods):
        rows = [row for run in runs for row in run["rows"] if row["method"] == method]
        pts = [(row["forget_test"], row["retain_test"]) for row in rows]
        ax.scatter(*zip(*pts, strict=True), label=method, color=cmap(i % 20), s=30, alpha=0.8)
    ax.set_xlabel("forget_test accuracy (%)  (lower = more forgotten)")
    ax.set_ylabel("retain_test accuracy (%)")
    ax.set_title(_wrapped(title), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)
