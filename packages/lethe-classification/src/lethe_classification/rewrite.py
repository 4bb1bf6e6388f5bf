"""Rewrite a classification benchmark's ``results.md`` from its stored numbers, measuring nothing.

A single run (``results.json``) gets its report from the stored header and rows; a suite
(``runs.json``) gets ``summary.json`` and the ``mean ± std`` tables recomputed under the header list
its ``results.md`` already has. Columns added since a result was written (the SVC_MIA attacks other
than confidence) are absent from its rows and left out, so committed reports come back unchanged.

    python -m lethe_classification.rewrite benchmarks/results/classification/fashion-mnist-small-cnn
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lethe.errors import DataError
from lethe.io import write_json_atomic, write_text_atomic
from lethe_classification.report import aggregate, present_columns, suite_markdown, write_report


def _title(md: Path) -> str | None:
    if md.is_file():
        first = md.read_text(encoding="utf-8").split("\n", 1)[0]
        if first.startswith("# "):
            return first[2:]
    return None


def _header_block(md: Path) -> str:
    """The committed report up to its first table heading (title and header list)."""
    text = md.read_text(encoding="utf-8")
    cut = text.find("\n### ")
    if cut < 0:
        raise DataError(f"{md} has no table to rewrite")
    return text[: cut + 1]


def rewrite_classification(out: str | Path, title: str | None = None) -> str:
    """Rewrite ``out/results.md`` (and ``out/summary.json`` for a suite); returns the report.
    ``title`` defaults to the committed report's."""
    out = Path(out)
    md = out / "results.md"
    if (out / "results.json").is_file():
        result = json.loads((out / "results.json").read_text(encoding="utf-8"))
        if "rows" not in result:
            raise DataError(f"{out}/results.json was not written by the classification runner (no rows)")
        title = title or _title(md) or f"Class forgetting on {result['header']['dataset']}"
        return write_report(md, title, result["header"], result["rows"])
    if (out / "runs.json").is_file():
        if not md.is_file():
            raise DataError(f"{out} has runs.json but no results.md to take the header from")
        runs = json.loads((out / "runs.json").read_text(encoding="utf-8"))
        summary = aggregate(runs)
        columns = present_columns([row for run in runs for row in run["rows"]])
        text = _header_block(md) + suite_markdown(runs, summary, columns)
        write_json_atomic(out / "summary.json", summary)
        write_text_atomic(md, text)
        return text
    raise DataError(f"{out} has neither results.json nor runs.json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folders", nargs="+", type=Path, help="output folders of classification benchmarks")
    args = parser.parse_args(argv)
    try:
        for folder in args.folders:
            rewrite_classification(folder)
            print(f"rewrote {folder / 'results.md'}")
    except DataError as err:
        print(f"lethe_classification.rewrite: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
