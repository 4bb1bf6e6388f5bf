"""LFW face verification with lethe_face's port of dlib's face recognition ResNet, aligned by MTCNN.

Faces: ``data/lfw`` (``make faces``: people with at least 10 images), the first ``--per-person``
images of each person (sorted by name). Alignment: facenet-pytorch's MTCNN five points (eye centres,
nose tip, mouth corners; weights in its wheel) fed to dlib's chip geometry (``lethe_face.dlib_chip``,
150 px, padding 0.25). MTCNN's points are not dlib's (eye corners, base of the nose), so their
template in the chip is calibrated once: where dlib's own chips (from the 5-point landmarks stored in
``tests/face/fixtures/dlib_reference.json``) put MTCNN's points, averaged over those images.

Pairs: every genuine pair of the selected images (or ``--pairs`` of them, seeded) and as many seeded
impostor pairs. Protocol: 10 seeded folds; each fold's Euclidean threshold maximises accuracy on the
other nine (dlib's own threshold is 0.6). Also reported: on the fixture images, the cosine distance
between the port's descriptors of MTCNN-aligned chips and dlib's descriptors (dlib's landmarks).

    make dlib-models faces
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/face/dlib_verification.py

With ``--dlib-landmarks`` (dlib's own landmarks of the same images, written by
``make_dlib_fixture.py --landmarks-out`` in a Python that has dlib) the same pairs are also scored on
chips cut from dlib's landmarks, and only images in which both find a face are used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lethe.io import atomic_paths
from lethe_face._facenet import facenet
from lethe_face.align import dlib_chip, mtcnn_points
from lethe_face.dlib_chip import extract_chip, face_chip_details, image_to_chip
from lethe_face.dlib_resnet import CHIP_SIZE, load_dlib_resnet

FIXTURE = Path("tests/face/fixtures/dlib_reference.json")
OUT = Path("benchmarks/results/face/dlib-resnet-verification")


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as pil:
        return np.asarray(pil.convert("RGB"))


def calibrate(detector, lfw: Path, fixture: dict) -> tuple[np.ndarray, int]:
    """MTCNN's points in dlib's chip coordinates, averaged over the fixture images, and the count used."""
    found = []
    for face in fixture["lfw"]:
        points = mtcnn_points(detector, read_rgb(lfw / face["path"]))
        if points is not None:
            found.append(image_to_chip(face_chip_details(np.array(face["landmarks"], dtype=np.float64)), points))
    return np.mean(found, axis=0), len(found)


def embed(net, chips: list[np.ndarray], batch: int = 32) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(chips), batch):
            x = torch.from_numpy(np.stack(chips[i : i + batch])).permute(0, 3, 1, 2)
            out.append(net.embed_images(x).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 128))


def make_pairs(labels: np.ndarray, n_pairs: int | None, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs [P, 2], same [P])``: genuine pairs (all, or ``n_pairs`` sampled) and as many impostors."""
    n = len(labels)
    genuine = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if labels[i] == labels[j]])
    if n_pairs is not None and n_pairs < len(genuine):
        genuine = genuine[rng.choice(len(genuine), n_pairs, replace=False)]
    impostor: set[tuple[int, int]] = set()
    while len(impostor) < len(genuine):
        i, j = sorted(rng.choice(len(labels), 2, replace=False))
        if labels[i] != labels[j]:
            impostor.add((int(i), int(j)))
    pairs = np.concatenate([genuine, np.array(sorted(impostor))])
    return pairs, np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])


def tenfold(dist: np.ndarray, same: np.ndarray, rng: np.random.RandomState) -> dict:
    """10-fold accuracy: each fold's threshold is the best on the other folds."""
    folds = rng.permutation(len(dist)) % 10
    accs, thresholds = [], []
    for k in range(10):
        train, test = folds != k, folds == k
        dt, st = dist[train], same[train]
        order = np.argsort(dt)
        # accuracy of "same if dist <= t" at each candidate t, by cumulative counts
        genuine_below = np.cumsum(st[order])
        impostor_above = (~st).sum() - np.cumsum(~st[order])
        best = int(np.argmax(genuine_below + impostor_above))
        t = float(dt[order][best])
        thresholds.append(t)
        accs.append(float(((dist[test] <= t) == same[test]).mean()))
    return {
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "fold_accuracies": accs,
        "thresholds": thresholds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lfw", default="data/lfw/images")
    p.add_argument("--per-person", type=int, default=10, help="images per person (first ones by name)")
    p.add_argument("--pairs", type=int, default=3000, help="genuine pairs sampled (as many impostors)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dlib-landmarks",
        default=None,
        metavar="JSON",
        help="dlib's landmarks of the same images (make_dlib_fixture.py --landmarks-out): the same pairs "
        "are also scored on chips cut from them, and only images both find a face in are used",
    )
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    lfw, rng = Path(args.lfw), np.random.RandomState(args.seed)
    fixture = json.loads(FIXTURE.read_text())
    net = load_dlib_resnet()
    detector = facenet().MTCNN(select_largest=False, device="cpu")

    template, n_calib = calibrate(detector, lfw, fixture)
    fixture_chips, fixture_missed = [], 0
    for face in fixture["lfw"]:
        points = mtcnn_points(detector, read_rgb(lfw / face["path"]))
        if points is None:
            fixture_missed += 1
            continue
        fixture_chips.append((face, dlib_chip(read_rgb(lfw / face["path"]), points, CHIP_SIZE, template)))
    ours = embed(net, [c for _, c in fixture_chips])
    ref = np.array([f["descriptor"] for f, _ in fixture_chips])
    cos = 1 - (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)

    people = sorted(d for d in lfw.iterdir() if d.is_dir())
    files = [(person.name, f) for person in people for f in sorted(person.glob("*.jpg"))[: args.per_person]]
    marks = json.loads(Path(args.dlib_landmarks).read_text()) if args.dlib_landmarks else None
    chips, dlib_chips, labels, no_face, no_dlib_face = [], [], [], 0, 0
    for name, file in files:
        image = read_rgb(file)
        points = mtcnn_points(detector, image)
        landmarks = None if marks is None else marks.get(file.relative_to(lfw).as_posix())
        no_face += points is None
        no_dlib_face += marks is not None and landmarks is None
        if points is None or (marks is not None and landmarks is None):
            continue
        chips.append(dlib_chip(image, points, CHIP_SIZE, template))
        if landmarks is not None:
            dlib_chips.append(extract_chip(image, face_chip_details(np.array(landmarks, dtype=np.float64))))
        labels.append(name)
    pairs, same = make_pairs(np.array(labels), args.pairs, rng)
    scores = {}
    for alignment, cut in (("mtcnn", chips), ("dlib_landmarks", dlib_chips)):
        if not cut:
            continue
        emb = embed(net, cut)
        dist = np.linalg.norm(emb[pairs[:, 0]] - emb[pairs[:, 1]], axis=1)
        scores[alignment] = {  # the same folds for both alignments
            "ten_fold": tenfold(dist, same, np.random.RandomState(args.seed + 1)),
            "accuracy_at_dlib_threshold_0.6": float(((dist <= 0.6) == same).mean()),
        }
    result = {
        "command": " ".join(["python", *sys.argv]),
        "date": date.today().isoformat(),
        "model": "dlib_face_recognition_resnet_model_v1 (lethe_face.dlib_resnet port)",
        "alignment": "facenet-pytorch MTCNN five points -> dlib chip geometry (150 px, padding 0.25), template "
        "calibrated on the fixture's dlib landmarks",
        "people": len({n for n, _ in files}),
        "images": len(files),
        "images_without_mtcnn_face": no_face,
        "images_without_dlib_face": no_dlib_face if marks is not None else None,
        "images_used": len(labels),
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
        "alignments": scores,
        "mtcnn_template_in_chip": np.round(template, 3).tolist(),
        "calibration_images": n_calib,
        "fixture_mtcnn_vs_dlib_landmarks": {
            "images": len(fixture_chips),
            "no_face": fixture_missed,
            "cosine_distance_mean": float(cos.mean()),
            "cosine_distance_max": float(cos.max()),
        },
        "seconds": round(time.time() - start, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fx = result["fixture_mtcnn_vs_dlib_landmarks"]
    names = {
        "mtcnn": "MTCNN five points -> dlib chip geometry",
        "dlib_landmarks": "dlib's HOG detector + 5-point landmarks -> dlib chip geometry",
    }
    rows = []
    for k, v in scores.items():
        folds = v["ten_fold"]
        rows.append(
            f"| {names[k]} | {100 * folds['accuracy_mean']:.2f} % (± {100 * folds['accuracy_std']:.2f}) "
            f"| {100 * v['accuracy_at_dlib_threshold_0.6']:.2f} % | {np.mean(folds['thresholds']):.3f} |"
        )
    md = [
        "# LFW verification: dlib's face ResNet (PyTorch port)",
        "",
        f"- **command**: `{result['command']}`",
        f"- **date**: {result['date']}",
        f"- **device**: cpu (1 thread), {result['seconds']} s",
        f"- **pairs**: {result['genuine_pairs']} genuine, {result['impostor_pairs']} impostor (seed {args.seed})",
        "",
        f"{result['people']} people of data/lfw (deep-funneled, at least 10 images each), first {args.per_person} "
        f"images each: {result['images']} images, {no_face} without an MTCNN face"
        + (f", {no_dlib_face} without a dlib face" if marks is not None else "")
        + f"; {len(labels)} used. Pairs: {result['genuine_pairs']} genuine, {result['impostor_pairs']} impostor "
        f"(seed {args.seed}); the same pairs and folds for every alignment.",
        "",
        "| alignment | 10-fold accuracy (threshold from the other folds) | at dlib's threshold 0.6 | mean threshold |",
        "|---|---|---|---|",
        *rows,
        "",
        f"MTCNN alignment against dlib's own landmarks on the {fx['images']} fixture images: cosine distance between "
        f"the port's descriptor and dlib's, mean {fx['cosine_distance_mean']:.4f}, max {fx['cosine_distance_max']:.4f} "
        "(with dlib's landmarks the port matches dlib within 1e-12).",
        "",
    ]
    with atomic_paths(out / "results.json", out / "results.md") as (tj, tm):
        tj.write_text(json.dumps(result, indent=2) + "\n")
        tm.write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
