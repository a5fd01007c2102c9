"""Training a face embedding on synthetic identities (``task: verification``).

CosFace (Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition",
CVPR 2018): logits s·(cos θ_j − m·[j = y]) over learned, unit-length identity centres.
Written by hand because torch has no margin-cosine loss and it is two lines here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import closing
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.data.loader import iter_batches
from benchmark.models.train import FACEX_RECIPE, StepCallback, fit_epoch, make_optimizer


class CosFaceHead(nn.Module):
    """Identity centres on top of an embedding; ``forward`` gives margin logits."""

    def __init__(self, embed: nn.Module, n_identities: int, dim: int, margin: float, scale: float):
        super().__init__()
        self.embed = embed
        self.centres = nn.Parameter(torch.randn(n_identities, dim) * 0.01)
        self.margin, self.scale = float(margin), float(scale)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(self.embed(x).float(), dim=1) @ F.normalize(self.centres, dim=1).T
        return self.scale * (cos - self.margin * F.one_hot(labels, cos.shape[1]))


def embedding_dim(embed: nn.Module, side: int) -> int:
    """Width of the embedding's output, from one forward at ``side`` px."""
    with torch.no_grad():
        return int(embed.eval()(torch.zeros(1, 3, side, side)).shape[1])


def train_embedding(
    embed: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: Mapping[str, Any],
    identity: Mapping[str, Any],
    seed: int,
    device: torch.device,
    on_step: StepCallback | None = None,
) -> list[float]:
    """Train ``embed`` in place to tell the identities ``labels`` of uint8 ``images`` apart.

    Args:
        recipe: the suite's training recipe (epochs, batch size, optimizer, lr, weight
            decay, hflip); the lr follows one cycle peaking at ``lr``.
        identity: ``margin`` and ``scale`` of the CosFace loss.

    Returns:
        The mean training loss of each epoch.
    """
    r = {**FACEX_RECIPE, **recipe}
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    labels = labels.long()
    n, bs = len(labels), int(r["batch_size"])
    head = CosFaceHead(
        embed, int(labels.max()) + 1, embedding_dim(embed, images.shape[-1]),
        identity["margin"], identity["scale"],
    ).to(device)  # fmt: skip
    head.train()
    opt = make_optimizer(head.parameters(), r)
    total = math.ceil(n / bs) * int(r["epochs"])
    # One cycle: a margin loss from random centres needs the warm-up a step decay lacks.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=total)
    losses, step = [], 0
    for _ in range(int(r["epochs"])):
        order = torch.randperm(n, generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5 if r["hflip"] else torch.zeros(n, dtype=bool)
        with closing(
            iter_batches(images, bs, device, order=order, tensors=(labels, flips))
        ) as batches:
            epoch_loss, step = fit_epoch(
                batches, device, lambda x, y: F.cross_entropy(head(x, y).float(), y), opt, sched,
                step, total, on_step,
            )  # fmt: skip
        losses.append(float(epoch_loss) / n)
    embed.eval()
    return losses
