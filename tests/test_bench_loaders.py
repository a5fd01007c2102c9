"""Images per second through the CelebA loader, cold (decode, crop, resize, cache) and
warm (memory-mapped cache), on a 128-image replica (``--benchmark-enable`` to time)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from benchmark.data.celeba import CelebA
from tests.test_celebamask_hq import NAMES

N = 128


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    (root / "img_align_celeba").mkdir()
    rng = np.random.default_rng(0)
    files = [f"{i:06d}.jpg" for i in range(1, N + 1)]
    for f in files:  # smooth noise: JPEG sizes close to real faces'
        img = cv2.GaussianBlur(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(root / "img_align_celeba" / f), img)
    (root / "list_attr_celeba.txt").write_text(
        f"{N}\n{' '.join(NAMES)} \n" + "".join(f"{f}" + " -1" * 40 + "\n" for f in files)
    )
    (root / "list_eval_partition.txt").write_text("".join(f"{f} 0\n" for f in files))
    (root / "list_landmarks_align_celeba.txt").write_text(
        f"{N}\nlefteye_x ...\n"
        + "".join(f"{f} 69 109 106 113 77 142 73 152 108 154\n" for f in files)
    )
    return root


@pytest.mark.parametrize("state", ["cold", "warm"])
def test_bench_celeba_loader(benchmark, replica, tmp_path, state):
    data = CelebA(root=replica, size=112)
    if state == "warm":
        data.load("train", 0, tmp_path)

    def load():
        if state == "cold":  # a fresh cache folder every round
            folder = tmp_path / f"cold-{time.perf_counter_ns()}"
            return data.load("train", 0, folder)
        return data.load("train", 0, tmp_path)

    faces = benchmark.pedantic(load, rounds=1 if benchmark.disabled else 3, iterations=1)
    assert faces.images.shape == (N, 3, 112, 112)
    if not benchmark.disabled:
        benchmark.extra_info["images_per_s"] = N / benchmark.stats.stats.min
