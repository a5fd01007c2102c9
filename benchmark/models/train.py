"""Training with the FaceX recipe, evaluation, and the checkpoint cache.

FaceX (Sarridis et al. 2024, §4): Adam, lr 1e-3 decayed ×0.1 at 1/3 and 2/3 of
training, weight decay 1e-4, batch 128. Everything is overridable from the suite.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.data.loader import iter_batches

FACEX_RECIPE: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "optimizer": "adam",
    "milestones": [1 / 3, 2 / 3],
    "gamma": 0.1,
    "hflip": False,
}

StepCallback = Callable[[int, int, float], None]


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (dict keys sorted), first 16 hex digits."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_pixels(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 (B,3,H,W) → float32 [0, 1] on ``device`` (the transfer stays uint8)."""
    return images.to(device, non_blocking=True).float().div_(255.0)


def _autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


def make_optimizer(parameters: Any, recipe: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The recipe's optimizer over the trainable ``parameters``."""
    params = [p for p in parameters if p.requires_grad]
    lr, wd = recipe["lr"], recipe["weight_decay"]
    if recipe["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    if recipe["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


def train_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: Mapping[str, Any],
    seed: int,
    device: torch.device,
    on_step: StepCallback | None = None,
    rows: torch.Tensor | None = None,
) -> list[float]:
    """Train ``model`` in place on uint8 ``images`` and integer ``labels``.

    With ``rows``, it trains on ``images[rows]`` (``labels`` has one value per row)
    without copying them out of a memory-mapped split first.

    Returns:
        The mean training loss of each epoch.
    """
    r = {**FACEX_RECIPE, **recipe}
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = make_optimizer(model.parameters(), r)
    n, bs = len(labels), int(r["batch_size"])
    steps_per_epoch = math.ceil(n / bs)
    total = steps_per_epoch * int(r["epochs"])
    # Milestones are fractions of all steps, so short CPU runs decay like long GPU runs.
    milestones = sorted({max(1, round(f * total)) for f in r["milestones"]})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=r["gamma"])
    loss_fn = nn.CrossEntropyLoss()
    labels = labels.long()
    losses, step = [], 0
    for _ in range(int(r["epochs"])):
        order = torch.randperm(n, generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5 if r["hflip"] else None
        aligned = (labels,) if flips is None else (labels, flips)
        if rows is not None:  # the same batches, gathered straight from the full split
            aligned = tuple(_spread(t, rows, len(images)) for t in aligned)
            order = rows[order]
        # The loader yields images[order[i*bs:(i+1)*bs]] (and those rows of labels and
        # flips), gathered ahead in threads: the same batches as indexing here.
        with closing(iter_batches(images, bs, device, order=order, tensors=aligned)) as batches:
            epoch_loss, step = fit_epoch(
                batches, device, lambda x, y: loss_fn(model(x), y), opt, sched, step, total,
                on_step,
            )  # fmt: skip
        losses.append(float(epoch_loss) / n)
    model.eval()
    return losses


def fit_epoch(
    batches: Iterable[tuple[torch.Tensor, ...]],
    device: torch.device,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    opt: torch.optim.Optimizer,
    sched: Any,
    step: int,
    total: int,
    on_step: StepCallback | None = None,
) -> tuple[torch.Tensor, int]:
    """One epoch of optimiser steps over ``batches`` of (uint8 images, labels[, flips]).

    Returns:
        The epoch's summed loss (on ``device``) and the step count after it.
    """
    epoch_loss = torch.zeros((), device=device)
    for xb, y, *f in batches:
        x = to_pixels(xb, device)
        if f:
            x = torch.where(f[0].view(-1, 1, 1, 1), x.flip(-1), x)
        with _autocast(device):
            loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        epoch_loss += loss.detach() * len(y)
        step += 1
        if on_step is not None:
            last = step % 20 == 0 or step == total
            on_step(step, total, float(loss.detach()) if last else math.nan)
    return epoch_loss, step


def _spread(t: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """A length-``n`` copy of ``t`` with ``t[i]`` at ``rows[i]`` (zeros elsewhere)."""
    out = torch.zeros(n, dtype=t.dtype)
    out[rows] = t
    return out


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256
) -> torch.Tensor:
    """Softmax probabilities (N, C) on ``device`` for uint8 ``images``."""
    model.to(device).eval()
    out = []
    with closing(iter_batches(images, batch_size, device)) as batches:
        for (xb,) in batches:
            with _autocast(device):
                logits = model(to_pixels(xb, device))
            out.append(logits.float().softmax(-1))
    return torch.cat(out)


class CheckpointCache:
    """Trained weights on disk, keyed by a hash of everything that determines them.

    Loaded with ``weights_only=True``: a checkpoint is tensors and plain metadata only.
    """

    def __init__(self, root: Path):
        self.root = Path(root) / "models"

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str, model: nn.Module) -> dict[str, Any] | None:
        """Load weights into ``model``; the stored metadata, or None if not cached."""
        p = self.path(key)
        if not p.exists():
            return None
        blob = torch.load(p, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["state_dict"])
        return json.loads(blob["meta"])

    def save(self, key: str, model: nn.Module, meta: Mapping[str, Any]) -> Path:
        """Write atomically, so an interrupted run never leaves half a checkpoint."""
        p, tmp = self._tmp(key)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save({"state_dict": state, "meta": json.dumps(dict(meta), default=str)}, tmp)
        tmp.replace(p)
        return p

    def install(self, key: str, blob: bytes) -> None:
        """Place a checkpoint's bytes (trained on another node) unless it is cached."""
        if not self.path(key).is_file():
            p, tmp = self._tmp(key)
            tmp.write_bytes(blob)
            tmp.replace(p)

    def _tmp(self, key: str) -> tuple[Path, Path]:
        """The checkpoint's path and a temporary name beside it, unique per writer:
        shards and Ray workers may share one cache folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.path(key)
        return p, p.with_name(f".{p.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def load_user_checkpoint(path: Path, model: nn.Module) -> None:
    """Load a user-supplied checkpoint: a state dict, or a dict holding ``state_dict``."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else blob
    # A bare torchvision state dict has no "backbone." prefix: load it into the backbone.
    bare = hasattr(model, "backbone") and not any(k.startswith("backbone.") for k in state)
    (model.backbone if bare else model).load_state_dict(state)
