"""The batch loader yields exactly the batches of direct indexing, and cleans up."""

from __future__ import annotations

import threading
from contextlib import closing

import numpy as np
import pytest
import torch

from benchmark.data import loader
from benchmark.data.loader import THREAD_PREFIX, default_workers, iter_batches

N, BS = 103, 16  # a short last batch


def loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N, 3, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 2, (N,), generator=g)
    flips = torch.rand(N, generator=g) < 0.5
    return images, labels, flips


@pytest.fixture(scope="module")
def memmapped(data, tmp_path_factory) -> torch.Tensor:
    """The images as the preprocessing cache serves them: np.load mmap_mode="c"."""
    path = tmp_path_factory.mktemp("mm") / "images.npy"
    np.save(path, data[0].numpy())
    return torch.from_numpy(np.load(path, mmap_mode="c"))


@pytest.mark.parametrize("workers", [0, 1, 3])
@pytest.mark.parametrize("source", ["tensor", "memmap"])
@pytest.mark.parametrize("shuffled", [True, False])
@pytest.mark.parametrize("with_labels", [True, False])
def test_batches_equal_direct_indexing(data, memmapped, workers, source, shuffled, with_labels):
    images, labels, flips = data
    src = memmapped if source == "memmap" else images
    order = torch.randperm(N, generator=torch.Generator().manual_seed(1)) if shuffled else None
    tensors = (labels, flips) if with_labels else ()
    got = list(iter_batches(src, BS, "cpu", order=order, tensors=tensors, workers=workers))
    rows = order if order is not None else torch.arange(N)
    assert len(got) == -(-N // BS)
    for i, batch in enumerate(got):
        idx = rows[i * BS : (i + 1) * BS]
        want = (images[idx], *(t[idx] for t in tensors))
        assert len(batch) == len(want)
        for a, b in zip(batch, want, strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b)
    assert not loader_threads()


def test_order_may_repeat_or_skip_rows(data):
    images, labels, _ = data
    order = torch.tensor([5, 5, 0, N - 1, 7])
    (x, y), (x2, y2) = iter_batches(images, 3, order=order, tensors=(labels,), workers=2)
    assert torch.equal(torch.cat([x, x2]), images[order])
    assert torch.equal(torch.cat([y, y2]), labels[order])


def test_batches_are_copies_not_views_of_the_source(memmapped):
    (x,) = next(iter_batches(memmapped, BS, workers=0))
    x.zero_()  # a consumer may write into its batch in place
    assert memmapped[:BS].any()


@pytest.mark.parametrize("stop", ["close", "exception", "drop"])
def test_early_stop_joins_every_thread(data, stop):
    images, labels, _ = data
    it = iter_batches(images, 4, order=torch.arange(N), tensors=(labels,), workers=3)
    assert not loader_threads()  # threads start with the first batch, not before
    next(it)
    assert loader_threads()
    if stop == "close":
        it.close()
    elif stop == "exception":
        with pytest.raises(RuntimeError, match="boom"), closing(it):  # as train_model does
            for _ in it:
                raise RuntimeError("boom")
    else:
        del it  # an abandoned iterator is closed when collected
    assert not loader_threads()


def test_a_failing_gather_raises_in_the_consumer_and_joins(data, monkeypatch):
    images, _, _ = data
    real = loader._gather

    def flaky(src, view, rows, pin):
        if rows[0] == 3 * BS:  # the fourth batch
            raise OSError("disk gone")
        return real(src, view, rows, pin)

    monkeypatch.setattr(loader, "_gather", flaky)
    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for (x,) in iter_batches(images, BS, order=torch.arange(N), workers=2):
            seen.append(x)
    assert len(seen) == 3 and torch.equal(torch.cat(seen), images[: 3 * BS])
    assert not loader_threads()


@pytest.mark.parametrize("workers", [0, 2])
def test_dtypes_numpy_lacks_take_the_torch_path(workers):
    values = torch.randn(N, 4).to(torch.bfloat16)
    order = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    got = [b for (b,) in iter_batches(values, BS, order=order, workers=workers)]
    assert torch.equal(torch.cat(got), values[order])
    got = [b for (b,) in iter_batches(values, BS, workers=workers)]
    assert torch.equal(torch.cat(got), values)


def test_invalid_arguments_fail_before_any_thread(data):
    images, labels, _ = data
    with pytest.raises(ValueError, match="outside"):
        iter_batches(images, BS, order=torch.tensor([0, N]))
    with pytest.raises(ValueError, match="outside"):
        iter_batches(images, BS, order=torch.tensor([-1]))
    with pytest.raises(ValueError, match="aligned"):
        iter_batches(images, BS, tensors=(labels[:-1],))
    with pytest.raises(ValueError, match="batch_size"):
        iter_batches(images, 0)
    with pytest.raises(ValueError, match="integer"):
        iter_batches(images, BS, order=torch.zeros(3))
    assert not loader_threads()


def test_default_workers_is_small_and_positive():
    assert 1 <= default_workers() <= 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_are_gathered_into_pinned_memory(data, memmapped):
    images, labels, _ = data
    rows = np.array([4, 1, 9])
    assert loader._gather(memmapped, memmapped.numpy(), rows, pin=True).is_pinned()
    assert loader._gather(labels, labels.numpy(), slice(0, 5), pin=True).is_pinned()
    order = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    got = list(iter_batches(memmapped, BS, "cuda", order=order, tensors=(labels,), workers=2))
    x = torch.cat([b[0] for b in got])
    y = torch.cat([b[1] for b in got])
    assert x.is_cuda and torch.equal(x.cpu(), images[order])
    assert y.is_cuda and torch.equal(y.cpu(), labels[order])
    assert not loader_threads()
