"""Images per second fed by the batch loader from a memory-mapped 2,000×3×112×112 uint8
array (shuffled order, batch 128, CPU device), with 0 and 2 gather threads, against
plain torch indexing, the loop ``train_model`` had before the loader
(``--benchmark-enable`` to time).

Two page-cache states: ``warm`` (the file in memory) and ``cold`` (its pages evicted
with posix_fadvise before every round, so the gather reads the disk). Two consumers:
``cpu`` turns each batch into float pixels, the first step of CPU training; ``gpu``
sleeps 4 ms per batch, a host thread waiting on a GPU step (it holds no GIL), which is
the work a GPU-fed loader can hide its gathers behind.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.loader import iter_batches
from benchmark.models.train import to_pixels

N, SIZE, BS = 2000, 112, 128
CPU = torch.device("cpu")
GPU_STEP_S = 0.004


@pytest.fixture(scope="module")
def npy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("feed") / "images.npy"
    rng = np.random.default_rng(0)
    np.save(path, rng.integers(0, 256, (N, 3, SIZE, SIZE), dtype=np.uint8))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be evicted
    finally:
        os.close(fd)
    return path


def open_images(path: Path, cold: bool) -> torch.Tensor:
    """A fresh memory map of ``path``, its pages first dropped from the page cache."""
    if cold:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return torch.from_numpy(np.load(path, mmap_mode="c"))


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise")
@pytest.mark.parametrize("consumer", ["cpu", "gpu"])
@pytest.mark.parametrize("cache", ["warm", "cold"])
@pytest.mark.parametrize("feed", ["plain", "workers0", "workers2"])
def test_bench_loader_feed(benchmark, npy, feed, cache, consumer):
    order = torch.randperm(N, generator=torch.Generator().manual_seed(0))

    def batches(images: torch.Tensor):
        if feed == "plain":
            return ((images[order[i : i + BS]],) for i in range(0, N, BS))
        return iter_batches(images, BS, CPU, order=order, workers=int(feed[-1]))

    def step(x: torch.Tensor) -> float:
        if consumer == "gpu":
            time.sleep(GPU_STEP_S)
            return float(x[:, :, 0, 0].sum())
        return float(to_pixels(x, CPU)[:, :, 0, 0].sum())

    def epoch(box: list[torch.Tensor]) -> list[float]:
        # Popped, so the map is gone when the round ends: pedantic keeps a round's
        # arguments alive through the next setup, and mapped pages cannot be evicted.
        return [step(x) for (x,) in batches(box.pop())]

    def setup():
        return ([open_images(npy, cache == "cold")],), {}

    sums = benchmark.pedantic(
        epoch, setup=setup, rounds=1 if benchmark.disabled else 5, iterations=1
    )
    images = open_images(npy, cold=False)
    assert sums == [step(images[order[i : i + BS]]) for i in range(0, N, BS)]
    if not benchmark.disabled:
        benchmark.extra_info["images_per_s"] = N / benchmark.stats.stats.min
