"""benchmarks/svd_profile.py's refusals (the profile itself needs CamVid: make bench-speed runs it)."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _profile():
    spec = importlib.util.spec_from_file_location("svd_profile", BENCHMARKS / "svd_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    profile = _profile()
    seg = str(BENCHMARKS / "configs" / "speed-camvid-unet-resnet18-cpu.yaml")
    cases = [
        ([str(BENCHMARKS / "configs" / "speed-cifar10-resnet18-cpu.yaml")], "task is 'speed'"),
        ([str(tmp_path / "missing.yaml")], "No such file"),
    ]
    existing = tmp_path / "out.md"
    existing.write_text("kept")
    cases.append(([seg], "exists; remove it first"))
    for args, message in cases:
        assert profile.main([*args, "--out", str(existing)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert existing.read_text() == "kept"
