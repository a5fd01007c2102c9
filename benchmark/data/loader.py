"""Batches of uint8 images (and aligned tensors) gathered ahead of the consumer.

Training and prediction read the rows of a uint8 (N, 3, H, W) array, often memory-mapped
from the preprocessing cache, in a fixed order. Background threads gather each batch a
few batches ahead (page faults on a cold cache, then a copy), into pinned host memory
when the batches go to a CUDA device so the device copy is asynchronous: the GPU never
waits on the disk or the gather. The batches are exactly ``images[order[i*bs:(i+1)*bs]]``
(and the same rows of every aligned tensor), in order, whatever the number of threads.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

import numpy as np
import torch

THREAD_PREFIX = "batch-loader"

Rows = slice | np.ndarray  # a contiguous run of rows, or int64 row numbers


def default_workers() -> int:
    """Gather threads: a quarter of the CPU cores, at least 1 and at most 4.

    A gather is page faults and a memcpy; a few threads keep up with a GPU while the
    remaining cores stay with the model.
    """
    return max(1, min(4, (os.cpu_count() or 1) // 4))


def _numpy_view(t: torch.Tensor) -> np.ndarray | None:
    """``t``'s memory as a numpy array, or None where numpy cannot view it."""
    if t.device.type != "cpu" or t.requires_grad:
        return None
    try:
        return t.numpy()
    except (TypeError, RuntimeError):  # dtypes numpy lacks (bfloat16, …)
        return None


def _gather(src: torch.Tensor, view: np.ndarray | None, rows: Rows, pin: bool) -> torch.Tensor:
    """The rows of ``src`` as a new tensor, in pinned memory with ``pin``."""
    if view is None:
        out = src[rows if isinstance(rows, slice) else torch.from_numpy(rows)]
        return out.pin_memory() if pin and out.device.type == "cpu" else out
    count = rows.stop - rows.start if isinstance(rows, slice) else len(rows)
    out = torch.empty((count, *src.shape[1:]), dtype=src.dtype, pin_memory=pin)
    dst = out.numpy()
    # numpy releases the GIL while it copies (and while a memmap page-faults), so the
    # gather threads run beside the consumer; np.take is also ~10× faster than torch's
    # advanced indexing on uint8 rows. Bounds are checked up front: mode="raise" would
    # make np.take buffer the whole output once more.
    if isinstance(rows, slice):
        np.copyto(dst, view[rows])
    else:
        np.take(view, rows, axis=0, out=dst, mode="clip")
    return out


def iter_batches(
    images: torch.Tensor,
    batch_size: int,
    device: torch.device | str = "cpu",
    *,
    order: torch.Tensor | None = None,
    tensors: Sequence[torch.Tensor] = (),
    workers: int | None = None,
    prefetch: int = 3,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Batches of ``images`` (and of each aligned tensor) on ``device``, in ``order``.

    Args:
        images: (N, …) tensor, typically uint8 (N, 3, H, W), possibly memory-mapped.
        batch_size: rows per batch; the last batch may be shorter.
        device: where the batches go; for CUDA they are gathered into pinned memory
            and copied with ``non_blocking=True``.
        order: 1-D row numbers in [0, N) (e.g. a seeded ``torch.randperm`` per epoch);
            None reads all rows sequentially.
        tensors: tensors with first dimension N (labels, flips), batched alike.
        workers: gather threads; None for ``default_workers()``, 0 gathers in the
            consumer's thread.
        prefetch: batches gathered ahead of the consumer (at least ``workers``).

    Returns:
        An iterator of tuples ``(images[rows], *(t[rows] for t in tensors))``. Closing
        it (or dropping it) stops and joins its threads.

    Raises:
        ValueError: a bad batch size, misaligned tensors or an order out of range.
    """
    n = int(images.shape[0])
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if any(int(t.shape[0]) != n for t in tensors):
        shapes = [tuple(t.shape) for t in tensors]
        raise ValueError(f"tensors {shapes} are not aligned with {n} images")
    if order is None:
        batches: list[Rows] = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    else:
        if order.dim() != 1 or order.is_floating_point() or order.dtype == torch.bool:
            raise ValueError(
                f"order must be a 1-D integer tensor, got {order.dtype} {order.dim()}-D"
            )
        idx = order.detach().cpu().numpy().astype(np.int64, copy=False)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"order holds rows outside [0, {n}): {idx.min()}..{idx.max()}")
        batches = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise ValueError(f"workers must be at least 0, got {workers}")
    device = torch.device(device)
    pin = device.type == "cuda" and torch.cuda.is_available()
    sources = [(t, _numpy_view(t)) for t in (images, *tensors)]
    # Threads start on the first next(), so an iterator never started holds none.
    return _run(batches, sources, pin, device, workers, max(prefetch, workers, 1))


def _run(
    batches: list[Rows],
    sources: list[tuple[torch.Tensor, np.ndarray | None]],
    pin: bool,
    device: torch.device,
    workers: int,
    ahead: int,
) -> Iterator[tuple[torch.Tensor, ...]]:
    def gather(rows: Rows) -> tuple[torch.Tensor, ...]:
        return tuple(_gather(t, view, rows, pin) for t, view in sources)

    def send(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        # Issued on the consumer's current stream, so the batch is ordered before the
        # kernels that read it; from pinned memory the host does not wait for it.
        return tuple(t.to(device, non_blocking=True) for t in batch)

    if workers == 0:
        for rows in batches:
            yield send(gather(rows))
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix=THREAD_PREFIX)
    try:
        todo = iter(batches)
        # Futures are consumed first-in first-out: the order never depends on which
        # thread finishes first.
        pending: deque[Future[tuple[torch.Tensor, ...]]] = deque(
            pool.submit(gather, rows) for rows in islice(todo, ahead)
        )
        while pending:
            batch = pending.popleft().result()
            for rows in islice(todo, 1):
                pending.append(pool.submit(gather, rows))
            yield send(batch)
    finally:
        # An early close or an exception lands here: drop queued gathers, finish the
        # running ones (one batch each) and join every thread.
        pool.shutdown(wait=True, cancel_futures=True)
