"""Bad input to the four task CLIs, as one table: every case must give exit code 2 and exactly one
non-empty line on stderr naming the problem, no traceback anywhere, leave no output (nor a
temporary file) behind, and leave every input byte-identical.

The CLIs run in-process through each package's ``main(argv)`` (a subprocess only for the real
console script); data and checkpoints are tiny, made once for the module (``world``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# the packages' test helpers (face_helpers, seg_helpers) are on the path through pyproject.toml's pytest pythonpath
from cli_testing import Result, assert_clean_failure  # noqa: E402
from face_helpers import make_identity_folder  # noqa: E402
from image_folders import make_image_folder  # noqa: E402
from seg_helpers import TINY_MODEL, make_seg_folder  # noqa: E402

import lethe.checkpoint  # noqa: E402
from lethe_backdoor.cli import main as backdoor_main  # noqa: E402
from lethe_classification.cli import main as classify_main  # noqa: E402
from lethe_face.cli import main as face_main  # noqa: E402
from lethe_segmentation.checkpoints import load_model as load_seg_model  # noqa: E402
from lethe_segmentation.checkpoints import save_model as save_seg_model  # noqa: E402
from lethe_segmentation.cli import main as segment_main  # noqa: E402
from lethe_vision.checkpoints import save_model  # noqa: E402
from lethe_vision.models import ModelSpec  # noqa: E402
from lethe_vision.pipeline import build_checked  # noqa: E402

MAINS = {
    "lethe-classify": classify_main,
    "lethe-backdoor": backdoor_main,
    "lethe-segment": segment_main,
    "lethe-face": face_main,
}
RUNTIME = ("--device", "cpu", "--no-progress")
CLASSES = ("c0", "c1", "c2", "c3")
#: commands without the runtime options (lethe-face bench takes them from its config)
NO_RUNTIME = {("lethe-classify", "import"), ("lethe-face", "bench")}
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- tiny data and checkpoints, made once -------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path | str]:
    """Datasets and checkpoints of every task, made once; the values the case table refers to."""
    root = tmp_path_factory.mktemp("bad-input-world")
    cls_data = make_image_folder(root / "cls", {c: (8, 4) for c in CLASSES})
    seg_data = make_seg_folder(root / "seg", {"train": 6, "test": 2})
    faces = make_identity_folder(root / "faces", {f"person_{i}": 6 for i in range(4)})
    ckpt = root / "ckpt"
    w: dict[str, Path | str] = {
        "cls_data": f"imagefolder:{cls_data}",
        "seg_data": f"folder:{seg_data}",
        "faces": f"folder:{faces}",
        "cls": ckpt / "cls.safetensors",
        "bd": ckpt / "bd.safetensors",
        "seg": ckpt / "seg.safetensors",
        "face": ckpt / "face.safetensors",
        "oracle_1ch": ckpt / "oracle-1ch.safetensors",
        "oracle_10": ckpt / "oracle-10.safetensors",
        "seg_other": ckpt / "seg-other.safetensors",
    }
    train = ("--epochs", "1", "--batch-size", "16", *RUNTIME)
    assert (
        classify_main(["train", "--dataset", w["cls_data"], "--arch", "small-cnn", *train, "--out", str(w["cls"])]) == 0
    )
    assert (
        backdoor_main(
            [
                "train",
                "--dataset",
                w["cls_data"],
                "--arch",
                "small-cnn",
                "--val-fraction",
                "0.25",
                *train,
                "--out",
                str(w["bd"]),
            ]
        )
        == 0
    )
    assert (
        segment_main(
            [
                "train",
                "--dataset",
                w["seg_data"],
                *TINY_MODEL,
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--warmup-epochs",
                "0",
                *RUNTIME,
                "--out",
                str(w["seg"]),
            ]
        )
        == 0
    )
    assert (
        face_main(
            [
                "train",
                "--dataset",
                w["faces"],
                "--size",
                "32",
                "--width",
                "4",
                "--embedding-dim",
                "8",
                "--head",
                "linear",
                *train,
                "--out",
                str(w["face"]),
            ]
        )
        == 0
    )
    # oracles of other data: written directly (no training needed to be refused)
    for key, spec in (("oracle_1ch", ModelSpec("small-cnn", 4, 1, 28)), ("oracle_10", ModelSpec("small-cnn", 10))):
        names = list(CLASSES) if spec.num_classes == 4 else [f"k{i}" for i in range(10)]
        info = {"model": spec.to_dict(), "dataset": "fashion-mnist", "classes": names, "split": {}}
        save_model(build_checked(spec), w[key], info)
    model, info = load_seg_model(w["seg"])
    save_seg_model(model, w["seg_other"], {**info, "classes": ["road", "sky", "tree", "boat"]})
    return w


# --- the table ----------------------------------------------------------------------------------


@dataclass
class Case:
    """One bad input: ``prog`` run with ``args`` (``{key}`` names a ``world`` entry or a file the
    test prepares in its own folder: ``{tmp}``, ``{existing}``, ``{dir}``, ``{full_dir}``, ``{ro}``,
    ``{random}``, ``{truncated}``); its one error line must hold each of ``needles``."""

    id: str
    prog: str
    args: tuple[str, ...]
    needles: tuple[str, ...]
    patch: str | None = None  # "enospc-json" / "enospc-checkpoint": the disk is full
    subprocess: bool = False


def case(id, prog, args, *needles, patch=None, subprocess=False, marks=()):  # noqa: A002
    return pytest.param(Case(id, prog, tuple(args), needles, patch, subprocess), id=id, marks=list(marks))


C, B, S, F = "lethe-classify", "lethe-backdoor", "lethe-segment", "lethe-face"
CLS_TRAIN = ("train", "--dataset", "{cls_data}", "--arch", "small-cnn", "--epochs", "1", "--batch-size", "16")
CLS_UNLEARN = ("unlearn", "--checkpoint", "{cls}", "--forget", "c1", "--set", "epochs=1")
CLS_EVAL = ("evaluate", "--checkpoint", "{cls}", "--forget", "c1", "--no-probe", "--relearn-per-class", "0")
CLS_BENCH = (
    "bench",
    "--dataset",
    "{cls_data}",
    "--arch",
    "small-cnn",
    "--epochs",
    "1",
    "--forget",
    "c1",
    "--methods",
    "delete",
    "--no-probe",
    "--relearn-per-class",
    "0",
)
CLS_IMPORT = (
    "import",
    "--weights",
    "{random}",
    "--arch",
    "small-cnn",
    "--classes",
    "a,b,c,d",
    "--image-size",
    "16",
    "--mean",
    "0.5",
    "--std",
    "0.25",
)
BD_TRAIN = ("train", "--dataset", "{cls_data}", "--arch", "small-cnn", "--epochs", "1", "--val-fraction", "0.25")
BD_UNLEARN = ("unlearn", "--checkpoint", "{bd}", "--budget", "4", "--set", "epochs=1")
BD_BENCH = (
    "bench",
    "--dataset",
    "{cls_data}",
    "--arch",
    "small-cnn",
    "--epochs",
    "1",
    "--val-fraction",
    "0.25",
    "--methods",
    "delete",
    "--budgets",
    "4",
)
SEG_TRAIN = (
    "train",
    "--dataset",
    "{seg_data}",
    *TINY_MODEL,
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--warmup-epochs",
    "0",
)
SEG_UNLEARN = ("unlearn", "--checkpoint", "{seg}", "--forget", "car", "--set", "epochs=1")
SEG_BENCH = ("bench", "--dataset", "{seg_data}", *TINY_MODEL, "--epochs", "1", "--forget", "car", "--methods", "delete")
FACE_TRAIN = (
    "train",
    "--dataset",
    "{faces}",
    "--size",
    "32",
    "--width",
    "4",
    "--embedding-dim",
    "8",
    "--head",
    "linear",
    "--epochs",
    "1",
    "--batch-size",
    "16",
)
FACE_UNLEARN = ("unlearn", "--checkpoint", "{face}", "--forget", "person_1", "--set", "epochs=1")
FACE_EVAL = ("evaluate", "--checkpoint", "{face}", "--forget", "person_1", "--no-probe")

# fmt: off
CASES = [
    # --- the environment: devices, workers, batch sizes ------------------------------------------
    case("cls-device-cuda-no-gpu", C, [*CLS_TRAIN, "--out", "{tmp}/m.safetensors", "--device", "cuda"],
         "--device cuda", "no CUDA GPU", marks=[NO_GPU]),
    case("cls-device-cuda-99", C, [*CLS_TRAIN, "--out", "{tmp}/m.safetensors", "--device", "cuda:99"], "cuda:99"),
    case("cls-device-tpu", C, [*CLS_TRAIN, "--out", "{tmp}/m.safetensors", "--device", "tpu"], "--device 'tpu'"),
    case("cls-device-tpu-console-script", C, [*CLS_TRAIN, "--out", "{tmp}/m.safetensors", "--device", "tpu"],
         "not a device", subprocess=True),
    case("bd-device-tpu", B, [*BD_UNLEARN, "--out", "{tmp}/m.safetensors", "--device", "tpu"], "tpu"),
    case("seg-device-cuda-no-gpu", S, [*SEG_UNLEARN, "--out", "{tmp}/m.safetensors", "--device", "cuda"],
         "no CUDA GPU", marks=[NO_GPU]),
    case("bd-device-cuda-no-gpu", B, [*BD_TRAIN, "--out", "{tmp}/m.safetensors", "--device", "cuda"],
         "no CUDA GPU", marks=[NO_GPU]),
    case("face-device-cuda-no-gpu", F, [*FACE_TRAIN, "--out", "{tmp}/m.safetensors", "--device", "cuda:0"],
         "no CUDA GPU", marks=[NO_GPU]),
    case("face-device-meta", F, [*FACE_EVAL, "--device", "meta"], "--device meta"),
    case("cls-workers-negative", C, [*CLS_TRAIN, "--out", "{tmp}/m.safetensors", "--workers", "-2"], "--workers"),
    case("bd-workers-negative", B, [*BD_TRAIN, "--out", "{tmp}/m.safetensors", "--workers", "-2"], "--workers"),
    case("seg-workers-negative", S, [*SEG_TRAIN, "--out", "{tmp}/m.safetensors", "--workers", "-2"], "--workers"),
    case("face-workers-negative", F, [*FACE_EVAL, "--workers", "-2"], "--workers"),
    case("cls-unlearn-batch-size-negative", C, [*CLS_UNLEARN, "--out", "{tmp}/m.safetensors", "--batch-size", "-1"],
         "--batch-size"),
    case("face-unlearn-batch-size-zero", F, [*FACE_UNLEARN, "--out", "{tmp}/m.safetensors", "--batch-size", "0"],
         "--batch-size"),
    # --- outputs: a read-only folder, a folder, an existing file, an input, each other ------------
    case("cls-out-read-only-folder", C, [*CLS_TRAIN, "--out", "{ro}/m.safetensors"], "--out", "not writable"),
    case("seg-out-read-only-folder", S, [*SEG_UNLEARN, "--out", "{ro}/sub/m.safetensors"], "not writable"),
    case("face-out-read-only-folder", F, [*FACE_TRAIN, "--out", "{ro}/m.safetensors"], "not writable"),
    case("bd-out-read-only-folder", B, [*BD_UNLEARN, "--out", "{ro}/m.safetensors"], "not writable"),
    case("cls-out-is-folder", C, [*CLS_TRAIN, "--out", "{dir}"], "--out", "is a folder"),
    case("bd-out-is-folder", B, [*BD_TRAIN, "--out", "{dir}"], "--out", "is a folder"),
    case("seg-out-is-folder", S, [*SEG_TRAIN, "--out", "{dir}"], "--out", "is a folder"),
    case("face-out-is-folder", F, [*FACE_UNLEARN, "--out", "{dir}"], "--out", "is a folder"),
    case("cls-out-under-a-file", C, [*CLS_TRAIN, "--out", "{existing}/m.safetensors"], "is a file, not a folder"),
    case("cls-train-out-existing-file", C, [*CLS_TRAIN, "--out", "{existing}"], "already exists", "--overwrite"),
    case("cls-unlearn-out-existing-file", C, [*CLS_UNLEARN, "--out", "{existing}"], "--out", "already exists"),
    case("cls-import-out-existing-file", C, [*CLS_IMPORT, "--out", "{existing}"], "already exists"),
    case("face-train-out-existing-file", F, [*FACE_TRAIN, "--out", "{existing}"], "already exists", "--overwrite"),
    case("bd-train-out-existing-file", B, [*BD_TRAIN, "--out", "{existing}"], "already exists"),
    case("seg-train-out-existing-file", S, [*SEG_TRAIN, "--out", "{existing}"], "already exists"),
    case("cls-evaluate-json-existing-file", C, [*CLS_EVAL, "--json", "{existing}"], "--json", "already exists"),
    case("cls-out-is-checkpoint", C, [*CLS_UNLEARN, "--out", "{cls}", "--overwrite"], "--out",
         "would overwrite an input (--checkpoint)"),
    case("cls-record-is-folder", C, [*CLS_UNLEARN, "--out", "{tmp}/m.safetensors", "--record", "{dir}"],
         "--record", "is a folder"),
    case("bd-record-is-folder", B, [*BD_UNLEARN, "--out", "{tmp}/m.safetensors", "--record", "{dir}"], "--record"),
    case("seg-record-is-folder", S, [*SEG_UNLEARN, "--out", "{tmp}/m.safetensors", "--record", "{dir}"], "--record"),
    case("face-record-is-folder", F, [*FACE_UNLEARN, "--out", "{tmp}/m.safetensors", "--record", "{dir}"],
         "--record"),
    case("cls-record-equals-out", C, [*CLS_UNLEARN, "--out", "{tmp}/m.safetensors", "--record", "{tmp}/m.safetensors"],
         "--record", "would overwrite --out"),
    case("bd-record-equals-out", B, [*BD_UNLEARN, "--out", "{tmp}/m", "--record", "{tmp}/m"], "--record", "--out"),
    case("seg-record-equals-out", S, [*SEG_UNLEARN, "--out", "{tmp}/m", "--record", "{tmp}/m"], "--record", "--out"),
    case("face-json-existing-file", F, [*FACE_EVAL, "--json", "{existing}"], "--json", "already exists"),
    case("face-record-equals-out", F, [*FACE_UNLEARN, "--out", "{tmp}/m.json", "--record", "{tmp}/m.json"],
         "--record", "--out"),
    case("cls-bench-out-existing-file", C, [*CLS_BENCH, "--out", "{existing}"], "--out", "is a file"),
    case("bd-bench-out-existing-file", B, [*BD_BENCH, "--out", "{existing}"], "is a file"),
    case("seg-bench-out-existing-file", S, [*SEG_BENCH, "--out", "{existing}"], "is a file"),
    case("face-bench-out-existing-file", F, ["bench", "{random}", "--out", "{existing}"], "is a file"),
    case("cls-bench-out-folder-with-files", C, [*CLS_BENCH, "--out", "{full_dir}"], "already holds files",
         "--overwrite"),
    # --- a full disk: nothing is left behind, not even the checkpoint written before the record ---
    case("cls-train-disk-full", C, [*CLS_TRAIN, "--out", "{tmp}/new/m.safetensors"], "No space left on device",
         "new/m.safetensors", patch="enospc-checkpoint"),
    case("cls-unlearn-disk-full-at-record", C, [*CLS_UNLEARN, "--out", "{tmp}/m.safetensors", "--record",
         "{tmp}/r.json"], "No space left on device", "r.json", patch="enospc-json"),
    case("bd-unlearn-disk-full-at-record", B, [*BD_UNLEARN, "--out", "{tmp}/m.safetensors", "--record",
         "{tmp}/r.json"], "No space left", patch="enospc-json"),
    case("seg-unlearn-disk-full-at-record", S, [*SEG_UNLEARN, "--out", "{tmp}/m.safetensors", "--record",
         "{tmp}/r.json"], "No space left", patch="enospc-json"),
    case("face-unlearn-disk-full-at-record", F, [*FACE_UNLEARN, "--out", "{tmp}/m.safetensors", "--record",
         "{tmp}/r.json"], "No space left", patch="enospc-json"),
    case("bd-unlearn-disk-full-at-checkpoint", B, [*BD_UNLEARN, "--out", "{tmp}/m.safetensors", "--record",
         "{tmp}/r.json"], "No space left", "m.safetensors", patch="enospc-checkpoint"),
    case("cls-bench-disk-full", C, [*CLS_BENCH, "--out", "{tmp}/bench"], "No space left", "bench",
         patch="enospc-json"),
    # --- checkpoints: a folder, missing, corrupt, truncated, of another task or dataset -----------
    case("cls-checkpoint-is-folder", C, ["evaluate", "--checkpoint", "{dir}", "--forget", "c1"], "is a folder"),
    case("cls-checkpoint-missing", C, ["evaluate", "--checkpoint", "{tmp}/none.safetensors", "--forget", "c1"],
         "not found"),
    case("cls-checkpoint-random-bytes", C, ["evaluate", "--checkpoint", "{random}", "--forget", "c1"],
         "not a readable safetensors checkpoint"),
    case("cls-checkpoint-truncated", C, ["unlearn", "--checkpoint", "{truncated}", "--forget", "c1", "--out",
         "{tmp}/m.safetensors"], "truncated.safetensors"),
    case("cls-checkpoint-of-segmentation", C, ["evaluate", "--checkpoint", "{seg}", "--forget", "c1"],
         "not a lethe classification checkpoint"),
    case("seg-checkpoint-of-classification", S, ["evaluate", "--checkpoint", "{cls}"],
         "not a lethe segmentation checkpoint"),
    case("face-checkpoint-of-classification", F, ["evaluate", "--checkpoint", "{cls}", "--forget", "person_1"],
         "not a lethe face checkpoint"),
    case("bd-checkpoint-without-attack", B, ["evaluate", "--checkpoint", "{cls}"], "records no backdoor attack"),
    case("cls-oracle-of-1-channel-data", C, [*CLS_EVAL, "--oracle", "{oracle_1ch}", "--json", "{tmp}/m.json"],
         "--oracle", "1x28x28"),
    case("cls-oracle-of-other-classes", C, [*CLS_EVAL, "--oracle", "{oracle_10}"], "--oracle", "other classes"),
    case("seg-oracle-of-other-classes", S, ["evaluate", "--checkpoint", "{seg}", "--oracle", "{seg_other}"],
         "--oracle", "other classes"),
    case("face-weights-random-bytes", F, ["train", "--dataset", "{faces}", "--size", "32", "--embedder",
         "inception-resnet-v1", "--embedding-dim", "512", "--pretrained", "vggface2", "--weights", "{random}",
         "--epochs", "1", "--out", "{tmp}/m.safetensors"], "random.bin", "not a facenet-pytorch"),
    case("face-weights-without-vggface2", F, [*FACE_TRAIN, "--weights", "{random}", "--out", "{tmp}/m.safetensors"],
         "--weights", "vggface2"),
    case("cls-import-weights-random-bytes", C, [*CLS_IMPORT, "--out", "{tmp}/m.safetensors"], "random.bin"),
    # --- names and settings ------------------------------------------------------------------------
    case("cls-unknown-method", C, [*CLS_UNLEARN, "--method", "amnesia", "--out", "{tmp}/m.safetensors"],
         "unknown method"),
    case("bd-unknown-method", B, [*BD_UNLEARN, "--method", "vaccine", "--out", "{tmp}/m.safetensors"], "vaccine"),
    case("cls-unknown-class", C, [*CLS_UNLEARN[:4], "c9", "--out", "{tmp}/m.safetensors"], "c9"),
    case("seg-unknown-class", S, [*SEG_UNLEARN[:4], "boat", "--out", "{tmp}/m.safetensors"], "unknown class 'boat'"),
    case("face-unknown-identity", F, [*FACE_UNLEARN[:4], "nobody", "--out", "{tmp}/m.safetensors"], "nobody"),
    case("cls-forget-every-class", C, [*CLS_UNLEARN[:4], "c0,c1,c2,c3", *CLS_UNLEARN[5:], "--out",
         "{tmp}/m.safetensors"], "every|all"),
    case("seg-forget-every-class", S, [*SEG_UNLEARN[:4], "ground,sky,tree,car", *SEG_UNLEARN[5:], "--out",
         "{tmp}/m.safetensors"], "every|all"),
    case("face-forget-every-identity", F, [*FACE_UNLEARN[:4], "person_0,person_1,person_2,person_3",
         *FACE_UNLEARN[5:], "--out", "{tmp}/m.safetensors"], "every|all"),
    case("cls-unknown-setting", C, [*CLS_UNLEARN, "--set", "warp=9", "--out", "{tmp}/m.safetensors"], "warp"),
    case("seg-unknown-setting", S, [*SEG_UNLEARN, "--set", "warp=9", "--out", "{tmp}/m.safetensors"], "warp"),
    case("cls-missing-dataset-folder", C, [*CLS_TRAIN[:2], "imagefolder:{tmp}/nowhere", *CLS_TRAIN[3:], "--out",
         "{tmp}/m.safetensors"], "nowhere"),
    case("seg-missing-dataset-folder", S, [*SEG_TRAIN[:2], "folder:{tmp}/nowhere", *SEG_TRAIN[3:], "--out",
         "{tmp}/m.safetensors"], "nowhere"),
    case("face-missing-dataset-folder", F, [*FACE_TRAIN[:2], "folder:{tmp}/nowhere", *FACE_TRAIN[3:], "--out",
         "{tmp}/m.safetensors"], "nowhere"),
    case("seg-model-arg-bad-json", S, [*SEG_TRAIN, "--model-arg", "foo={{bad", "--out", "{tmp}/m.safetensors"],
         "--model-arg foo={bad", "JSON"),
    case("seg-model-arg-unknown", S, [*SEG_TRAIN, "--model-arg", "foo=1", "--out", "{tmp}/m.safetensors"],
         "takes no argument foo"),
    case("face-bench-config-random-bytes", F, ["bench", "{random}", "--out", "{tmp}/bench"], "random.bin"),
]
# fmt: on


# --- the check ------------------------------------------------------------------------------------


def _snapshot(paths: list[Path]) -> dict[str, str]:
    """SHA-256 of every file under ``paths`` (hidden temporaries included)."""
    result = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for item in files:
            result[str(item)] = hashlib.sha256(item.read_bytes()).hexdigest()
    return result


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _prepare(tmp: Path, world: dict, text: str, monkeypatch) -> dict[str, str]:
    """The files and folders of the placeholders ``text`` uses, made in ``tmp``."""
    values = {k: str(v) for k, v in world.items()}
    values["tmp"] = str(tmp)
    if "{existing}" in text:
        (tmp / "existing.safetensors").write_bytes(b"an unrelated file the user keeps\n")
        values["existing"] = str(tmp / "existing.safetensors")
    if "{dir}" in text:
        (tmp / "afolder").mkdir()
        values["dir"] = str(tmp / "afolder")
    if "{full_dir}" in text:
        (tmp / "full").mkdir()
        (tmp / "full" / "notes.txt").write_text("keep me\n")
        values["full_dir"] = str(tmp / "full")
    if "{random}" in text:
        (tmp / "random.bin").write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
        values["random"] = str(tmp / "random.bin")
    if "{truncated}" in text:
        data = Path(world["cls"]).read_bytes()
        (tmp / "truncated.safetensors").write_bytes(data[: len(data) // 2])
        values["truncated"] = str(tmp / "truncated.safetensors")
    if "{ro}" in text:
        ro = tmp / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        values["ro"] = str(ro)
        if os.access(ro, os.W_OK):  # root writes anywhere: make the folder read-only to the checks too
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real(p, mode))
    return values


def _full_disk(monkeypatch, kind: str) -> None:
    """Writing the checkpoint (safetensors, as it reports a full disk) or a JSON/text file fails."""
    if kind == "enospc-checkpoint":

        def save_file(*args, **kwargs):
            raise lethe.checkpoint.SafetensorError(
                'Error while serializing: I/O error: No space left on device (os error 28) at path "/x/.tmpAbC"'
            )

        monkeypatch.setattr(lethe.checkpoint, "save_file", save_file)
    else:
        write_text = Path.write_text

        def full(self, *args, **kwargs):
            if self.name.endswith(".tmp"):  # the temporary of an output (lethe.io.atomic_paths)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            return write_text(self, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", full)


def _run(case: Case, argv: list[str], capsys) -> Result:
    if case.subprocess:
        script = Path(sys.executable).with_name(case.prog)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
        done = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120, env=env)
        return Result(done.returncode, done.stdout, done.stderr)
    capsys.readouterr()
    code = MAINS[case.prog](argv)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: Case, world, tmp_path, capsys, monkeypatch):
    text = " ".join(case.args)
    values = _prepare(tmp_path, world, text, monkeypatch)
    argv = [a.format(**values) for a in case.args]
    if (case.prog, argv[0]) not in NO_RUNTIME:
        argv += [*(() if "--device" in argv else ("--device", "cpu")), "--no-progress"]
    data = [Path(str(world[key]).partition(":")[2]) for key in ("cls_data", "seg_data", "faces")]
    inputs = [Path(world["cls"]).parent, *data, tmp_path]
    before_files, before_tree = _snapshot(inputs), {str(p): _listing(p) for p in inputs if p.is_dir()}
    if case.patch:
        _full_disk(monkeypatch, case.patch)
    result = _run(case, argv, capsys)
    monkeypatch.undo()
    assert "Traceback" not in result.out + result.err, result.err
    assert_clean_failure(result, *case.needles, prog=case.prog)
    # no output, no temporary file, nothing created or changed anywhere the run could write
    assert {str(p): _listing(p) for p in inputs if p.is_dir()} == before_tree
    assert _snapshot(inputs) == before_files


# --- what --overwrite allows ------------------------------------------------------------------------


def test_overwrite_replaces_an_existing_output(world, tmp_path, capsys):
    """With ``--overwrite`` an existing output is replaced (and only then); no temporary is left."""
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"old")
    args = [a.format(cls_data=world["cls_data"]) for a in CLS_TRAIN] + ["--out", str(out), *RUNTIME]
    assert classify_main(args) == 2 and out.read_bytes() == b"old"
    assert classify_main([*args, "--overwrite"]) == 0
    assert out.read_bytes() != b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_overwrite_writes_into_a_bench_folder(world, tmp_path, capsys):
    """``bench --out`` a folder holding files needs ``--overwrite``, which keeps the other files."""
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me\n")
    args = [a.format(cls_data=world["cls_data"]) for a in CLS_BENCH] + ["--out", str(folder), *RUNTIME]
    assert classify_main([*args, "--overwrite"]) == 0, capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "per_class.png", "results.json", "results.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
