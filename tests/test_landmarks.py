"""Haar-cascade landmarks: on real CelebA-HQ faces the points land on the annotated
eyes, nose and lips; a blank image gets the template; shapes and dtypes hold."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.data.landmarks import TEMPLATE_EYES, detect_landmarks

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "celebamask_hq_samples"
# CelebAMask-HQ label ids (METHODS.md §1). In these samples r_eye (5) lies on the
# image's LEFT (x ≈ 192 of 512) and l_eye (4) on its right (x ≈ 319): the labels name
# the subject's eyes, CelebA's landmark files the image sides.
NOSE, L_EYE, R_EYE, LIPS = 2, 4, 5, (10, 11, 12)


def _samples(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The four images as RGB (4, 3, size, size) and their 512×512 label maps."""
    if not SAMPLES.is_dir():
        pytest.skip(f"real CelebAMask-HQ samples absent: {SAMPLES}")
    images, labels = [], []
    for i in range(4):
        bgr = cv2.imread(str(SAMPLES / f"{i}.jpg"), cv2.IMREAD_COLOR)
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
        images.append(bgr[:, :, ::-1].transpose(2, 0, 1))
        labels.append(cv2.imread(str(SAMPLES / f"{i}.png"), cv2.IMREAD_UNCHANGED))
    return np.ascontiguousarray(np.stack(images)), np.stack(labels)


def _distance(label: np.ndarray, ids: tuple[int, ...], point: np.ndarray) -> float:
    """Pixels from ``point`` to the nearest pixel of the regions ``ids`` (0 inside)."""
    outside = (~np.isin(label, ids)).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    x, y = np.rint(point).astype(int)
    return float(dist[y, x])


def test_real_faces_land_on_annotated_regions():
    images, labels = _samples(512)  # the label maps' size: no coordinate change
    points, quality = detect_landmarks(images)
    assert quality.tolist() == [2, 2, 2, 2]
    for pts, lab in zip(points, labels, strict=True):
        assert pts[0, 0] < 256 < pts[1, 0]  # image-left eye first
        # Measured: both eyes and the nose tip inside their regions (0 px) on all four.
        assert _distance(lab, (R_EYE,), pts[0]) <= 3
        assert _distance(lab, (L_EYE,), pts[1]) <= 3
        assert _distance(lab, (NOSE,), pts[2]) <= 3
        centre = [np.argwhere(lab == k)[:, ::-1].mean(0) for k in (R_EYE, L_EYE)]
        eye_error = np.linalg.norm(pts[:2] - np.stack(centre), axis=1)
        assert eye_error.max() <= 12  # measured 1.0 … 9.2 px (inter-eye ≈ 128 px)
        lips = np.argwhere(np.isin(lab, LIPS))[:, ::-1]
        corners = lips[[lips[:, 0].argmin(), lips[:, 0].argmax()]]
        # Mouth corners are placed from the eyes, not detected: measured 2.0 … 10.8 px
        # from the nearest lip pixel and 2.4 … 12.1 px from the lips' end points.
        assert max(_distance(lab, LIPS, p) for p in pts[3:]) <= 14
        assert np.linalg.norm(pts[3:] - corners, axis=1).max() <= 16


def test_small_real_faces_are_still_detected():
    images, _ = _samples(64)  # upscaled to the working size before the cascades
    points, quality = detect_landmarks(images)
    assert quality.tolist() == [2, 2, 2, 2]
    # Same faces at 1/8 of the label maps' size: eyes about 16 px apart, level.
    dx, dy = (points[:, 1] - points[:, 0]).T
    assert np.all((dx > 12) & (dx < 20) & (np.abs(dy) < 3))


def test_faces_with_hidden_eyes_fall_back_to_the_face_box():
    images, labels = _samples(224)
    for image, lab in zip(images, labels, strict=True):
        lab = cv2.resize(lab, (224, 224), interpolation=cv2.INTER_NEAREST)
        hide = np.isin(lab, (L_EYE, R_EYE, 6, 7))  # eyes and brows (6, 7)
        hide = cv2.dilate(hide.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        image[:, hide] = np.median(image[:, lab == 1], axis=1, keepdims=True)  # skin (1)
    points, quality = detect_landmarks(images)
    assert quality.tolist() == [1, 1, 1, 1]
    # Eyes from the box's proportions, against the annotated eyes scaled to 224 px:
    # measured 2.3 … 6.3 px off (inter-eye ≈ 56 px).
    for pts, lab in zip(points, labels, strict=True):
        centre = [np.argwhere(lab == k)[:, ::-1].mean(0) for k in (R_EYE, L_EYE)]
        truth = (np.stack(centre) + 0.5) * 224 / 512 - 0.5
        assert np.linalg.norm(pts[:2] - truth, axis=1).max() <= 8


def test_blank_image_gets_the_template():
    blank = np.full((2, 3, 100, 80), 128, np.uint8)
    points, quality = detect_landmarks(blank)
    assert quality.tolist() == [0, 0]
    assert np.all(np.isfinite(points)) and np.array_equal(points[0], points[1])
    # Eyes at the template's fractions of the 80×100 frame (pixel centres at integers).
    np.testing.assert_allclose(points[0, :2], TEMPLATE_EYES * [80, 100] - 0.5, atol=1e-4)
    x, y = points[0].T
    assert np.all((x > 0) & (x < 79) & (y > 0) & (y < 99))
    assert x[0] < x[2] < x[1] and x[3] < x[2] < x[4]  # left eye, nose, right eye
    assert y[0] == y[1] < y[2] < y[3] == y[4]  # eyes, then nose, then mouth


def test_batch_shapes_and_dtypes():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (5, 3, 48, 48), dtype=np.uint8)
    points, quality = detect_landmarks(batch)
    assert points.shape == (5, 5, 2) and points.dtype == np.float32
    assert quality.shape == (5,) and quality.dtype == np.int8
    assert np.all(np.isfinite(points)) and set(quality.tolist()) <= {0, 1, 2}
    empty_points, empty_quality = detect_landmarks(np.zeros((0, 3, 48, 48), np.uint8))
    assert empty_points.shape == (0, 5, 2) and empty_quality.shape == (0,)
    with pytest.raises(ValueError, match="RGB"):
        detect_landmarks(np.zeros((2, 48, 48), np.uint8))
