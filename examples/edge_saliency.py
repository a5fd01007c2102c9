"""A worked plugin: two explainers a user can run against the catalogue.

Reference them from a suite as ``examples.edge_saliency:gradient_energy`` (a plain
function) or ``examples.edge_saliency:CentreBias`` (a class on the ``Explainer`` base),
or install a package that lists them under the ``face_xai_bench.explainers`` entry-point
group (see the README, "Plugins"). ``suites/plugin_example.yaml`` runs both.
"""

from __future__ import annotations

import torch

from explainers.base import Explainer


def gradient_energy(
    model: torch.nn.Module, x_batch: torch.Tensor, target: torch.Tensor, *, power: float = 2.0
) -> torch.Tensor:
    """|∂ logit_target / ∂x|^power summed over colour channels: a plain-function explainer.

    Args:
        model: the classifier (pixel-space input).
        x_batch: images (B, 3, H, W) in [0, 1], on the model's device.
        target: explained class per image (B,).
        power: exponent of the gradient magnitude.
    """
    x = x_batch.detach().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x)
    return grad.abs().pow(power).sum(1)


class CentreBias(Explainer):
    """A deliberately poor baseline: a Gaussian bump at the image centre, whatever the model.

    Useful to see where the metrics put an explainer that ignores the model.

    Args:
        width: standard deviation of the bump as a fraction of the image side.
    """

    name = "centre_bias"
    needs_grad = False

    def __init__(self, model, *, width: float = 0.25, **kw):
        super().__init__(model, **kw)
        self.width = float(width)

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x_batch.shape
        ys = torch.linspace(-0.5, 0.5, h, device=x_batch.device)[:, None]
        xs = torch.linspace(-0.5, 0.5, w, device=x_batch.device)[None, :]
        bump = torch.exp(-(ys**2 + xs**2) / (2 * self.width**2))
        return bump.expand(b, h, w)
