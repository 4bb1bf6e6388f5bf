"""dlib's face chips: ``get_face_chip_details`` and ``extract_image_chip`` for 5-point landmarks.

Geometry of ``dlib/image_transforms/interpolation.h``: the five points of dlib's 5-point shape
predictor (outer and inner corner of the image's left eye, then of the right eye, then the bottom of
the nose) are fitted by a least-squares similarity transform (Umeyama's, ``find_similarity_transform``
in ``dlib/geometry/point_transforms.h``) to dlib's mean face, ``(padding + p) / (2 padding + 1) * size``
in the chip. Its rotation is the chip's angle; its scale gives a rectangle
(``centered_drect``: width ``size * scale - 1``) centred on the image of the chip's centre. Chip
pixel ``(0, 0)``, ``(cols-1, 0)`` and ``(0, rows-1)`` map to that rectangle's corners rotated about its
centre, and each chip pixel is read by ``interpolate_bilinear`` (0 where a neighbour falls outside
the image; the result truncated to uint8).

Not reproduced: dlib's image pyramid for chips more than about twice smaller than their source
region (faces wider than about 300 pixels for 150-pixel chips); such chips are read with plain
bilinear interpolation here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: dlib's mean face for the 5-point model, in [0, 1] chip coordinates (x, y), in the predictor's order
MEAN_FACE_5 = np.array(
    [
        (0.8595674595992, 0.2134981538014),
        (0.6460604764104, 0.2289674387677),
        (0.1205750620789, 0.2137274526848),
        (0.3340850613712, 0.2290642403242),
        (0.4901123135679, 0.6277975316475),
    ]
)


@dataclass(frozen=True)
class ChipDetails:
    """dlib's ``chip_details``: a rectangle ``(left, top, right, bottom)`` in the image, rotated by
    ``angle`` (radians) about its centre, sampled into ``rows`` x ``cols`` pixels."""

    rect: tuple[float, float, float, float]
    angle: float
    rows: int
    cols: int


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(M, t)`` of the least-squares similarity ``dst ~ M @ src + t`` (Umeyama, 1991; no reflection)."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    mean_src, mean_dst = src.mean(0), dst.mean(0)
    sigma = ((src - mean_src) ** 2).sum(1).mean()
    cov = (dst - mean_dst).T @ (src - mean_src) / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1, 1] = -1
    rot = u @ s @ vt
    scale = np.trace(np.diag(d) @ s) / sigma if sigma != 0 else 1.0
    m = scale * rot
    return m, mean_dst - m @ mean_src


def face_chip_details(landmarks: np.ndarray, size: int = 150, padding: float = 0.25) -> ChipDetails:
    """dlib's ``get_face_chip_details`` for five landmarks ``[5, 2]`` (x, y) in dlib's 5-point order."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"face_chip_details needs 5 (x, y) landmarks, got shape {points.shape}")
    return chip_details_from_points(points, (padding + MEAN_FACE_5) / (2 * padding + 1) * size, size)


def chip_details_from_points(points: np.ndarray, chip_points: np.ndarray, size: int) -> ChipDetails:
    """dlib's ``chip_details(chip_points, img_points, chip_dims(size, size))``: the chip whose pixels
    ``chip_points`` best match image points ``points`` (both ``[K, 2]``, x then y) under a similarity."""
    m, t = similarity_transform(chip_points, points)
    px, py = m @ np.array([1.0, 0.0])
    angle, scale = float(np.arctan2(py, px)), float(np.hypot(px, py))
    cx, cy = m @ np.array([size / 2.0, size / 2.0]) + t
    w = h = size * scale - 1  # centered_drect subtracts one from width and height
    return ChipDetails((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), angle, size, size)


def image_to_chip(details: ChipDetails, points: np.ndarray) -> np.ndarray:
    """Image points ``[K, 2]`` in the chip's pixel coordinates (the inverse of ``chip_to_image``)."""
    affine = chip_to_image(details)
    return (np.asarray(points, dtype=np.float64) - affine[:, 2]) @ np.linalg.inv(affine[:, :2]).T


def chip_to_image(details: ChipDetails) -> np.ndarray:
    """The 2x3 affine map from chip pixel ``(x, y, 1)`` to image coordinates."""
    left, top, right, bottom = details.rect
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    c, s = np.cos(details.angle), np.sin(details.angle)
    rot = np.array([[c, -s], [s, c]])

    def corner(x: float, y: float) -> np.ndarray:
        return rot @ (np.array([x, y]) - centre) + centre

    tl, tr, bl = corner(left, top), corner(right, top), corner(left, bottom)
    ax = (tr - tl) / max(details.cols - 1, 1)
    ay = (bl - tl) / max(details.rows - 1, 1)
    return np.stack([ax, ay, tl], axis=1)


def extract_chip(image: np.ndarray, details: ChipDetails) -> np.ndarray:
    """dlib's ``extract_image_chip`` with bilinear interpolation: uint8 ``[rows, cols, C]`` from uint8
    ``[H, W, C]`` (or ``[H, W]``) ``image``."""
    img = np.asarray(image)
    squeeze = img.ndim == 2
    if squeeze:
        img = img[:, :, None]
    height, width = img.shape[:2]
    affine = chip_to_image(details)
    ys, xs = np.mgrid[0 : details.rows, 0 : details.cols].astype(np.float64)
    px = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    py = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    left, top = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    inside = (left >= 0) & (top >= 0) & (left + 1 < width) & (top + 1 < height)
    lc, tc = np.clip(left, 0, max(width - 2, 0)), np.clip(top, 0, max(height - 2, 0))
    fx, fy = (px - left)[..., None], (py - top)[..., None]
    src = img.astype(np.float64)
    tl, tr = src[tc, lc], src[tc, lc + 1]
    bl, br = src[tc + 1, lc], src[tc + 1, lc + 1]
    value = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    chip = np.where(inside[..., None], np.clip(value, 0, 255), 0).astype(np.uint8)  # truncation, as dlib's assign_pixel
    return chip[..., 0] if squeeze else chip


def face_chip(image: np.ndarray, landmarks: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The ``size`` x ``size`` chip dlib's ``get_face_chip`` (and ``compute_face_descriptor``) reads for
    five landmarks in uint8 RGB ``[H, W, 3]`` ``image``."""
    return extract_chip(image, face_chip_details(landmarks, size, padding))
