"""``lethe_vision.image_folder`` (``benchmarks/make_image_folder.py``): a seeded per-class sample written
as ``<out>/{train,test}/<class>/*.png``."""

from image_folders import make_image_folder

from lethe_vision.datasets import load_dataset
from lethe_vision.image_folder import main


def test_writes_a_seeded_sample_per_class(tmp_path):
    source = make_image_folder(tmp_path / "source", {"c0": (5, 3), "c1": (5, 3)})
    out = tmp_path / "small"
    assert main([f"imagefolder:{source}", str(out), "--train", "2", "--test", "1"]) == 0
    assert {p.relative_to(out).parts[:2] for p in out.rglob("*.png")} == {
        ("train", "c0"),
        ("train", "c1"),
        ("test", "c0"),
        ("test", "c1"),
    }
    bundle = load_dataset(f"imagefolder:{out}")
    assert len(bundle.train) == 4 and len(bundle.test) == 2
    first = sorted(p.read_bytes() for p in out.rglob("*.png"))
    assert main([f"imagefolder:{source}", str(out), "--train", "2", "--test", "1"]) == 0  # replaced whole
    assert sorted(p.read_bytes() for p in out.rglob("*.png")) == first
    assert main(["no-such-dataset", str(tmp_path / "x")]) == 2
