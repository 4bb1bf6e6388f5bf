"""benchmarks/results_pages.py: the committed docs/results pages are current, and the generator on a
tiny fake results tree."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "results_pages.py"


@pytest.fixture(scope="module")
def pages():
    spec = importlib.util.spec_from_file_location("results_pages", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_committed_pages_are_up_to_date(pages, capsys):
    code = pages.main(["--root", str(REPO), "--check"])
    err = capsys.readouterr().err
    assert code == 0, f"{err.strip()}: run `make docs` and commit docs/results/"


BENCH_MD = """# Toy benchmark: forgetting cat

- **dataset**: toy
- **device**: cpu (x86_64, 1 threads)
- **date**: 2026-01-01
- **config**: benchmarks/configs/toy.yaml
- **note**: A note from the config.

## Forgetting 3 (cat)

| method | forget_test | retain_test |
|---|---|---|
| original | 91.25 | 88.50 |
| delete | 0.00 | 88.10 |

![Per class](per_class.png)
"""

GRID_MD = """# Choosing delete's settings on validation images

- **config**: benchmarks/configs/toy.yaml
- **head**: linear
- **method**: delete
- **validation seeds (originals trained per seed; means shown)**: [0, 1, 2]

| settings | seconds | val forget | val retain | test forget | test retain |
|---|---|---|---|---|---|
| original | 3.0 | 90.00 | 80.00 | 91.00 | 79.00 |
| lr=0.001, epochs=10 | 1.0 | 10.00 | 79.50 | 12.00 | 78.00 |
| lr=0.001, epochs=20 | 2.0 | 0.00 | 79.25 | 0.00 | 78.75 |
| lr=0.01, epochs=10 | 1.0 | 0.00 | 70.00 | 0.00 | 71.00 |

Chosen (highest validation retain with validation forget <= 5.0): lr=0.001, epochs=20
"""

MAKEFILE = """OUT := benchmarks/results/toy
bench-toy: install
\t$(BIN)/python benchmarks/run.py benchmarks/configs/toy.yaml
tune-toy: install
\tfor a in x; do python tune.py --out $(OUT)/grid-$$a || exit 1; done
"""


@pytest.fixture
def tree(tmp_path) -> Path:
    bench = tmp_path / "benchmarks" / "results" / "toy" / "bench-cpu"
    bench.mkdir(parents=True)
    (bench / "results.md").write_text(BENCH_MD)
    (bench / "results.json").write_text("{}")
    (bench / "per_class.png").write_bytes(b"png")
    grid = tmp_path / "benchmarks" / "results" / "toy" / "grid-x"
    grid.mkdir()
    (grid / "results.md").write_text(GRID_MD)
    pending = tmp_path / "benchmarks" / "results" / "toy" / "pending-cpu"
    pending.mkdir()
    (pending / "log.txt").write_text("running\n")
    configs = tmp_path / "benchmarks" / "configs"
    configs.mkdir()
    (configs / "pending.yaml").write_text('title: "Pending run"\nout: toy/pending-cpu\n')
    (tmp_path / "Makefile").write_text(MAKEFILE)
    return tmp_path


def test_pages_from_a_fake_tree(pages, tree, capsys):
    out = tree / "docs" / "results"
    assert pages.main(["--root", str(tree)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "toy.md"]
    page = (out / "toy.md").read_text()
    assert page.splitlines()[0] == pages.MARKER and "make docs" in pages.MARKER

    # a benchmark: title, its command, its tables and notes as committed, links relative to the page
    assert "## Toy benchmark: forgetting cat" in page
    assert "Made by `make bench-toy`, `benchmarks/run.py benchmarks/configs/toy.yaml`." in page
    assert "> A note from the config." in page
    assert "### Forgetting 3 (cat)" in page
    assert "| delete | 0.00 | 88.10 |" in page
    assert "![Per class](../../benchmarks/results/toy/bench-cpu/per_class.png)" in page
    assert "[results.json](../../benchmarks/results/toy/bench-cpu/results.json)" in page
    assert "- **dataset**" not in page  # the header list stays in the folder

    # a folder without results.md is named by the config that writes there
    assert "## Pending run" in page and "No `results.md` is committed" in page

    # a grid is one summary row: its values, size, the chosen setting and that row's figures
    assert "## Grid" not in page and "## Choosing" not in page
    row = next(line for line in page.splitlines() if line.startswith("| [grid-x]"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:] == [
        "`benchmarks/configs/toy.yaml`",
        "linear",
        "delete",
        "3",
        "`lr=0.001,0.01; epochs=10,20`",
        "3",
        "**lr=0.001, epochs=20**",
        "0.00",
        "79.25",
        "0.00",
        "78.75",
    ]
    assert "Made by `make tune-toy`." in page
    index = (out / "README.md").read_text()
    assert "| [Toy](toy.md) | 2 | 1 |" in index

    # check mode: clean now; a changed result or an edited page is stale; writing fixes both
    assert pages.main(["--root", str(tree), "--check"]) == 0
    md = tree / "benchmarks" / "results" / "toy" / "bench-cpu" / "results.md"
    md.write_text(BENCH_MD.replace("88.10", "88.20"))
    (out / "README.md").write_text("edited\n")
    capsys.readouterr()
    assert pages.main(["--root", str(tree), "--check"]) == 1
    err = capsys.readouterr().err
    assert "toy.md" in err and "README.md" in err
    assert "88.10" in (out / "toy.md").read_text()  # check mode writes nothing
    assert pages.main(["--root", str(tree)]) == 0
    assert "| delete | 0.00 | 88.20 |" in (out / "toy.md").read_text()
    assert pages.main(["--root", str(tree), "--check"]) == 0
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))  # atomic writes leave nothing behind


def test_pages_of_removed_tasks_go(pages, tree):
    out = tree / "docs" / "results"
    assert pages.main(["--root", str(tree)]) == 0
    (out / "notes.md").write_text("# Hand-written\n")
    (out / "gone.md").write_text(pages.MARKER + "\n\n# Gone\n")
    assert pages.stale_pages(pages.build_pages(tree, out), out) == ["README.md", "gone.md"]  # the index links notes
    assert pages.main(["--root", str(tree)]) == 0
    assert not (out / "gone.md").exists() and (out / "notes.md").exists()
    assert "[notes.md](notes.md)" in (out / "README.md").read_text()
