"""``lethe_vision.tuning``: the settings grid, the choice rule and the tuning table."""

import pytest

from lethe.errors import ConfigError
from lethe_vision.tuning import choose, combinations, parse_grid, tuning_markdown


def test_parse_grid_and_combinations():
    grid = parse_grid(["lr=1e-3,0.01", "epochs=2", "use_retain=false,TRUE", "mode=fast"])
    assert grid == {"lr": [0.001, 0.01], "epochs": [2], "use_retain": [False, True], "mode": ["fast"]}
    combos = combinations({"lr": [1, 2], "epochs": [3, 4]})
    assert combos == [{"lr": 1, "epochs": 3}, {"lr": 1, "epochs": 4}, {"lr": 2, "epochs": 3}, {"lr": 2, "epochs": 4}]
    for bad in ("lr", "lr=", "=1"):
        with pytest.raises(ConfigError, match="KEY=V1,V2"):
            parse_grid([bad])


def _row(clean: float, asr: float, lr: float) -> dict:
    metrics = {"clean_acc": clean, "asr": asr}
    return {"overrides": {"lr": lr}, "seconds": 1.0, "validation": metrics, "test": metrics}


def test_choose_takes_the_best_objective_under_the_limit():
    rows = [_row(80.0, 5.0, 1.0), _row(70.0, 1.0, 2.0), _row(75.0, 2.0, 3.0)]
    assert choose(rows, "asr", 2.0, "clean_acc")["overrides"] == {"lr": 3.0}
    assert choose(rows, "asr", 0.5, "clean_acc") is None


def test_tuning_markdown_lists_every_setting_and_the_choice():
    rows = [_row(80.0, 5.0, 1.0), _row(75.0, 2.0, 3.0)]
    text = tuning_markdown(
        "T", {"budget": 4}, "intro", ("before", _row(81.0, 99.0, 0.0)), rows, ("clean_acc", "asr"), {"lr": 3.0}, "rule"
    )
    assert text.startswith("# T\n") and "- **budget**: 4" in text
    assert "| before | 1.0 | 81.00 | 99.00 | 81.00 | 99.00 |" in text
    assert "| lr=3.0 | 1.0 | 75.00 | 2.00 | 75.00 | 2.00 |" in text
    assert text.rstrip().endswith("Chosen (rule): lr=3.0")
