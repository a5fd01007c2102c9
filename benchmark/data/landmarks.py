"""Five face landmarks detected with OpenCV's Haar cascades (Viola & Jones 2001).

For datasets that ship no landmarks (FairFace, Kärkkäinen & Joo 2021): the points feed
the landmark11 region protocol (METHODS.md §1) and face correspondences. The order and
convention are CelebA's ``list_landmarks_align_celeba.txt``: left eye, right eye, nose
tip, left mouth corner, right mouth corner, as pixel (x, y) with pixel centres at
integer coordinates; "left" is the image's left side (the subject's right).

The cascades find a face box and the two eyes; nose and mouth corners are placed from
the eyes (Haar cascades for them are unreliable and absent from opencv-python). Each
image gets a quality: 2 both eyes detected, 1 face box only (all points from the box's
proportions), 0 nothing (points from a template of an aligned, centred face crop).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from benchmark.data.files import fill_parallel

#: Part of the cache key of datasets that store these landmarks: change it with the method.
VERSION = "haar-eyes-v1"
#: Detection runs on a square of this side: small faces (64 px crops) are upscaled to
#: reach the cascades' 24 px windows, 1024 px images are shrunk so detection stays fast.
WORK_SIZE = 192

# Nose tip and mouth corners in units of the inter-eye distance d, along the eye line
# (u) and below its midpoint (v): nose 0.6 d below, mouth corners 1.05 d below and
# 0.42 d to either side. These are about the mean of CelebA's aligned landmarks
# (eyes 38 px apart, nose 23 px and mouth 40 px below, mouth 32 px wide).
NOSE_DROP, MOUTH_DROP, MOUTH_HALF_WIDTH = 0.6, 1.05, 0.42
# Eye centres as fractions of a frontal Haar face box: 31% and 69% across, 39% down
# (the mean over CelebA-HQ faces, whose boxes start just above the brows).
BOX_EYES = np.array([[0.31, 0.39], [0.69, 0.39]], np.float32)
# Eye centres as fractions of an aligned face crop where nothing is found, between
# FairFace's tight (padding 0.25) crops and CelebA-HQ's looser ones.
TEMPLATE_EYES = np.array([[0.37, 0.45], [0.63, 0.45]], np.float32)

# One set per thread: OpenCV does not promise that a classifier may be shared by threads.
_LOCAL = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    """A Haar cascade shipped with opencv-python, loaded once per thread."""
    cascades = _LOCAL.__dict__.setdefault("cascades", {})
    if name not in cascades:
        clf = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        if clf.empty():
            raise RuntimeError(f"OpenCV could not load {cv2.data.haarcascades + name}")
        cascades[name] = clf
    return cascades[name]


def _from_eyes(eyes: np.ndarray) -> np.ndarray:
    """(N, 2, 2) eye centres (image-left first) → (N, 5, 2) landmarks."""
    left, right = eyes[:, 0], eyes[:, 1]
    u = right - left  # its length is the inter-eye distance d
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # u turned 90° clockwise: down in the image
    mid = (left + right) / 2
    nose = mid + NOSE_DROP * v
    mouth = mid + MOUTH_DROP * v
    half = MOUTH_HALF_WIDTH * u
    return np.stack([left, right, nose, mouth - half, mouth + half], axis=1)


def _pick_eyes(found: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The plausible (left, right) pair among eye boxes ``found`` in face ``box``."""
    x, y, w, h = box
    centres = found[:, :2] + found[:, 2:] / 2
    # Eyes sit in the upper part of the face box; lower hits are nostrils or mouths.
    band = (centres[:, 1] > y + 0.2 * h) & (centres[:, 1] < y + 0.6 * h)
    expect = np.array([x, y], np.float32) + BOX_EYES * np.array([w, h], np.float32)
    pair = []
    for side, target in enumerate(expect):
        on_left = centres[:, 0] < x + w / 2
        on_side = band & (on_left if side == 0 else ~on_left)
        if not on_side.any():
            return None
        cands = centres[on_side]
        pair.append(cands[np.argmin(np.linalg.norm(cands - target, axis=1))])
    left, right = pair
    dx, dy = right - left
    if not (0.25 * w < dx < 0.65 * w and abs(dy) < 0.3 * dx):
        return None
    return np.stack(pair)


def _detect_one(gray: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(face box x, y, w, h or None, eye pair (2, 2) or None) in ``gray``'s pixels."""
    side = gray.shape[0]
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(side // 5, side // 5)
    )
    if len(faces) == 0:
        return None, None
    box = np.asarray(max(faces, key=lambda f: f[2] * f[3]), np.float32)  # the main face
    x, y, w, h = box.astype(int)
    found = []
    # Plain eye cascade first; the eyeglasses one rescues faces behind frames.
    for name in ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml"):
        top = gray[y : y + int(0.65 * h), x : x + w]
        hits = _cascade(name).detectMultiScale(
            top, scaleFactor=1.1, minNeighbors=3, minSize=(max(w // 10, 8),) * 2
        )
        found += [[ex + x, ey + y, ew, eh] for ex, ey, ew, eh in hits]
        if found and (eyes := _pick_eyes(np.asarray(found, np.float32), box)) is not None:
            return box, eyes
    return box, None


def detect_landmarks(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Five landmarks and a detection quality for each face image.

    Args:
        images: uint8 RGB (N, 3, H, W).

    Returns:
        float32 (N, 5, 2) pixel (x, y) of left eye, right eye, nose tip, left and right
        mouth corner (CelebA's order, image-left first, always finite), and int8 (N,)
        quality: 2 eyes detected, 1 face box only, 0 template.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) RGB images, got shape {images.shape}")
    n, _, h, w = images.shape
    scale = np.array([w / WORK_SIZE, h / WORK_SIZE], np.float32)
    eyes = np.tile(TEMPLATE_EYES * WORK_SIZE, (n, 1, 1))
    quality = np.zeros(n, np.int8)
    # One image per call (cascades take one), spread over decode threads: OpenCV
    # releases the GIL while it detects.
    found = np.zeros((n, 5), np.float32)  # eye pair (4 values) and the quality

    def detect(i: int) -> np.ndarray:
        gray = cv2.cvtColor(np.ascontiguousarray(images[i].transpose(1, 2, 0)), cv2.COLOR_RGB2GRAY)
        work = cv2.resize(gray, (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_AREA)
        box, pair = _detect_one(cv2.equalizeHist(work))
        if pair is not None:
            return np.append(pair.reshape(4), 2)
        if box is not None:
            return np.append((box[:2] + BOX_EYES * box[2:]).reshape(4), 1)
        return np.append(eyes[i].reshape(4), 0)

    fill_parallel(found, range(n), detect)
    eyes, quality = found[:, :4].reshape(n, 2, 2), found[:, 4].astype(np.int8)
    # Detection works with pixel corners at integers (a box's centre is x + w / 2);
    # the output has pixel centres at integers, as CelebA's files.
    points = _from_eyes(eyes) * scale - 0.5
    return points.astype(np.float32), quality
