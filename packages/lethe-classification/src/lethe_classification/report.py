"""Benchmark reports: the Markdown table and the per-class accuracy plot."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from lethe.io import atomic_path, write_text_atomic

COLUMNS = (
    "forget_train", "retain_train", "forget_test", "retain_test", "mia_efficacy", "avg_gap", "acc_gap",
    "probe_forget", "relearn_steps", "seconds", "seconds_vs_retrain",
)  # fmt: skip


def _wrapped(title: str, width: int = 80) -> str:
    """A long plot title over several lines, so the figure does not cut it off."""
    return "\n".join(textwrap.wrap(title, width))


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    _pyplot().close(fig)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """A Markdown table with one row per model (``method`` first)."""
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['method']} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_report(path: str | os.PathLike, title: str, header: dict[str, Any], rows: Sequence[dict]) -> str:
    """Write the Markdown report (settings list then table) atomically; returns its text."""
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    text = "\n".join(lines) + "\n\n" + markdown_table(rows)
    write_text_atomic(path, text)
    return text


def plot_per_class(
    path: str | os.PathLike, classes: Sequence[str], rows: Sequence[dict], forget: Sequence[int], title: str
) -> None:
    """Grouped bars of per-class test accuracy, one group per class, one bar per model."""
    plt = _pyplot()
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
    _save(fig, path)


def column_stats(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> dict[str, list[float]]:
    """``{column: [mean, std, n]}`` over the rows that measured it (a number, not NaN)."""
    import numpy as np

    stats = {}
    for c in columns:
        values = [float(r[c]) for r in rows if isinstance(r.get(c), (int, float)) and not math.isnan(r[c])]
        if values:
            stats[c] = [float(np.mean(values)), float(np.std(values)), len(values)]
    return stats


def aggregate(runs: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> dict[str, dict[str, dict]]:
    """Mean and standard deviation of every column per method, grouped by the number of
    forgotten classes: ``{"1 class": {"delete": {"forget_test": [mean, std, n], ...}}}``."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        size = len(run["forget"])
        group = grouped.setdefault(f"{size} class{'es' if size > 1 else ''}", {})
        for row in run["rows"]:
            group.setdefault(row["method"], []).append(row)
    return {g: {m: column_stats(rows, columns) for m, rows in methods.items()} for g, methods in grouped.items()}


def mean_std_cells(stats: Mapping[str, list[float]], columns: Sequence[str]) -> list[str]:
    """Table cells ``mean ± std`` of ``column_stats`` output; "-" where a column was not measured."""
    return [f"{stats[c][0]:.2f} ± {stats[c][1]:.2f}" if c in stats else "-" for c in columns]


def aggregate_markdown(summary: dict[str, dict[str, dict]], columns: Sequence[str] = COLUMNS) -> str:
    """One table per group, cells ``mean ± std``."""
    out = []
    for group, methods in summary.items():
        n = max((v[2] for cols in methods.values() for v in cols.values()), default=0)
        out.append(f"### Forgetting {group} at once (mean ± std over {n} runs)\n")
        out.append("| method | " + " | ".join(columns) + " |")
        out.append("|---" * (len(columns) + 1) + "|")
        for method, cols in methods.items():
            cells = mean_std_cells(cols, columns)
            out.append(f"| {method} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot_scatter(path: str | os.PathLike, runs: Sequence[dict[str, Any]], title: str) -> None:
    """retain_test against forget_test for every model of every run, one colour per method."""
    plt = _pyplot()
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
    _save(fig, path)
