"""Face verification as something every explainer can explain (METHODS §10).

The explained score of a probe X is f(X) = cos(e(X), e(Y)) for an embedding model e and
the probe's reference Y, or, for a triplet, cos(e(X), e(mate)) − cos(e(X), e(nonmate))
(the contrastive score of the inpainting game: what makes X its mate and not the
nonmate). :class:`PairScore` holds the references of the explained set and returns, for
any batch of (perturbed) probes, the score against *every* reference: output k is the
score against reference k, so an explainer given target k for the k-th probe explains
exactly f, and every perturbation of a step still goes through one batched forward. The
outputs are scores already (``raw_scores``): nothing applies a softmax to them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PairScore(nn.Module):
    """Similarity of probes to the references of the explained pairs.

    Args:
        embed: maps pixel-space RGB [0, 1] images (B, 3, H, W) to embeddings (B, D): a
            torch module (gradient explainers work) or a black box.
        references: (P, 3, H, W) images in [0, 1]; output k scores against reference k.
        nonmates: optional (P, 3, H, W); output k becomes the contrastive score
            cos(·, reference k) − cos(·, nonmate k).
        batch_size: images per forward when embedding the references.
    """

    raw_scores = True

    def __init__(
        self,
        embed: nn.Module,
        references: torch.Tensor,
        nonmates: torch.Tensor | None = None,
        batch_size: int = 64,
    ):
        super().__init__()
        self.embed = embed
        self.black_box = bool(getattr(embed, "black_box", False))
        self.batch_size = int(batch_size)
        self.register_buffer("refs", self._embed_all(references), persistent=False)
        neg = self._embed_all(nonmates) if nonmates is not None else None
        self.register_buffer("nonmates", neg, persistent=False)

    @torch.no_grad()
    def _embed_all(self, images: torch.Tensor) -> torch.Tensor:
        out = [self.embed(images[i : i + self.batch_size]).float()
               for i in range(0, len(images), self.batch_size)]  # fmt: skip
        return F.normalize(torch.cat(out), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = F.normalize(self.embed(x).float(), dim=1)
        scores = e @ self.refs.to(e.device).T
        if self.nonmates is not None:
            scores = scores - e @ self.nonmates.to(e.device).T
        return scores

    @property
    def target_layer(self) -> nn.Module:
        """The embedding's CAM layer, for CAM explainers of a torch embedding."""
        return self.embed.target_layer
