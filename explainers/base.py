"""The explainer template: device placement, batching and hook cleanup in one place.

A method overrides one hook, :meth:`Explainer.attribute`, that maps a batch already on
the model's device to attributions; the base turns them into (B, H, W) maps at the
input size, on the caller's device. Inputs are pixel-space images in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

ModelLike = nn.Module | Callable[[torch.Tensor], torch.Tensor]


class Explainer:
    """Base class of every explainer.

    Args:
        model: an ``nn.Module`` (or, for black-box methods, any callable) mapping
            pixel-space images (B, 3, H, W) to logits (B, C).
        batch_size: images per call of :meth:`attribute`.
        seed: seed of the explainer's own randomness (masks, noise, baselines).
        device: where to compute; by default the model's device.
    """

    name: ClassVar[str] = ""
    #: False for methods that only run forward passes (saves autograd memory).
    needs_grad: ClassVar[bool] = True
    #: True for methods that only call the model (any callable, e.g. an onnxruntime
    #: session): no gradients, no layer hooks.
    black_box: ClassVar[bool] = False
    #: False for gradient methods that hook no layer (they work on TorchScript too).
    layer_hooks: ClassVar[bool] = True
    #: Inputs beyond (x, y): "landmarks" (``l_batch`` (B, K, 2) pixel x, y, handed to
    #: :meth:`attribute`), "canonical" (a canonical face given to the constructor) and
    #: "regions" (``r_batch`` (B, H, W), the scenario's bias-region mask: the oracle).
    needs: ClassVar[frozenset[str]] = frozenset()
    #: True for the benchmark's reference rows (random, oracle): they do not explain
    #: the model, they bound what the metrics can say about those that do.
    reference: ClassVar[bool] = False
    #: True for model-level methods (CMS) that must :meth:`fit` on the explained set
    #: before they explain any image of it.
    dataset_level: ClassVar[bool] = False

    def __init__(
        self,
        model: ModelLike,
        *,
        batch_size: int = 64,
        seed: int = 0,
        device: torch.device | str | None = None,
    ):
        self.model = model
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else _model_device(model)
        self._handles: list[RemovableHandle] = []
        if isinstance(model, nn.Module):
            model.eval()

    # -- the one hook a method overrides ------------------------------------------------
    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        """Attributions for ``x_batch`` (on ``self.device``) w.r.t. classes ``y_batch``.

        Methods that need landmarks also take ``l_batch``. Returns (B, H', W'),
        (B, 1, H', W') or (B, C, H', W'); channels are summed and the map is upsampled
        to the input size by the base.
        """
        raise NotImplementedError

    def fit(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        """Model-level methods see every batch of the explained set first.

        Each batch is a dict with ``x_batch``, ``y_batch`` and, where needed, ``l_batch``.
        """

    # -- template ------------------------------------------------------------------------
    def explain(
        self,
        x_batch: torch.Tensor,
        y_batch: torch.Tensor,
        l_batch: torch.Tensor | None = None,
        r_batch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Saliency maps (B, H, W), float32, on ``x_batch``'s device.

        ``l_batch`` (B, K, 2) are the images' landmarks, used by methods that need them;
        ``r_batch`` (B, H, W) the bias-region masks, used by the oracle.
        """
        h, w = x_batch.shape[-2:]
        if "landmarks" in self.needs and l_batch is None:
            raise ValueError(f"{self.name or type(self).__name__} needs landmarks (l_batch)")
        if "regions" in self.needs and r_batch is None:
            raise ValueError(f"{self.name or type(self).__name__} needs region masks (r_batch)")
        out = []
        try:
            for i in range(0, len(x_batch), self.batch_size):
                xb = x_batch[i : i + self.batch_size].to(self.device, torch.float32)
                yb = y_batch[i : i + self.batch_size].to(self.device).long()
                extra = {}
                if "landmarks" in self.needs:
                    extra["l_batch"] = l_batch[i : i + self.batch_size].to(self.device).float()
                if "regions" in self.needs:
                    extra["r_batch"] = r_batch[i : i + self.batch_size].to(self.device).float()
                with torch.set_grad_enabled(self.needs_grad):
                    a = self.attribute(xb, yb, **extra)
                out.append(to_map(a.detach().float(), (h, w)).to(x_batch.device))
        finally:
            self.remove_hooks()
        return torch.cat(out) if out else x_batch.new_zeros((0, h, w), dtype=torch.float32)

    __call__ = explain

    def generator(self, offset: int = 0) -> torch.Generator:
        """A generator on the compute device seeded from ``seed`` (and an offset)."""
        return torch.Generator(self.device).manual_seed(self.seed + offset)

    def add_hook(self, handle: RemovableHandle) -> None:
        """Track a hook so it is removed after every :meth:`explain` call."""
        self._handles.append(handle)

    def remove_hooks(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> Explainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove_hooks()


def images_per_forward(
    device: torch.device,
    requested: int | None = None,
    model: ModelLike | None = None,
    image_shape: tuple[int, ...] | torch.Size | None = None,
) -> int:
    """How many perturbed images one forward of a perturbation method holds.

    ``requested`` where given; else, with the model and the (C, H, W) image shape, an
    activation budget over the model's bytes per image (``explainers.forward_size``);
    else 256 on CPU (3.7k img/s at 256 against 1.8k at 2048 for the small CNN at 64 px,
    with glibc's malloc tuned as ``benchmark.allocator`` does) and 4096 on a GPU, which
    wants thousands to fill its cores.
    """
    from explainers.forward_size import images_per_forward as sized

    return sized(device, requested, model, image_shape)


def class_scores(model: ModelLike, outputs: torch.Tensor) -> torch.Tensor:
    """The score of each output that perturbation methods and confidence metrics read:
    the softmax probability for a classifier's logits, the outputs themselves for a
    model that says its outputs are scores already (``raw_scores = True``, e.g. a
    verification model's cosine similarities, METHODS §10)."""
    outputs = outputs.float()
    return outputs if getattr(model, "raw_scores", False) else outputs.softmax(1)


def _model_device(model: ModelLike) -> torch.device:
    if isinstance(model, nn.Module):
        for t in model.parameters():
            return t.device
        for t in model.buffers():
            return t.device
    return torch.device("cpu")


def to_map(a: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,H',W') / (B,C,H',W') attributions → (B,H,W): channels summed, bilinear resize."""
    if a.dim() == 4:
        a = a.sum(dim=1)
    if a.dim() != 3:
        raise ValueError(f"attributions must be (B,H,W) or (B,C,H,W), got {tuple(a.shape)}")
    if tuple(a.shape[-2:]) != tuple(size):
        a = F.interpolate(a.unsqueeze(1), size=size, mode="bilinear", align_corners=False)
        a = a.squeeze(1)
    return a


def build_explainer(cls: Callable[..., Explainer], model: ModelLike, *, canonical: Any = None,
                    **params: Any) -> Explainer:  # fmt: skip
    """An explainer of class ``cls``; the canonical face goes only to methods that need it.

    Raises:
        ValueError: ``cls`` needs a canonical face and none was given.
    """
    if "canonical" in getattr(cls, "needs", ()):
        if canonical is None:
            raise ValueError(f"{getattr(cls, '__name__', cls)} needs a canonical face")
        params = {"canonical": canonical, **params}
    return cls(model, **params)


def fit_and_explain(
    explainer: Explainer,
    x_batch: torch.Tensor,
    y_batch: torch.Tensor,
    l_batch: torch.Tensor | None = None,
    r_batch: torch.Tensor | None = None,
) -> torch.Tensor:
    """Maps of one set of images; model-level methods (CMS) are fitted on that set first."""
    if explainer.dataset_level:
        explainer.fit([{"x_batch": x_batch, "y_batch": y_batch, "l_batch": l_batch}])
    return explainer.explain(x_batch, y_batch, l_batch, r_batch)
