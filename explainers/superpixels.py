"""Surrogate-model explainers on SLIC superpixels: LIME and KernelSHAP, batched in torch.

LIME (Ribeiro, Singh & Guestrin, "'Why Should I Trust You?': Explaining the Predictions
of Any Classifier", KDD 2016) and KernelSHAP (Lundberg & Lee, "A Unified Approach to
Interpreting Model Predictions", NeurIPS 2017), with the interpretable features being
SLIC superpixels (Achanta et al., "SLIC Superpixels Compared to State-of-the-Art
Superpixel Methods", TPAMI 2012). A feature "off" is painted black (pixel 0).

Sampling distributions, LIME's similarity kernel and KernelSHAP's endpoint weights are
captum's defaults (``captum.attr.Lime`` / ``KernelShap``), but we no longer call captum:
it builds, weighs and forwards the perturbations one sample and one image at a time.
Here every image's samples are drawn at once and all B·n perturbed images of a batch
share forwards of up to ``images_per_forward`` images.

Both return the per-superpixel weights painted onto the superpixels' pixels, (B, H, W):
this is LIME-map of METHODS.md §6 (seed 003); there is no separate LIME-map class.
"""

from __future__ import annotations

import numpy as np
import torch
from captum._utils.models import Model
from skimage.segmentation import slic
from torch.utils.data import DataLoader

from explainers.base import Explainer, ModelLike, images_per_forward
from explainers.gradients import derived_seed
from explainers.inference import inference_forward


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


def weighted_linear_fit(
    z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted ridge fits of B independent problems: (coefficients (B, K), bias (B,)).

    Minimises Σ_i w_i (y_i − b − z_i·β)² + α‖β‖² per problem (sklearn's Ridge objective
    with sample weights, unpenalised intercept; α = 0 is sklearn's LinearRegression,
    minimum-norm β when the samples do not determine it), for z (B, n, K), y and w
    (B, n). One batched solve in float64 on the inputs' device. All-zero feature
    columns (padding for images with fewer superpixels) get coefficient 0.
    """
    z, y, w = z.double(), y.double(), w.double()
    w_sum = w.sum(1, keepdim=True)
    wn = w / w_sum
    z_mean = torch.einsum("bn,bnk->bk", wn, z)
    y_mean = (wn * y).sum(1)
    sw = wn.sqrt()
    a = sw[..., None] * (z - z_mean[:, None])
    rhs = sw * (y - y_mean[:, None])
    if alpha > 0:
        # The weights were normalised to sum 1: scale α the same way (÷ Σ w). The ridge
        # makes the normal equations positive definite, and their batched solve is ~100×
        # faster on a GPU than the SVD behind pinv.
        eye = torch.eye(z.shape[2], dtype=z.dtype, device=z.device)
        gram = a.mT @ a + (alpha / w_sum)[..., None] * eye
        beta = torch.linalg.solve(gram, a.mT @ rhs[..., None])[..., 0]
    else:
        beta = (torch.linalg.pinv(a) @ rhs[..., None])[..., 0]
    return beta, y_mean - (z_mean * beta).sum(1)


class WeightedLinearSurrogate(Model):
    """:func:`weighted_linear_fit` of one problem as a captum interpretable model.

    Not used by the explainers (they fit every image at once); it lets captum's Lime and
    KernelShap run with our fit, e.g. to check it against theirs.
    """

    def __init__(self, alpha: float = 0.0):
        self.alpha = float(alpha)
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def fit(self, train_data: DataLoader, **kwargs: object) -> dict[str, float]:
        zs, ys, ws = [], [], []
        for batch in train_data:
            z = batch[0].reshape(len(batch[0]), -1)
            w = batch[2] if len(batch) > 2 else torch.ones(len(z))
            # captum builds KernelSHAP's weights on the CPU whatever the inputs' device.
            zs.append(z)
            ys.append(batch[1].to(z.device).reshape(-1))
            ws.append(w.to(z.device).reshape(-1))
        beta, bias = weighted_linear_fit(
            torch.cat(zs)[None], torch.cat(ys)[None], torch.cat(ws)[None], self.alpha
        )
        self.weight, self.bias = beta.float(), bias.float()
        return {}

    def representation(self) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("fit the surrogate first")
        return self.weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().reshape(len(x), -1) @ self.representation().T + self.bias


class _SuperpixelExplainer(Explainer):
    """Shared pipeline: SLIC per image, seeded samples, batched forwards, one batched fit.

    Subclasses define the sampling distribution (:meth:`sample`), the sample weights
    (:meth:`sample_weights`) and the ridge penalty (``alpha``).
    """

    needs_grad = False
    black_box = True
    alpha = 0.0

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

    def per_forward(self, image_shape: tuple[int, ...] | None = None) -> int:
        """Perturbed images (of any images of the batch) per forward, sized from the model
        where the (C, H, W) image shape is given."""
        cap = self.max_images_per_forward
        requested = self.perturbations_per_eval if cap is None else cap
        return images_per_forward(self.device, requested, self.model, image_shape)

    def segments(self, x_batch: torch.Tensor) -> torch.Tensor:
        """(B, H, W) superpixel ids of every image."""
        return torch.stack([slic_segments(x, self.n_segments, self.compactness) for x in x_batch])

    def sample(self, k: int, generator: torch.Generator) -> torch.Tensor:
        """(n_samples, k) binary samples (1: superpixel kept) of one image with k superpixels."""
        raise NotImplementedError

    def sample_weights(
        self, x_batch: torch.Tensor, segments: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """(B, n) weights of the samples z (B, n, K_max) in the surrogate's fit."""
        raise NotImplementedError

    def draw(self, segments: torch.Tensor) -> torch.Tensor:
        """Samples z (B, n_samples, K_max) of every image, zero beyond its K_b superpixels.

        Image b draws from its own generator, seeded by the b-th draw of the explainer's
        generator (restarted every batch): its samples depend on its position in the
        batch and its own segmentation only, not on the other images.
        """
        counts = (segments.flatten(1).amax(1) + 1).tolist()
        gen = self.generator()
        z = segments.new_zeros(len(segments), self.n_samples, max(counts), dtype=torch.float32)
        for b, k in enumerate(counts):
            g = torch.Generator(self.device).manual_seed(derived_seed(gen))
            z[b, :, :k] = self.sample(k, g)
        return z

    def evaluate(
        self, x_batch: torch.Tensor, y_batch: torch.Tensor, segments: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """(B, n) target logits of the perturbed images x_b ⊙ z[b, i, seg_b].

        The B·n perturbed images go through the model in forwards of ``per_forward()``
        images across image boundaries (all full but the last). Each image's share of a
        forward is one gather of its masks and one product written into the forward's
        input: a single gather over the whole chunk would first copy every row's
        segmentation and image, 3–7× slower on CPU.
        """
        b, n, _ = z.shape
        c, h, w = x_batch.shape[1:]
        seg = segments.reshape(b, h * w)
        targets = y_batch.repeat_interleave(n)[:, None]
        z = z.to(x_batch.dtype)
        out = torch.empty(b * n, device=x_batch.device)
        cap = self.per_forward((c, h, w))
        forward = inference_forward(self.model)
        for start in range(0, b * n, cap):
            stop = min(start + cap, b * n)
            xs = x_batch.new_empty(stop - start, c, h, w)
            for img in range(start // n, (stop - 1) // n + 1):
                lo, hi = max(start, img * n), min(stop, (img + 1) * n)
                keep = z[img, lo - img * n : hi - img * n].gather(1, seg[img].expand(hi - lo, -1))
                torch.mul(x_batch[img], keep.view(-1, 1, h, w), out=xs[lo - start : hi - start])
            out[start:stop] = forward(xs).gather(1, targets[start:stop])[:, 0]
        return out.view(b, n)

    def superpixel_weights(
        self, x_batch: torch.Tensor, y_batch: torch.Tensor, segments: torch.Tensor
    ) -> torch.Tensor:
        """(B, K_max) surrogate coefficients of every image's superpixels (0 past K_b)."""
        z = self.draw(segments)
        f = self.evaluate(x_batch, y_batch, segments, z)
        beta, _ = weighted_linear_fit(z, f, self.sample_weights(x_batch, segments, z), self.alpha)
        return beta.float()

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        segments = self.segments(x_batch)
        weights = self.superpixel_weights(x_batch, y_batch, segments)
        return weights.gather(1, segments.flatten(1)).view_as(segments)


class LIME(_SuperpixelExplainer):
    """LIME on SLIC superpixels; the map paints each superpixel with its weight (LIME-map).

    As captum's Lime with its defaults: samples z keep each superpixel with probability ½
    (the rest painted black), weigh each by exp(−d²/(2σ²)), σ = 1, with d the cosine
    distance between the original and the perturbed image, and fit a linear surrogate of
    the target-class logit on z. The surrogate is a weighted ridge regression with
    α = ``alpha`` (LIME's reference implementation uses Ridge(α=1); captum's default
    Lasso(α=0.01) zeroes most superpixels, leaving ties that rank arbitrarily), fitted
    in torch on the device (:func:`weighted_linear_fit`).

    Data leave the device in one place: the SLIC segmentation (scikit-image, CPU).
    Sampling is deterministic for a seed (see :meth:`draw`).

    Args:
        model: any module or callable on pixel-space images; forward passes only.
        n_samples: perturbed images per explained image.
        n_segments: SLIC's target number of superpixels.
        compactness: SLIC's colour/space trade-off (higher: squarer superpixels).
        alpha: ridge penalty of the surrogate (0: weighted least squares).
        positive_only: zero the superpixels with negative weight (LIME's
            ``positive_only`` display).
        max_images_per_forward: perturbed images per forward, those of all the batch's
            images together; by default sized from the model's activation bytes, at
            most 256 on CPU and 4096 on a GPU (``explainers.base.images_per_forward``).
        perturbations_per_eval: deprecated alias of ``max_images_per_forward`` (captum's
            name), used when that is not given.
    """

    name = "lime"
    kernel_width = 1.0  # captum's default σ

    def __init__(self, model: ModelLike, *, alpha: float = 1.0, positive_only: bool = False, **kw):
        super().__init__(model, **kw)
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        self.alpha = float(alpha)
        self.positive_only = bool(positive_only)

    def sample(self, k: int, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(self.n_samples, k, generator=generator, device=self.device) < 0.5

    def sample_weights(
        self, x_batch: torch.Tensor, segments: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        # z is binary, so cos(x, x⊙m) = √(Σ_kept x² / Σ x²): per-superpixel sums of x²
        # give every sample's distance without building the images again.
        sq = x_batch.double().square().sum(1).flatten(1)
        per_sp = sq.new_zeros(z.shape[0], z.shape[2]).scatter_add_(1, segments.flatten(1), sq)
        kept = torch.einsum("bnk,bk->bn", z.double(), per_sp)
        cos = (kept / per_sp.sum(1, keepdim=True).clamp_min(1e-300)).sqrt()
        return torch.exp(-((1.0 - cos) ** 2) / (2.0 * self.kernel_width**2))

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        maps = super().attribute(x_batch, y_batch)
        return maps.clamp_min(0.0) if self.positive_only else maps


class KernelSHAP(_SuperpixelExplainer):
    """KernelSHAP on SLIC superpixels: estimated Shapley values painted on the pixels.

    As captum's KernelShap: the first two samples are the full and the empty coalition,
    weighted 10⁶ (so the values sum to f_y(x) − f_y(black)); every other sample keeps a
    uniformly random set of s superpixels, s ∈ 1..M−1 drawn with probability
    ∝ (M−1)/(s(M−s)) (the Shapley kernel), weight 1; then unpenalised weighted least
    squares on the target-class logit (:func:`weighted_linear_fit`, α = 0). Values are
    signed. Device, determinism and arguments as for :class:`LIME` (without ``alpha``
    and ``positive_only``).
    """

    name = "kernel_shap"
    endpoint_weight = 1e6  # captum's inf_weight

    def sample(self, k: int, generator: torch.Generator) -> torch.Tensor:
        dev, m = self.device, self.n_samples - 2
        ends = torch.tensor([[True], [False]], device=dev).expand(2, k)
        if k == 1 or m == 0:
            # M = 1: no coalition size lies in 1..M−1, and f(x), f(black) give the exact
            # value; the other samples repeat the full coalition (n forwards per image).
            return torch.cat([ends, ends.new_ones(m, k)])
        sizes = torch.arange(1, k, device=dev, dtype=torch.float64)
        s = torch.multinomial((k - 1) / (sizes * (k - sizes)), m, True, generator=generator) + 1
        ranks = torch.rand(m, k, generator=generator, device=dev).argsort(1).argsort(1)
        return torch.cat([ends, ranks < s[:, None]])

    def sample_weights(
        self, x_batch: torch.Tensor, segments: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        on = z.sum(2)
        k = (segments.flatten(1).amax(1) + 1)[:, None]
        endpoint = (on == 0) | (on == k)
        return torch.where(endpoint, self.endpoint_weight, 1.0).double()
