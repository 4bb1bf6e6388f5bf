"""Backdoor benchmark reports: the Markdown tables and two figures (ASR against the defender's
budget; a clean image, its stamped version and the predictions before and after a defence)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lethe.io import write_text_atomic
from lethe_vision.report import header_lines, markdown_table, pyplot, save_figure

COLUMNS = ("clean_acc", "asr", "robust_acc", "delta_clean_acc", "stamped", "clean", "seconds")
SWEEP_COLUMNS = ("budget", "stamped", "clean", "clean_acc", "asr", "robust_acc", "seconds")


def checks(result: Mapping[str, Any]) -> list[str]:
    """The issue's acceptance criteria, evaluated on this run (one line each)."""
    rows = {row["method"]: row for row in result["rows"]}
    focus = result.get("focus")
    lines = []
    backdoored = rows.get("backdoored")
    if backdoored is not None:
        ok = backdoored["asr"] >= 95.0
        lines.append(f"backdoored asr >= 95 %: {'yes' if ok else 'NO'} ({backdoored['asr']:.2f})")
    if focus in rows and backdoored is not None:
        row = rows[focus]
        lines.append(f"{focus} asr <= 2 %: {'yes' if row['asr'] <= 2.0 else 'NO'} ({row['asr']:.2f})")
        delta = row["clean_acc"] - backdoored["clean_acc"]
        lines.append(
            f"{focus} clean_acc within 1.5 points of the backdoored model's: "
            f"{'yes' if abs(delta) <= 1.5 else 'NO'} ({delta:+.2f})"
        )
    return lines


def markdown(result: Mapping[str, Any], title: str) -> str:
    """Title, settings header, checks, the defences table and the budget sweep table."""
    lines = [f"# {title}", ""]
    lines += header_lines(result["header"])
    lines += ["", "## Checks", "", *(f"- {line}" for line in checks(result))]
    main = result["budget"]
    lines += [
        "",
        f"## Defences at budget {main['budget']} ({main['stamped']} stamped, {main['clean']} clean images, "
        f"source: {main['source']})",
        "",
        "`delta_clean_acc`: change of clean accuracy from the backdoored model; `seconds`: wall time of the "
        "defence alone (training time for the backdoored model).",
        "",
        markdown_table(result["rows"], COLUMNS),
    ]
    for method in dict.fromkeys(row["method"] for row in result["sweep"]):
        rows = [row for row in result["sweep"] if row["method"] == method]
        lines += [f"## {method}: ASR as the defender's budget shrinks", "", markdown_table(rows, SWEEP_COLUMNS)]
    lines += ["![ASR against budget](asr_vs_budget.png)", "", "![Examples](examples.png)", ""]
    return "\n".join(lines)


def write_markdown(path: str | os.PathLike, result: Mapping[str, Any], title: str) -> str:
    text = markdown(result, title)
    write_text_atomic(path, text)
    return text


def plot_budget_sweep(path: str | os.PathLike, result: Mapping[str, Any], title: str) -> None:
    """ASR (and clean accuracy) after each swept defence against the number of stamped samples."""
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    backdoored = next((r for r in result["rows"] if r["method"] == "backdoored"), None)
    for method in dict.fromkeys(row["method"] for row in result["sweep"]):
        rows = sorted((r for r in result["sweep"] if r["method"] == method), key=lambda r: r["stamped"])
        xs = [r["stamped"] for r in rows]
        ax.plot(xs, [r["asr"] for r in rows], "o-", label=f"{method}: asr")
        ax.plot(xs, [r["robust_acc"] for r in rows], "s--", label=f"{method}: robust_acc", alpha=0.7)
        ax2.plot(xs, [r["clean_acc"] for r in rows], "o-", label=method)
    if backdoored is not None:
        ax.axhline(backdoored["asr"], color="red", ls=":", label="backdoored: asr")
        ax2.axhline(backdoored["clean_acc"], color="red", ls=":", label="backdoored")
    sizes = sorted({r["stamped"] for r in result["sweep"]})
    for a, label in ((ax, "percent of stamped non-target test images"), (ax2, "clean test accuracy (%)")):
        a.set_xscale("log")
        a.set_xticks(sizes, [str(n) for n in sizes])
        a.minorticks_off()
        a.set_xlabel("defender's budget (stamped samples, log scale)")
        a.set_ylabel(label)
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    ax.set_ylim(-2, 102)
    ax.set_title("attack success rate after unlearning")
    ax2.set_title("clean accuracy after unlearning")
    fig.suptitle(title, fontsize=9, wrap=True)
    save_figure(fig, path)


def _show(ax, image: torch.Tensor) -> None:
    img = image.permute(1, 2, 0).numpy()
    if img.shape[2] == 1:
        ax.imshow(img[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_examples(
    path: str | os.PathLike,
    clean: torch.Tensor,
    stamped: torch.Tensor,
    examples: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    before: str,
    after: str,
    title: str,
) -> None:
    """One column per example: the clean image above its stamped version, each titled with its
    predictions by the ``before`` and ``after`` models (class names)."""
    plt = pyplot()
    n = len(examples)
    fig, axes = plt.subplots(2, n, figsize=(max(6.0, 2.6 * n), 6.8), squeeze=False, layout="constrained")
    for i, ex in enumerate(examples):
        for row, (images, kind) in enumerate(((clean, "clean"), (stamped, "stamped"))):
            ax = axes[row][i]
            _show(ax, images[i])
            b, a = classes[ex[f"{kind}_{before}"]], classes[ex[f"{kind}_{after}"]]
            head = f"{kind}, true: {classes[ex['true']]}\n" if row == 0 else f"{kind}\n"
            ax.set_title(f"{head}{before}: {b}\n{after}: {a}", fontsize=8)
    fig.suptitle(title, fontsize=9, wrap=True)
    save_figure(fig, path)
