"""Reference rows: a map that knows nothing and a map that knows the answer.

A benchmark should show that its metrics separate good explanations from bad ones
(Hedström et al. 2023, Quantus; Zhang et al. 2018's "center" and "random" baselines of
the pointing game). ``RandomMap`` (seeded noise) is what a metric gives by chance;
``OracleMap`` (the scenario's ground-truth bias-region mask) is what it gives an
explainer that points exactly at the shortcut. Neither reads the model.
"""

from __future__ import annotations

import torch

from explainers.base import Explainer


class RandomMap(Explainer):
    """Uniform noise in [0, 1), seeded: the chance level of every metric."""

    name = "random"
    needs_grad = False
    black_box = True
    layer_hooks = False
    reference = True

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        # A new stream per batch: every image of the explained set gets its own noise,
        # the same for the same seed.
        self._drawn = getattr(self, "_drawn", 0) + 1
        g = self.generator(offset=self._drawn)
        b, _, h, w = x_batch.shape
        return torch.rand(b, h, w, generator=g, device=self.device)


class OracleMap(Explainer):
    """The scenario's bias-region mask (1 inside, 0 outside): what a perfect explainer
    of the shortcut would show; all zeros where the image lacks those regions."""

    name = "oracle"
    needs = frozenset({"regions"})
    needs_grad = False
    black_box = True
    layer_hooks = False
    reference = True

    def attribute(
        self, x_batch: torch.Tensor, y_batch: torch.Tensor, r_batch: torch.Tensor
    ) -> torch.Tensor:
        return r_batch
