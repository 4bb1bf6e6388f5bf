"""Benchmark reports: Markdown tables (metrics, where the forgotten pixels went, per-class IoU),
colour overlays of test predictions, and a per-class IoU plot. Every file is written atomically."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lethe.io import atomic_path
from lethe_vision.report import fmt_cell, header_lines, pyplot

#: Columns of the main table, in order.
COLUMNS = (
    "miou_retain",
    "miou_retain_drop",
    "iou_forget",
    "recall_forget",
    "recall_forget_train",
    "predicted_forget",
    "pixel_accuracy",
    "pixel_accuracy_retain",
    "forget_to_gap",
    "seconds",
    "seconds_vs_retrain",
)

#: The usual CamVid colours (SegNet), by class name.
CAMVID_COLOURS = {
    "Sky": (128, 128, 128),
    "Building": (128, 0, 0),
    "Pole": (192, 192, 128),
    "Road": (128, 64, 128),
    "Pavement": (60, 40, 222),
    "Tree": (128, 128, 0),
    "SignSymbol": (192, 128, 128),
    "Fence": (64, 64, 128),
    "Car": (64, 0, 128),
    "Pedestrian": (64, 64, 0),
    "Bicyclist": (0, 128, 192),
}


def palette(classes: Sequence[str]) -> np.ndarray:
    """``[256, 3]`` uint8 colours: CamVid's where the names match, else the PASCAL VOC bit pattern;
    index 255 (void) is black."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for i in range(255):
        r = g = b = 0
        c = i + 1 if i else 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours[i] = (r, g, b)
    for i, name in enumerate(classes):
        if name in CAMVID_COLOURS:
            colours[i] = CAMVID_COLOURS[name]
    colours[255] = 0
    return colours


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(fmt_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_tables(run: Mapping[str, Any], classes: Sequence[str]) -> str:
    """The three tables of one forget set: metrics, where the forgotten pixels went, per-class IoU."""
    rows = run["rows"]
    forget = run["forget"]
    names = ", ".join(f"{classes[c]} ({c})" for c in forget)
    out = [f"## Forgetting {names}", ""]
    out.append(markdown_table(["method", *COLUMNS], [[r["method"], *(r.get(c) for c in COLUMNS)] for r in rows]))
    out.append(f"Where the {names} test pixels went (percent predicted as each class):\n")
    out.append(markdown_table(["method", *classes], [[r["method"], *r["forget_to"]] for r in rows]))
    out.append("Per-class test IoU (percent):\n")
    out.append(markdown_table(["method", *classes], [[r["method"], *r["iou"]] for r in rows]))
    return "\n".join(out)


def write_report(
    path: str | os.PathLike,
    title: str,
    header: Mapping[str, Any],
    runs: Sequence[Mapping],
    classes: Sequence[str],
    notes: Sequence[str] = (),
) -> str:
    """Settings list, notes, then the tables of every forget set; returns the text."""
    lines = [f"# {title}", ""]
    lines += header_lines(header)
    lines += ["", *notes, ""] if notes else [""]
    lines.append(
        "Columns: test-split percentages from one confusion matrix (void excluded). `miou_retain_drop` = "
        "original minus this model; `recall_forget` = forgotten-class pixels still predicted as that class "
        "(`_train`: on the forget set itself); `predicted_forget` = share of all pixels labelled as a "
        "forgotten class; `forget_to_gap` = total-variation distance (points) between where this model "
        "sends the forgotten pixels and where the retrain oracle does; `seconds` = wall time of training "
        "(original, retrain) or of the unlearning step alone.\n"
    )
    lines += [run_tables(run, classes) for run in runs]
    text = "\n".join(lines)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)


def plot_overlays(
    path: str | os.PathLike,
    images: Sequence[np.ndarray],
    truth: Sequence[np.ndarray],
    predictions: Mapping[str, Sequence[np.ndarray]],
    classes: Sequence[str],
    title: str,
) -> None:
    """One row per test image: image, ground truth, then each model's prediction (colour maps)."""
    plt = pyplot()
    colours = palette(classes)
    columns = ["image", "ground truth", *predictions]
    n = len(images)
    h, w = truth[0].shape if n else (1, 1)
    fig, axes = plt.subplots(n, len(columns), figsize=(1.9 * len(columns) * w / h, 1.9 * n + 0.9), squeeze=False)
    for i in range(n):
        panels = [images[i], colours[truth[i]], *(colours[p[i]] for p in predictions.values())]
        for j, panel in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=8)
    from matplotlib.patches import Patch

    handles = [Patch(color=colours[c] / 255.0, label=name) for c, name in enumerate(classes)]
    handles.append(Patch(color=(0, 0, 0), label="void"))
    fig.legend(handles=handles, loc="lower center", ncol=min(12, len(handles)), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    _save(fig, path)


def plot_iou(path: str | os.PathLike, run: Mapping[str, Any], classes: Sequence[str], title: str) -> None:
    """Grouped bars of per-class test IoU, one bar per model; forgotten classes shaded."""
    plt = pyplot()
    rows = run["rows"]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(classes)), 4))
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs = [c + (i - (len(rows) - 1) / 2) * width for c in range(len(classes))]
        ax.bar(xs, [0 if math.isnan(v) else v for v in row["iou"]], width, label=row["method"])
    for c in run["forget"]:
        ax.axvspan(c - 0.45, c + 0.45, color="red", alpha=0.08)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes, rotation=30, ha="right")
    ax.set_ylabel("test IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(4, len(rows)))
    fig.tight_layout()
    _save(fig, path)
