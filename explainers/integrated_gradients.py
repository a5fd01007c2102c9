"""Integrated Gradients (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep
Networks", ICML 2017), through captum's IntegratedGradients."""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients as CaptumIG

from explainers.base import Explainer, ModelLike

BASELINES = ("black", "mean")


class IntegratedGradients(Explainer):
    """(x − x') · ∫₀¹ ∂f_y(x' + α(x − x'))/∂x dα, Riemann–Gauss-Legendre sum of ``n_steps``.

    Attributions stay signed, as in the paper (completeness: they sum to
    f(x) − f(x')); the base sums them over channels, so a pixel whose channels
    disagree can cancel. Rank by ``abs`` downstream if only magnitude matters.

    Args:
        model: a differentiable module on pixel-space images.
        n_steps: integration steps along the straight path from the baseline.
        baseline: ``"black"`` (all zeros, METHODS.md's black) or ``"mean"`` (each
            image's own per-channel mean colour, a grey-ish image of the same tint).
        internal_batch_size: images per captum forward/backward (None: all
            ``n_steps × B`` at once).
    """

    layer_hooks = False  # gradients w.r.t. the input only: TorchScript works

    name = "integrated_gradients"

    def __init__(
        self,
        model: ModelLike,
        *,
        n_steps: int = 32,
        baseline: str = "black",
        internal_batch_size: int | None = None,
        **kw,
    ):
        super().__init__(model, **kw)
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
        self.n_steps = int(n_steps)
        self.baseline = baseline
        self.internal_batch_size = internal_batch_size

    def baselines(self, x_batch: torch.Tensor) -> torch.Tensor:
        """The reference image x' of every input."""
        if self.baseline == "black":
            return torch.zeros_like(x_batch)
        return x_batch.mean(dim=(2, 3), keepdim=True).expand_as(x_batch).contiguous()

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        return CaptumIG(self.model).attribute(
            x_batch,
            baselines=self.baselines(x_batch),
            target=y_batch,
            n_steps=self.n_steps,
            internal_batch_size=self.internal_batch_size,
        )
