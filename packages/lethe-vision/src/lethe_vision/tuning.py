"""Shared pieces of the benchmark tuning scripts: a settings grid from the command line and the
rule that picks one setting from validation scores (never from test data)."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe_vision.report import header_lines


def parse_value(text: str) -> Any:
    """``"20"`` -> 20, ``"1e-3"`` -> 0.001, ``"true"`` -> True; anything else stays text."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["lr=1e-3,1e-2", "epochs=20"]`` -> ``{"lr": [0.001, 0.01], "epochs": [20]}``."""
    from lethe.errors import ConfigError

    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"--grid takes KEY=V1,V2,...; got {item!r}")
        grid[key.strip()] = [parse_value(v) for v in values.split(",")]
    return grid


def combinations(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every setting of the grid, in order (the last key varies fastest)."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def choose(rows: Sequence[dict], limit_key: str, limit: float, objective: str) -> dict | None:
    """The row with the highest ``row["validation"][objective]`` among those whose
    ``row["validation"][limit_key]`` is at most ``limit``; None when none qualifies."""
    ok = [r for r in rows if r["validation"][limit_key] <= limit]
    return max(ok, key=lambda r: r["validation"][objective]) if ok else None


def settings_text(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(defaults)"


def tuning_markdown(
    title: str,
    header: dict,
    intro: str,
    reference: tuple[str, dict],
    runs: Sequence[dict],
    columns: Sequence[str],
    chosen: dict | None,
    rule: str,
) -> str:
    """A tuning result as Markdown: the header, ``intro``, then one row per setting (``reference``
    first, e.g. the model before unlearning) with its validation and test ``columns``."""
    head = [f"val {c}" for c in columns] + [f"test {c}" for c in columns]
    lines = [
        f"# {title}",
        "",
        *header_lines(header),
        "",
        intro,
        "",
        "| settings | seconds | " + " | ".join(head) + " |",
        "|---" * (len(head) + 2) + "|",
    ]
    for name, row in [reference] + [(settings_text(r["overrides"]), r) for r in runs]:
        seconds = "-" if row.get("seconds") is None else f"{row['seconds']:.1f}"
        cells = [f"{row[part][c]:.2f}" for part in ("validation", "test") for c in columns]
        lines.append(f"| {name} | {seconds} | " + " | ".join(cells) + " |")
    picked = "none qualifies" if chosen is None else settings_text(chosen)
    lines += ["", f"Chosen ({rule}): {picked}"]
    return "\n".join(lines) + "\n"


def tuning_parser(prog: str, doc: str | None, limit_flag: str, limit_default: float, limit_help: str):
    """The options every tuning script shares: ``--method``, ``--grid`` (repeatable), the limit the
    chosen setting must meet on validation data, and ``--out``."""
    p = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])
    p.set_defaults(command="run")
    p.add_argument("--method", default="delete")
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2", help="settings to try")
    p.add_argument(limit_flag, type=float, default=limit_default, help=limit_help)
    p.add_argument("--out", required=True, help="output folder: results.json and results.md")
    return p


def write_tuning(out: str | Path, result: dict, text: str) -> None:
    """Write ``results.json`` and ``results.md`` (atomically) under ``out`` and print the table."""
    from lethe.io import write_json_atomic, write_text_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result)
    write_text_atomic(out / "results.md", text)
    print(text)


@dataclass(frozen=True)
class TuningReport:
    """What a tuning script measures and how it chooses: the metric ``columns``, the ``reference``
    row's key in the result (the model before unlearning), the ``limit`` metric that must stay at
    most ``header[limit_header]`` on validation data and the ``objective`` maximised under it."""

    title: str  # formatted with the result's header
    intro: str
    columns: tuple[str, ...]
    reference: str
    limit: str
    objective: str
    limit_header: str

    def rule(self, header: dict) -> str:
        return f"highest validation {self.objective} with validation {self.limit} <= {header[self.limit_header]}"

    def choose(self, runs: Sequence[dict], limit: float) -> dict | None:
        return choose(runs, self.limit, limit, self.objective)

    def write(self, out: str | Path, header: dict, reference: dict, runs: list[dict]) -> dict:
        """Choose among ``runs`` (under ``header[limit_header]``), then write and print the result."""
        best = self.choose(runs, header[self.limit_header])
        result = {
            "header": header,
            self.reference: reference,
            "runs": runs,
            "chosen": None if best is None else best["overrides"],
        }
        write_tuning(out, result, self.markdown(result))
        return result

    def markdown(self, result: dict) -> str:
        h = result["header"]
        return tuning_markdown(
            self.title.format(**h),
            h,
            self.intro,
            (self.reference, result[self.reference]),
            result["runs"],
            self.columns,
            result["chosen"],
            self.rule(h),
        )
