"""Surrogate-model explainers on SLIC superpixels through captum: LIME and KernelSHAP.

LIME (Ribeiro, Singh & Guestrin, "'Why Should I Trust You?': Explaining the Predictions
of Any Classifier", KDD 2016) and KernelSHAP (Lundberg & Lee, "A Unified Approach to
Interpreting Model Predictions", NeurIPS 2017), with the interpretable features being
SLIC superpixels (Achanta et al., "SLIC Superpixels Compared to State-of-the-Art
Superpixel Methods", TPAMI 2012). A feature "off" is painted black (pixel 0).

Both return the per-superpixel weights painted onto the superpixels' pixels, (B, H, W):
this is LIME-map of METHODS.md §6 (seed 003); there is no separate LIME-map class.
"""

from __future__ import annotations

import numpy as np
import torch
from captum._utils.models import Model
from captum.attr import KernelShap as CaptumKernelShap
from captum.attr import Lime as CaptumLime
from skimage.segmentation import slic
from torch.utils.data import DataLoader

from explainers.base import Explainer, ModelLike, images_per_forward
from explainers.gradients import derived_seed, seeded_global_rng


def slic_segments(
    image: torch.Tensor, n_segments: int = 50, compactness: float = 10.0
) -> torch.Tensor:
    """SLIC superpixels of one (C, H, W) image in [0, 1]: (H, W) long ids 0..K−1.

    Computed by scikit-image on the CPU (the image is copied off the device and the
    labels copied back). Colour images are segmented in CIELAB (skimage's default), so
    ``compactness`` has skimage's usual scale. Ids are renumbered to be contiguous.
    On pixel noise the default compactness gives a single superpixel (the noise
    fragments every cluster and SLIC's connectivity step merges the fragments).
    """
    img = image.detach().float().clamp(0.0, 1.0).permute(1, 2, 0).cpu().double().numpy()
    labels = slic(
        img, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1
    )
    _, ids = np.unique(labels, return_inverse=True)
    return torch.from_numpy(ids.reshape(labels.shape).astype(np.int64)).to(image.device)


class WeightedLinearSurrogate(Model):
    """Weighted least squares with an unpenalised intercept, closed form, in torch.

    Minimises Σ_i w_i (y_i − b − z_i·β)² + α‖β‖² (sklearn's Ridge objective with
    sample weights; α = 0 is sklearn's LinearRegression, minimum-norm β when the
    samples do not determine it). Solved in float64 on the samples' device, so the
    fit needs neither scikit-learn nor a copy to the CPU (captum's defaults,
    SkLearnLasso / SkLearnLinearRegression, need both).
    """

    def __init__(self, alpha: float = 0.0):
        self.alpha = float(alpha)
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def fit(self, train_data: DataLoader, **kwargs: object) -> dict[str, float]:
        xs, ys, ws = [], [], []
        for batch in train_data:
            z, y = batch[0], batch[1]
            w = batch[2] if len(batch) > 2 else torch.ones(len(z), device=z.device)
            xs.append(z.double().reshape(len(z), -1))
            ys.append(y.double().reshape(-1))
            ws.append(w.double().reshape(-1))
        z, y, w = torch.cat(xs), torch.cat(ys), torch.cat(ws)
        w = w / w.sum()
        z_mean, y_mean = w @ z, w @ y
        zc, yc = z - z_mean, y - y_mean
        sw = w.sqrt()[:, None]
        a, rhs = sw * zc, sw[:, 0] * yc
        if self.alpha > 0:
            m = z.shape[1]
            # Σ w_i(..)² with w normalised to sum 1: scale α the same way (÷ Σ w).
            reg = (self.alpha / float(torch.cat(ws).sum())) ** 0.5
            a = torch.cat([a, reg * torch.eye(m, dtype=a.dtype, device=a.device)])
            rhs = torch.cat([rhs, rhs.new_zeros(m)])
        beta = torch.linalg.pinv(a) @ rhs
        self.weight = beta[None].float()
        self.bias = (y_mean - z_mean @ beta).reshape(1).float()
        return {}

    def representation(self) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("fit the surrogate first")
        return self.weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().reshape(len(x), -1) @ self.representation().T + self.bias


class _SuperpixelExplainer(Explainer):
    """Shared plumbing: SLIC per image, one captum call per image, seeded sampling.

    captum's Lime/KernelShap accept a batch with a per-image feature mask, but then
    run one extra forward on the whole batch and loop over the images anyway, fitting
    one surrogate each; we loop ourselves (no extra forward, each image with its own
    number of superpixels). Each image's ``n_samples`` perturbations go through the
    model ``perturbations_per_eval`` at a time.
    """

    needs_grad = False

    def __init__(
        self,
        model: ModelLike,
        *,
        n_samples: int = 200,
        n_segments: int = 50,
        compactness: float = 10.0,
        perturbations_per_eval: int | None = None,
        max_images_per_forward: int | None = None,
        **kw,
    ):
        super().__init__(model, **kw)
        if n_samples < 2:
            raise ValueError(f"n_samples must be at least 2, got {n_samples}")
        self.n_samples = int(n_samples)
        self.n_segments = int(n_segments)
        self.compactness = float(compactness)
        self.perturbations_per_eval = perturbations_per_eval
        self.max_images_per_forward = max_images_per_forward

    def per_eval(self) -> int:
        """Perturbed copies of one image per forward (captum's perturbations_per_eval)."""
        if self.perturbations_per_eval is not None:
            return max(1, int(self.perturbations_per_eval))
        cap = images_per_forward(self.device, self.max_images_per_forward)
        return max(1, min(self.n_samples, cap))

    def segments(self, x_batch: torch.Tensor) -> torch.Tensor:
        """(B, H, W) superpixel ids of every image."""
        return torch.stack([slic_segments(x, self.n_segments, self.compactness) for x in x_batch])

    def captum_method(self) -> CaptumLime:
        raise NotImplementedError

    def weights_to_map(self, weights: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """Paint the (K,) superpixel weights onto the (H, W) segmentation."""
        return weights[segments]

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        segments = self.segments(x_batch)
        gen = self.generator()
        maps = []
        for x, y, seg in zip(x_batch, y_batch, segments, strict=True):
            with seeded_global_rng(derived_seed(gen), self.device):
                weights = self.superpixel_weights(x, y, seg)
            maps.append(self.weights_to_map(weights.reshape(-1).float(), seg))
        return torch.stack(maps)

    def superpixel_weights(
        self, x: torch.Tensor, y: torch.Tensor, seg: torch.Tensor
    ) -> torch.Tensor:
        """(K,) weights of one (C, H, W) image's superpixels ``seg`` for class ``y``."""
        return self.captum_method().attribute(
            x[None],
            baselines=0.0,
            target=y[None],
            feature_mask=seg[None, None],
            n_samples=self.n_samples,
            perturbations_per_eval=self.per_eval(),
            return_input_shape=False,
        )


class LIME(_SuperpixelExplainer):
    """LIME on SLIC superpixels; the map paints each superpixel with its weight (LIME-map).

    captum's Lime samples binary vectors z (each superpixel kept with probability ½,
    the rest painted black), weighs each sample by captum's default kernel
    exp(−d²/2) with d the cosine distance between the original and perturbed image,
    and fits a linear surrogate of the target-class logit on z. The surrogate is a
    weighted ridge regression with α = ``alpha`` (LIME's reference implementation uses
    Ridge(α=1); captum's default Lasso(α=0.01) zeroes most superpixels, leaving ties
    that rank arbitrarily), fitted in torch on the device (:class:`WeightedLinearSurrogate`).

    Data leave the device in one place: the SLIC segmentation (scikit-image, CPU).
    Sampling is deterministic: captum draws from torch's global RNG, which is forked
    and seeded from the explainer's seed for each image (one draw per image of the
    batch from the explainer's generator, restarted every batch).

    Args:
        model: any module or callable on pixel-space images; forward passes only.
        n_samples: perturbed images per explained image.
        n_segments: SLIC's target number of superpixels.
        compactness: SLIC's colour/space trade-off (higher: squarer superpixels).
        alpha: ridge penalty of the surrogate (0: weighted least squares).
        positive_only: zero the superpixels with negative weight (LIME's
            ``positive_only`` display).
        perturbations_per_eval: perturbed images per forward; default all
            ``n_samples``, capped at ``max_images_per_forward``.
        max_images_per_forward: cap used by the default above; by default 256 on CPU
            and 4096 on a GPU (see ``explainers.base.images_per_forward``).
    """

    name = "lime"

    def __init__(self, model: ModelLike, *, alpha: float = 1.0, positive_only: bool = False, **kw):
        super().__init__(model, **kw)
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        self.alpha = float(alpha)
        self.positive_only = bool(positive_only)

    def captum_method(self) -> CaptumLime:
        return CaptumLime(self.model, interpretable_model=WeightedLinearSurrogate(self.alpha))

    def weights_to_map(self, weights: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        return (weights.clamp_min(0.0) if self.positive_only else weights)[segments]


class KernelSHAP(_SuperpixelExplainer):
    """KernelSHAP on SLIC superpixels: estimated Shapley values painted on the pixels.

    captum's KernelShap samples coalitions with the Shapley kernel (k superpixels kept
    with probability ∝ (M−1)/(k(M−k)), the rest painted black), always includes the
    full and the empty coalition with weight 10⁶ (so the values sum to
    f_y(x) − f_y(black)), and fits weighted least squares on the target-class logit.
    We swap captum's scikit-learn LinearRegression for the same fit in torch on the
    device (:class:`WeightedLinearSurrogate` with α = 0). Values are signed.

    Device, determinism and arguments as for :class:`LIME` (without ``alpha`` and
    ``positive_only``).
    """

    name = "kernel_shap"

    def captum_method(self) -> CaptumKernelShap:
        method = CaptumKernelShap(self.model)
        method.interpretable_model = WeightedLinearSurrogate(alpha=0.0)
        return method

    def superpixel_weights(
        self, x: torch.Tensor, y: torch.Tensor, seg: torch.Tensor
    ) -> torch.Tensor:
        if int(seg.max()) > 0:
            return super().superpixel_weights(x, y, seg)
        # One superpixel (SLIC merges everything on flat or noisy images): captum's
        # coalition-size distribution is undefined for M = 1, and the exact Shapley
        # value of a lone player is f_y(x) − f_y(black), one forward of two images.
        logits = self.model(torch.stack([x, torch.zeros_like(x)]))
        return (logits[0, y] - logits[1, y]).reshape(1)
