"""Benchmark reports: the Markdown table and the per-class accuracy plot."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from lethe.io import atomic_path, write_text_atomic

COLUMNS = (
    "forget_train", "retain_train", "forget_test", "retain_test", "mia_efficacy", "avg_gap",
    "probe_forget", "relearn_steps", "seconds", "seconds_vs_retrain",
)  # fmt: skip


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(4, len(rows)))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
