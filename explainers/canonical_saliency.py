"""Canonical Image Saliency (CIS) and Canonical Model Saliency (CMS) maps.

John, Balasubramanian & Jawahar, "Canonical Saliency Maps: Decoding Deep Face Models"
(IEEE T-BIOM 2021), §III: occlude a square at the image position of each point of the
canonical face F, record the drop in class confidence on F around the point, divide by
how often each pixel of F was updated (density normalisation, §III-C); the CMS is the
mean CIS over a test set (§III-D, METHODS.md §7). Both are drawn back onto each image
through the inverse correspondence, so they are scored like any other explainer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from explainers.base import Explainer, ModelLike, class_scores, images_per_forward
from explainers.canonical import CanonicalFace, PiecewiseAffine, pixel_centres


def _axis(n: int, stride: int, device: torch.device) -> Tensor:
    """Grid coordinates along one axis of the canonical frame, centred."""
    return torch.arange((n - 1) % stride / 2, n, stride, device=device, dtype=torch.float32)


def _bands(centres: Tensor, side: float, n: int) -> Tensor:
    """(len(centres), n) float: pixels of an axis within side/2 of each centre."""
    pix = torch.arange(n, device=centres.device, dtype=torch.float32)
    return ((pix[None] - centres[:, None]).abs() < side / 2).float()


def _squares(centres: Tensor, side: float, size: tuple[int, int]) -> Tensor:
    """(n, H, W) bool: the side×side squares around ``centres`` (n, 2), paper eq. (2)."""
    pix = pixel_centres(size, centres.device).view(*size, 2)
    d = (pix[None] - centres[:, None, None, :]).abs()
    return (d < side / 2).all(-1)


class CanonicalImageSaliency(Explainer):
    """CIS: occlusion on the canonical face's grid, reprojected onto the image.

    Args:
        model: classifier (or plain callable) on pixel-space images.
        canonical: the canonical face F.
        patch: side of the occluding square in image pixels (paper: 15 at 224 px;
            default scaled to the input size).
        stride: spacing of the canonical grid points in F's pixels (default patch/2, so
            that squares overlap and the density normalisation matters, as in §III-E).
        area: "frame" puts grid points over the whole canonical frame (hat, hair and
            neck are bias regions here); "face" only inside F's landmark hull, as the
            paper's face mesh does.
        max_images_per_forward: occluded images per forward (default by device).
    """

    name: ClassVar[str] = "cis"
    needs_grad: ClassVar[bool] = False
    black_box: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({"landmarks", "canonical"})

    def __init__(
        self,
        model: ModelLike,
        *,
        canonical: CanonicalFace,
        patch: int | None = None,
        stride: int | None = None,
        area: Literal["frame", "face"] = "frame",
        max_images_per_forward: int | None = None,
        **kw: Any,
    ):
        super().__init__(model, **kw)
        if area not in ("frame", "face"):
            raise ValueError(f"area must be 'frame' or 'face', got {area!r}")
        if min(patch or 1, stride or 1) < 1:
            raise ValueError("patch and stride must be at least 1 pixel")
        self.canonical = canonical
        self.patch = patch
        self.stride = stride
        self.area = area
        self.max_images_per_forward = max_images_per_forward
        self._warps: dict[tuple[int, int], PiecewiseAffine] = {}

    def warp(self, image_size: tuple[int, int]) -> PiecewiseAffine:
        key = (int(image_size[0]), int(image_size[1]))
        if key not in self._warps:
            self._warps[key] = PiecewiseAffine(self.canonical, key)
        return self._warps[key]

    def _settings(self, image_size: tuple[int, int]) -> tuple[int, int, float]:
        patch = self.patch or max(2, round(15 * image_size[0] / 224))
        stride = self.stride or max(1, patch // 2)
        # §III-B: the square on F has side sz·H_F/H_X.
        return patch, stride, patch * self.canonical.size[0] / image_size[0]

    @torch.no_grad()
    def canonical_maps(self, x_batch: Tensor, y_batch: Tensor, l_batch: Tensor) -> Tensor:
        """CIS maps (B, H_F, W_F) of class ``y_batch``: density-normalised drops."""
        size = tuple(x_batch.shape[-2:])
        patch, stride, side_f = self._settings(size)
        warp = self.warp(size)
        dev = x_batch.device
        ys, xs = (_axis(n, stride, dev) for n in self.canonical.size)
        q = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
        used = warp.inside_face(q) if self.area == "face" else torch.ones(len(q), dtype=bool)
        used = used.to(dev)
        p = warp.to_image(q[used], l_batch)  # (B, Q, 2) image positions of the points
        b, n = p.shape[:2]
        drops = torch.zeros(b, len(q), device=dev)
        full = self._confidence(x_batch, y_batch)
        cap = images_per_forward(dev, self.max_images_per_forward)
        flat, cols = p.reshape(-1, 2), used.nonzero()[:, 0]
        for i in range(0, b * n, cap):  # every forward holds `cap` occluded images
            j = torch.arange(i, min(i + cap, b * n), device=dev)
            img = j // n
            keep = ~_squares(flat[j], patch, size)[:, None]
            drops[img, cols[j % n]] = full[img] - self._confidence(
                x_batch[img] * keep, y_batch[img]
            )
        # Each point adds its drop to a side_f square on F (a row band × a column band),
        # so P* = Rᵀ·S·C and the update count N = Rᵀ·used·C: two small matmuls.
        rows, cols_f = (
            _bands(ys, side_f, self.canonical.size[0]),
            _bands(xs, side_f, self.canonical.size[1]),
        )
        grid = drops.view(b, len(ys), len(xs))
        total = rows.T @ grid @ cols_f
        count = rows.T @ used.view(len(ys), len(xs)).float() @ cols_f
        return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))

    def _confidence(self, x: Tensor, y: Tensor) -> Tensor:
        return class_scores(self.model, self.model(x)).gather(1, y[:, None])[:, 0]

    def attribute(self, x_batch: Tensor, y_batch: Tensor, l_batch: Tensor) -> Tensor:
        cis = self.canonical_maps(x_batch, y_batch, l_batch)
        return self.warp(tuple(x_batch.shape[-2:])).reproject(cis, l_batch)


class CanonicalModelSaliency(CanonicalImageSaliency):
    """CMS: the mean CIS over the explained set, reprojected onto each image (§III-D).

    Args:
        per_class: one CMS per explained class (default). The paper averages over all
            test images of a task; with two complementary classes that mean cancels
            each class's evidence (a drop for "female" is a rise for "male"), so each
            image gets the CMS of the class it is explained for. False: one mean.
        **kw: as :class:`CanonicalImageSaliency`.
    """

    name: ClassVar[str] = "cms"
    dataset_level: ClassVar[bool] = True

    def __init__(self, model: ModelLike, *, per_class: bool = True, **kw: Any):
        super().__init__(model, **kw)
        self.per_class = bool(per_class)
        self.cms: Tensor | None = None  # (classes, H_F, W_F), or (1, H_F, W_F) if not per class
        self.overall: Tensor | None = None  # the mean over every image, for unseen classes

    @torch.no_grad()
    def fit(self, batches: Iterable[dict[str, Tensor]]) -> None:
        total: dict[int, Tensor] = {}
        count: dict[int, int] = {}
        for batch in batches:
            x = batch["x_batch"].to(self.device, torch.float32)
            y = batch["y_batch"].to(self.device).long()
            l_batch = batch["l_batch"].to(self.device).float()
            for i in range(0, len(x), self.batch_size):
                sl = slice(i, i + self.batch_size)
                cis = self.canonical_maps(x[sl], y[sl], l_batch[sl])
                keys = y[sl] if self.per_class else torch.zeros_like(y[sl])
                for k in keys.unique().tolist():
                    sel = cis[keys == k].sum(0)
                    total[k] = total[k] + sel if k in total else sel
                    count[k] = count.get(k, 0) + int((keys == k).sum())
        if not count:
            raise ValueError("cms: fit saw no images")
        overall = sum(total.values()) / sum(count.values())
        n = max(total) + 1
        self.cms = torch.stack([total[k] / count[k] if k in total else overall for k in range(n)])
        self.overall = overall

    def attribute(self, x_batch: Tensor, y_batch: Tensor, l_batch: Tensor) -> Tensor:
        if self.cms is None:
            raise ValueError("cms must be fitted on the explained set before explaining")
        if self.per_class:
            known = y_batch < len(self.cms)
            rows = self.cms[y_batch.clamp_max(len(self.cms) - 1)]
            maps = torch.where(known[:, None, None], rows, self.overall)
        else:
            maps = self.cms[0].expand(len(x_batch), -1, -1)
        return self.warp(tuple(x_batch.shape[-2:])).reproject(maps, l_batch)
