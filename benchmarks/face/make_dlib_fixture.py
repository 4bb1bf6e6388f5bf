"""Write dlib's own face descriptors as the reference that ``tests/face/test_dlib_resnet.py`` checks
lethe_face's PyTorch port (``lethe_face.dlib_resnet``) and chip geometry (``lethe_face.dlib_chip``) against.

Runs dlib itself, so it needs a Python with dlib, numpy and Pillow, and not lethe; dlib is not a
dependency of lethe. For example, in a throwaway virtual environment::

    python3 -m venv /tmp/dlibenv && /tmp/dlibenv/bin/pip install dlib-bin numpy pillow==13.0.0
    make dlib-models faces
    /tmp/dlibenv/bin/python benchmarks/face/make_dlib_fixture.py

For each of the first ``--per-person`` images of the first ``--people`` identities of ``data/lfw``
(sorted by name) it records the relative path, a hash of the decoded pixels (decoded with Pillow, as
the test does), dlib's five landmarks (HOG detector, the face nearest the centre, 5-point shape predictor), a hash
of dlib's 150x150 chip and dlib's 128-d descriptor. It also records dlib's descriptors of seeded
synthetic chips (``synthetic_chip``, which the test regenerates) so the port is checked without LFW.
No image is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import date
from pathlib import Path

import numpy as np

SYNTHETIC = [("noise", k) for k in range(4)] + [("gradient", k) for k in range(4)]


def synthetic_chip(kind: str, seed: int, size: int = 150) -> np.ndarray:
    """A seeded uint8 RGB ``[size, size, 3]`` chip from integer arithmetic only (identical everywhere):
    ``noise``: uniform random bytes; ``gradient``: smooth linear ramps with a bilinear term."""
    rs = np.random.RandomState(seed)
    if kind == "noise":
        return rs.randint(0, 256, (size, size, 3)).astype(np.uint8)
    if kind == "gradient":
        y, x = np.mgrid[0:size, 0:size].astype(np.int64)
        a, b, c = rs.randint(-3, 4, (3, 3)), rs.randint(0, 256, 3), rs.randint(-2, 3, 3)
        chans = [(a[i, 0] * x + a[i, 1] * y + (c[i] * x * y) // size + b[i]) for i in range(3)]
        return np.clip(np.stack(chans, axis=-1), 0, 255).astype(np.uint8)
    raise ValueError(f"unknown synthetic chip kind {kind!r}")


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def rounded(values, digits: int = 9) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in values]


def central_face_landmarks(image: np.ndarray, detector, predictor) -> list[list[int]] | None:
    """dlib's five landmarks of the face its HOG detector finds (upsampled once) nearest the image centre
    (LFW centres the named person), None if it finds none."""
    dets = detector(image, 1)
    if not dets:
        return None
    cy, cx = image.shape[0] / 2, image.shape[1] / 2

    def offset(r) -> float:
        return ((r.left() + r.right()) / 2 - cx) ** 2 + ((r.top() + r.bottom()) / 2 - cy) ** 2

    shape = predictor(image, min(dets, key=offset))
    return [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)]


def write_landmarks(root: Path, per_person: int, detector, predictor, out: Path) -> int:
    from PIL import Image

    marks = {}
    for person in sorted(d for d in root.iterdir() if d.is_dir()):
        for file in sorted(person.glob("*.jpg"))[:per_person]:
            with Image.open(file) as pil:
                marks[file.relative_to(root).as_posix()] = central_face_landmarks(
                    np.asarray(pil.convert("RGB")), detector, predictor
                )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(marks))
    print(f"wrote {out}: {len(marks)} images, {sum(v is None for v in marks.values())} without a face")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lfw", default="data/lfw/images", help="LFW identity folders")
    p.add_argument("--models", default="data/models", help="folder holding dlib's two .dat files")
    p.add_argument("--people", type=int, default=12)
    p.add_argument("--per-person", type=int, default=2)
    p.add_argument("--out", default="tests/face/fixtures/dlib_reference.json")
    p.add_argument(
        "--landmarks-out",
        default=None,
        metavar="JSON",
        help="instead: dlib's 5 landmarks of the first --per-person images of every person, for "
        "dlib_verification.py --dlib-landmarks (not committed: data/cache/...)",
    )
    args = p.parse_args(argv)

    import dlib
    from PIL import Image

    models = Path(args.models)
    net_file = models / "dlib_face_recognition_resnet_model_v1.dat"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(net_file))

    if args.landmarks_out:
        return write_landmarks(Path(args.lfw), args.per_person, detector, predictor, Path(args.landmarks_out))
    synthetic = []
    for kind, seed in SYNTHETIC:
        chip = synthetic_chip(kind, seed)
        synthetic.append(
            {
                "kind": kind,
                "seed": seed,
                "chip_sha256": sha256(chip),
                "descriptor": rounded(net.compute_face_descriptor(chip)),
            }
        )

    root = Path(args.lfw)
    people = sorted(d for d in root.iterdir() if d.is_dir())[: args.people]
    faces, missed = [], []
    for person in people:
        for file in sorted(person.glob("*.jpg"))[: args.per_person]:
            with Image.open(file) as pil:
                image = np.asarray(pil.convert("RGB"))
            landmarks = central_face_landmarks(image, detector, predictor)
            if landmarks is None:
                missed.append(str(file.relative_to(root)))
                continue
            shape = dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(x, y) for x, y in landmarks])
            chip = np.asarray(dlib.get_face_chip(image, shape, 150, 0.25))
            faces.append(
                {
                    "path": file.relative_to(root).as_posix(),
                    "pixels_sha256": sha256(image),
                    "landmarks": landmarks,
                    "chip_sha256": sha256(chip),
                    "descriptor": rounded(net.compute_face_descriptor(image, shape, 0, 0.25)),
                }
            )

    record = {
        "about": "dlib's own outputs, the reference of tests/face/test_dlib_resnet.py (make_dlib_fixture.py)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": date.today().isoformat(),
        "dlib_version": dlib.__version__,
        "numpy_version": np.__version__,
        "pillow_version": Image.__version__,
        "model_sha256": hashlib.sha256(net_file.read_bytes()).hexdigest(),
        "chip": {"size": 150, "padding": 0.25},
        "synthetic": synthetic,
        "lfw_root": "data/lfw/images",
        "lfw": faces,
        "lfw_no_face": missed,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    head = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items() if k not in ("synthetic", "lfw")]
    lines = ",\n".join(head)
    blocks = [
        f'  "{k}": [\n' + ",\n".join(f"    {json.dumps(item)}" for item in record[k]) + "\n  ]"
        for k in ("synthetic", "lfw")
    ]
    tmp.write_text("{\n" + lines + ",\n" + ",\n".join(blocks) + "\n}\n")
    json.loads(tmp.read_text())
    tmp.replace(out)
    print(f"wrote {out}: {len(synthetic)} synthetic chips, {len(faces)} LFW faces ({len(missed)} without a face)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
