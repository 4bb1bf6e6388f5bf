"""Shared pieces of the benchmark tuning scripts: a settings grid from the command line and the
rule that picks one setting from validation scores (never from test data)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any


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
    lines = [f"# {title}", "", *[f"- **{k}**: {v}" for k, v in header.items()], "", intro, "",
             "| settings | seconds | " + " | ".join(head) + " |", "|---" * (len(head) + 2) + "|"]  # fmt: skip
    for name, row in [reference] + [(settings_text(r["overrides"]), r) for r in runs]:
        seconds = "-" if row.get("seconds") is None else f"{row['seconds']:.1f}"
        cells = [f"{row[part][c]:.2f}" for part in ("validation", "test") for c in columns]
        lines.append(f"| {name} | {seconds} | " + " | ".join(cells) + " |")
    picked = "none qualifies" if chosen is None else settings_text(chosen)
    lines += ["", f"Chosen ({rule}): {picked}"]
    return "\n".join(lines) + "\n"
