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


@torch.no_grad()
def embed_images(
    embed: nn.Module, images: torch.Tensor, batch_size: int = 64, device: torch.device | None = None
) -> torch.Tensor:
    """Unit-length embeddings (N, D) of images in batches: uint8 images become pixels
    [0, 1] batch by batch (on ``device``), float ones are taken as pixels already."""
    device = device or images.device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size]
        x = x.to(device).float().div_(255) if x.dtype == torch.uint8 else x.to(device)
        out.append(embed(x).float())
    return F.normalize(torch.cat(out), dim=1)


class PairScore(nn.Module):
    """Similarity of probes to the references of the explained pairs.

    Args:
        embed: maps pixel-space RGB [0, 1] images (B, 3, H, W) to embeddings (B, D): a
            torch module (gradient explainers work) or a black box.
        references: (P, 3, H, W) images in [0, 1]; output k scores against reference k.
            With ``embedded``, their unit-length embeddings (P, D) instead.
        nonmates: optional, like ``references``; output k becomes the contrastive score
            cos(·, reference k) − cos(·, nonmate k).
        batch_size: images per forward when embedding the references.
        embedded: ``references`` and ``nonmates`` are embeddings already (from
            :func:`embed_images`), so nothing is embedded twice.
    """

    raw_scores = True

    def __init__(
        self,
        embed: nn.Module,
        references: torch.Tensor,
        nonmates: torch.Tensor | None = None,
        batch_size: int = 64,
        embedded: bool = False,
    ):
        super().__init__()
        self.embed = embed
        self.black_box = bool(getattr(embed, "black_box", False))

        def embedding(images: torch.Tensor | None) -> torch.Tensor | None:
            if images is None or embedded:
                return images
            return embed_images(embed, images, int(batch_size))

        self.register_buffer("refs", embedding(references), persistent=False)
        self.register_buffer("nonmates", embedding(nonmates), persistent=False)

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
