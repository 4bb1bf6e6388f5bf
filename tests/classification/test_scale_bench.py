"""``bench-gpu``'s smoke run (issue 17): the GPU benchmark's stages on generated data, on the CPU."""

from __future__ import annotations

import json

from lethe_classification.scale_bench import main


def test_smoke_run_writes_every_stage(tmp_path, capsys):
    out = tmp_path / "gpu"
    assert main(["--smoke", "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["header"]["failures"] == [] and result["header"]["skipped"] == []
    assert result["header"]["data path"] == "DeviceLoader"
    methods = ["original", "retrain", "delete", "delete-to-target", "svd", "svd-fast", "salun", "scrub", "random_label"]
    for run in result["runs"]:
        assert [row["method"] for row in run["rows"]] == methods
        assert all(0 <= row["forget_test"] <= 100 and row["seconds"] > 0 for row in run["rows"])
    assert {"training epoch", "svd step, c0", "delete-to-target, c3"} <= set(result["speed"])
    assert {t["target"] for t in result["targets"]} >= {"svd step < 1 s (alphas tuned apart)"}
    report = (out / "results.md").read_text()
    assert "## Speed" in report and "## Targets (issue 17)" in report
    assert report.splitlines()[0].endswith("on the CPU")  # the title names the device it ran on
    assert (out / "per_class-c0.png").stat().st_size > 0 and "done in" in (out / "log.txt").read_text()
    assert main(["--smoke", "--device", "cpu", "--out", str(out)]) == 2  # results are not replaced unasked
    assert "--overwrite" in capsys.readouterr().out


def test_bad_options_exit_2(tmp_path):
    assert main(["--smoke", "--epochs", "0", "--out", str(tmp_path / "a")]) == 2
    assert not (tmp_path / "a").exists()
