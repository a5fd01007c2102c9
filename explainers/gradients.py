"""Plain-gradient explainers through captum: Saliency, SmoothGrad, Input×Gradient, DeepLift.

Saliency (Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising
Image Classification Models and Saliency Maps", ICLR workshop 2014), SmoothGrad (Smilkov
et al., "SmoothGrad: removing noise by adding noise", 2017), Input×Gradient (Shrikumar et
al., "Not Just a Black Box: Learning Important Features Through Propagating Activation
Differences", 2016) and DeepLift (Shrikumar, Greenside & Kundaje, "Learning Important
Features Through Propagating Activation Differences", ICML 2017).

Every method differentiates the target-class *logit* (as captum does), and the base sums
the (B, 3, H, W) attributions over channels.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from captum.attr import DeepLift as CaptumDeepLift
from captum.attr import InputXGradient as CaptumInputXGradient
from captum.attr import NoiseTunnel
from captum.attr import Saliency as CaptumSaliency

from explainers.base import Explainer, ModelLike, images_per_forward


def derived_seed(generator: torch.Generator) -> int:
    """A seed for torch's global RNG drawn from one of the explainer's generators."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


@contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (CPU, and ``device`` if it is a GPU) inside the block only.

    captum draws SmoothGrad's noise and LIME/KernelSHAP's samples from the global RNG, with
    no generator argument; forking it makes those draws a function of ``seed`` and leaves
    the caller's RNG stream exactly as it was.
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for d in devices:
            torch.cuda.default_generators[d].manual_seed(seed)
        yield


class Saliency(Explainer):
    """|∂f_y/∂x| (Simonyan et al. 2014), captum's Saliency.

    ``abs=True`` (captum's default and the paper's choice) takes the magnitude of the
    gradient per channel; the base then *sums* the three channels, where the paper takes
    their maximum (the sum keeps the map a linear function of the per-channel maps, like
    every other method here, and ranks pixels almost identically).

    Args:
        model: a differentiable module on pixel-space images.
        abs: magnitude of the gradient (True) or the signed gradient (False).
    """

    layer_hooks = False  # gradients w.r.t. the input only: TorchScript works

    name = "saliency"

    def __init__(self, model: ModelLike, *, abs: bool = True, **kw):
        super().__init__(model, **kw)
        self.abs = bool(abs)

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        return CaptumSaliency(self.model).attribute(x_batch, target=y_batch, abs=self.abs)


class SmoothGrad(Explainer):
    """Saliency averaged over ``nt_samples`` noisy copies x + N(0, σ²) (Smilkov et al. 2017).

    captum's NoiseTunnel (``nt_type="smoothgrad"``) over captum's Saliency. With the
    default ``abs=True`` it averages |∇| over the noisy copies (captum's composition,
    and the paper's "absolute value" visualisation); ``abs=False`` averages the signed
    gradients as in the paper's equation. σ = ``stdevs`` is in pixel units: images are
    in [0, 1], so the default 0.15 is the paper's recommended noise level of 15% of the
    input range (x_max − x_min = 1). The noisy images are not clipped to [0, 1].

    Deterministic: captum draws the noise from torch's global RNG, so every call of
    :meth:`attribute` runs inside a forked global RNG seeded from the explainer's seed
    (the caller's RNG is left untouched). Each batch restarts the same noise stream, so a
    map depends only on the seed, the image and its position in its batch.

    Args:
        model: a differentiable module on pixel-space images.
        nt_samples: noisy copies per image (the paper's n).
        stdevs: standard deviation σ of the Gaussian noise, pixel units.
        abs: average |∇| (True) or signed ∇ (False) over the noisy copies.
        samples_per_forward: noisy copies of each image per forward/backward (captum's
            ``nt_samples_batch_size``); each pass holds ``samples_per_forward × B``
            images. Default: as many as ``max_images_per_forward`` allows (at least 1).
        max_images_per_forward: cap used by the default above; by default sized from
            the model's activation bytes, at most 256 on CPU and 4096 on a GPU
            (``explainers.base.images_per_forward``).
    """

    layer_hooks = False  # gradients w.r.t. the input only: TorchScript works

    name = "smoothgrad"

    def __init__(
        self,
        model: ModelLike,
        *,
        nt_samples: int = 25,
        stdevs: float = 0.15,
        abs: bool = True,
        samples_per_forward: int | None = None,
        max_images_per_forward: int | None = None,
        **kw,
    ):
        super().__init__(model, **kw)
        if nt_samples < 1:
            raise ValueError(f"nt_samples must be at least 1, got {nt_samples}")
        if stdevs < 0:
            raise ValueError(f"stdevs must be non-negative, got {stdevs}")
        self.nt_samples = int(nt_samples)
        self.stdevs = float(stdevs)
        self.abs = bool(abs)
        self.samples_per_forward = samples_per_forward
        self.max_images_per_forward = max_images_per_forward

    def per_forward(self, batch: int, image_shape: tuple[int, ...] | None = None) -> int:
        """Noisy copies of each image that go through one forward/backward, sized from the
        model where the (C, H, W) image shape is given."""
        if self.samples_per_forward is not None:
            return max(1, min(self.nt_samples, int(self.samples_per_forward)))
        cap = images_per_forward(self.device, self.max_images_per_forward, self.model,
                                 image_shape)  # fmt: skip
        return max(1, min(self.nt_samples, cap // batch))

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        nt = NoiseTunnel(CaptumSaliency(self.model))
        with seeded_global_rng(derived_seed(self.generator()), self.device):
            return nt.attribute(
                x_batch,
                nt_type="smoothgrad",
                nt_samples=self.nt_samples,
                nt_samples_batch_size=self.per_forward(len(x_batch), tuple(x_batch.shape[1:])),
                stdevs=self.stdevs,
                target=y_batch,
                abs=self.abs,
            )


class InputXGradient(Explainer):
    """x ⊙ ∂f_y/∂x (Shrikumar et al. 2016), captum's InputXGradient.

    Kept signed and summed over channels: the sum is the first-order Taylor estimate of
    the logit change when the pixel is set to black, so a pixel that lowers the class
    gets a negative score (like Integrated Gradients here). Rank by ``abs`` downstream
    if only magnitude matters.
    """

    layer_hooks = False  # gradients w.r.t. the input only: TorchScript works

    name = "input_x_gradient"

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        return CaptumInputXGradient(self.model).attribute(x_batch, target=y_batch)


class DeepLift(Explainer):
    """DeepLIFT-Rescale (Shrikumar et al. 2017) against a black image, captum's DeepLift.

    Attributions are signed and satisfy summation-to-delta: over all pixels and channels
    they add up to f_y(x) − f_y(black) (the base sums the channels; rank by ``abs``
    downstream if only magnitude matters).

    captum replaces the gradient of every ``nn.ReLU`` (and other supported
    non-linearity) *module* with the Rescale multiplier, through hooks it removes
    afterwards; this needs each non-linearity to be its own module, used once per
    forward, and not in-place (``benchmark.models.archs.small_cnn`` and the test
    models qualify; torchvision's ResNets reuse one in-place ReLU per block and do not).

    Args:
        model: an ``nn.Module`` on pixel-space images.
        eps: captum's threshold below which a Rescale denominator x − x' counts as zero
            (the multiplier then falls back to the gradient).
    """

    name = "deeplift"

    def __init__(self, model: ModelLike, *, eps: float = 1e-10, **kw):
        super().__init__(model, **kw)
        self.eps = float(eps)

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        return CaptumDeepLift(self.model, eps=self.eps).attribute(
            x_batch, baselines=torch.zeros_like(x_batch), target=y_batch
        )
