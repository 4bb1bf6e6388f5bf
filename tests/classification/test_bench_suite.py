"""lethe_classification.bench: choosing the strongest baselines from earlier runs."""

import pytest

from lethe.errors import ConfigError
from lethe_classification.bench import strongest_baselines


def _run(**gaps):
    return {"rows": [{"method": m, "avg_gap": g} for m, g in gaps.items()]}


def test_strongest_baselines_ranks_by_mean_gap_and_skips_the_papers_methods():
    runs = [_run(original=9, retrain=0, delete=0.1, svd=0.2, scrub=1.0, salun=3.0, finetune=2.0),
            _run(original=9, retrain=0, delete=0.1, svd=0.2, scrub=4.0, salun=1.0, finetune=2.0)]  # fmt: skip
    assert strongest_baselines(runs, 2) == ["finetune", "salun"]  # means 2.0, 2.0 (name order), scrub 2.5
    assert strongest_baselines(runs, 1, exclude=["finetune"]) == ["salun"]


def test_strongest_baselines_needs_enough_earlier_baselines():
    with pytest.raises(ConfigError, match="ran only 1"):
        strongest_baselines([_run(retrain=0, delete=0.1, scrub=1.0)], 2)
