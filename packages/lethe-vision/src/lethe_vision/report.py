"""Report pieces every image task shares: Markdown tables of result rows, ``mean ± std`` cells,
and PNG figures saved atomically."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from lethe.io import atomic_path

#: The accuracy columns every class-forgetting report opens with (methods.md s.3): forgotten and
#: kept classes on training and test images, and the confidence SVC_MIA attack (``mia_efficacy``).
ACCURACY_COLUMNS = ("forget_train", "retain_train", "forget_test", "retain_test", "mia_efficacy")


def plain(value: Any) -> Any:
    """``value`` as the JSON results hold it (tuples as lists, recursively), so that a report
    written at run time and one rewritten from ``results.json`` print the same text."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def header_lines(header: Mapping[str, Any]) -> list[str]:
    """A report's settings list: ``- **key**: value`` per header entry (``plain`` values)."""
    return [f"- **{k}**: {plain(v)}" for k, v in header.items()]


def fmt_cell(value: Any) -> str:
    """A table cell: floats to two decimals, "-" for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], first: str = "method") -> str:
    """A Markdown table with one row per model (the ``first`` key, ``method`` unless named, first)."""
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row[first]} | " + " | ".join(fmt_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def column_stats(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, list[float]]:
    """``{column: [mean, std, n]}`` over the rows that measured it (a number, not NaN)."""
    import numpy as np

    stats = {}
    for c in columns:
        values = [float(r[c]) for r in rows if isinstance(r.get(c), (int, float)) and not math.isnan(r[c])]
        if values:
            stats[c] = [float(np.mean(values)), float(np.std(values)), len(values)]
    return stats


def mean_std_cells(stats: Mapping[str, list[float]], columns: Sequence[str]) -> list[str]:
    """Table cells ``mean ± std`` of ``column_stats`` output; "-" where a column was not measured."""
    return [f"{stats[c][0]:.2f} ± {stats[c][1]:.2f}" if c in stats else "-" for c in columns]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save ``fig`` as PNG atomically and close it; a figure without a layout engine (not made with
    ``layout="constrained"``) is tight-laid-out first."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    pyplot().close(fig)
