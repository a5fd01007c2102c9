"""Explain and score one scenario: every explainer batch by batch, every metric updated
from the same maps, FaceX figures drawn, then the comparative metrics (Win %) computed
over all explainers of the scenario.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from benchmark.data.base import FaceArrays
from benchmark.data.protocols import CelebAMaskRegions
from benchmark.errors import BenchError
from benchmark.models.train import to_pixels
from benchmark.store import Store
from explainers.base import Explainer, build_explainer, fit_and_explain
from explainers.canonical import CanonicalFace, CanonicalSummary, PiecewiseAffine
from leaderboard.site import slug
from metrics.base import Metric, MetricContext
from metrics.regions import RegionIoR, localises, postprocess, region_masks

if TYPE_CHECKING:
    from benchmark.runner import Plan
    from benchmark.suite import Scenario


class FaceXFigures:
    """The FaceX prototype heatmap and high-impact patch grid of one explainer (§2).

    Args:
        region_names: names of the label ids.
        patch: patch side Z in pixels.
        top_k: patches kept per region.
        canonical: the canonical face for the canonical summary figure, or None.
        image_size: (H, W) of the explained images.
        prototype: draw the prototype heatmap (CelebAMask-HQ regions only).
        gallery: explained faces drawn one by one (image, map, bias-region mask).
        shortcut: the region ids of the gallery's mask (empty: no mask panel).
    """

    def __init__(
        self,
        region_names: tuple[str, ...],
        patch: int,
        top_k: int,
        canonical: CanonicalFace | None = None,
        image_size: tuple[int, int] = (0, 0),
        prototype: bool = True,
        gallery: int = 0,
        shortcut: tuple[int, ...] = (),
    ):
        from metrics.patches import HighImpactPatches

        self.region_names, self.prototype = region_names, prototype
        self.patches = HighImpactPatches(region_names, patch, top_k)
        self.ior = RegionIoR(len(region_names))
        self.canonical = canonical
        self.summary = CanonicalSummary(canonical, image_size) if canonical is not None else None
        self.gallery, self.shortcut = int(gallery), tuple(shortcut)
        self.shown: list[tuple[Any, Any, Any]] = []  # (image, map, mask) on the CPU

    def update(
        self,
        x_batch: torch.Tensor,
        a_batch: torch.Tensor,
        s_batch: torch.Tensor | None,
        l_batch: torch.Tensor | None,
        offset: int,
    ) -> None:
        if s_batch is not None:
            self.ior.update(a_batch, s_batch)
            self.patches.update(x_batch, a_batch, s_batch, offset)
        if self.summary is not None and l_batch is not None:
            self.summary.update(a_batch, l_batch)
        k = min(self.gallery - len(self.shown), len(x_batch))
        if k > 0:  # the first faces explained; converted here only to be drawn and stored
            masks = None
            if s_batch is not None and self.shortcut:
                masks = region_masks(s_batch[:k], self.shortcut).cpu().numpy()
            pixels = (x_batch[:k] * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1)
            for i in range(k):
                mask = masks[i] if masks is not None else None
                self.shown.append((pixels[i].cpu().numpy(), a_batch[i].cpu().numpy(), mask))

    def render(self, folder: Path, stem: str, title: str) -> list[dict[str, Any]]:
        """Write both PNGs into ``folder``; rows for the ``figures`` table."""
        from benchmark.figures import canonical_figure, encode_png, gallery_figure

        images = self._facex(title) if self.ior.n else {}
        for i, (image, amap, mask) in enumerate(self.shown):
            images[f"gallery:{i:03d}"] = gallery_figure(image, amap, mask, f"{title}, face {i}")
        if self.summary is not None and self.summary.n:
            assert self.canonical is not None and self.canonical.image is not None
            face = self.canonical.image.permute(1, 2, 0).cpu().numpy()
            images["canonical"] = canonical_figure(self.summary.result().cpu().numpy(), face, title)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for kind, image in images.items():
            png = encode_png(image)
            path = folder / f"{stem}-{kind.replace(':', '-')}.png"
            path.write_bytes(png)
            rows.append({"kind": kind, "path": str(path), "png": png})
        return rows

    def _facex(self, title: str) -> dict[str, Any]:
        from benchmark.figures import patch_grid_figure, prototype_figure

        mean, count = self.ior.result()
        ior, present = mean.tolist(), (count > 0).tolist()
        by_region = {
            r: (v if ok else None) for r, v, ok in zip(self.region_names, ior, present, strict=True)
        }
        order = sorted(
            (r for r, v in by_region.items() if v is not None),
            key=lambda r: -ior[self.region_names.index(r)],
        )
        out = {"prototype": prototype_figure(by_region, title=title)} if self.prototype else {}
        out["patches"] = patch_grid_figure(self.patches.result(), order, title=title)
        return out


def canonical_for(dataset: Any, faces: FaceArrays) -> tuple[CanonicalFace | None, Any]:
    """The canonical face of a scenario and the explained faces' landmarks (§7).

    The dataset's own canonical render where it has one with the same landmarks, else
    the mean landmark shape of the explained faces with their mean warped image.
    """
    points = faces.correspondence_points()
    if points is None or len(faces) == 0:
        return None, None
    render = getattr(dataset, "canonical", None)
    if callable(render):
        ref = render(faces.size[0])
        ref_points = ref.correspondence_points()
        if ref_points is not None and ref_points.shape[1:] == points.shape[1:]:
            return CanonicalFace(ref_points[0].float(), faces.size, ref.images[0]), points
    face = CanonicalFace.mean_of(points, faces.size)
    warped = PiecewiseAffine(face, faces.size).project(faces.images.float(), points.float())
    image = warped.mean(0).round().clamp(0, 255).to(torch.uint8)
    return CanonicalFace(face.points, face.size, image), points


def _context(p: Plan, sc: Scenario, reliance: dict[str, float]) -> MetricContext:
    names = tuple(p.protocol.regions)
    index = names.index
    linked = {a: p.protocol.attribute_regions.get(a, ()) for a in reliance}
    return MetricContext(
        region_names=names,
        bias_attributes=tuple(sc.ranked()) if p.bias_regions else (),
        bias_regions=tuple(
            tuple(index(r) for r in group) for group in p.bias_regions.get(sc.name, ())
        ),
        n_classes=p.n_classes,
        # Attributes outside every region of the protocol have no place in the ranking.
        reliance={a: r for a, r in reliance.items() if linked[a]},
        attribute_regions={a: tuple(index(r) for r in g) for a, g in linked.items() if g},
    )


def _image_scores(metric: Metric, res: Any) -> list[float] | None:
    """The per-image values whose mean (NaN left out) is the metric's score, for
    bootstrap confidence intervals; None where the score is not such a mean."""
    score = res.scores.get(metric.name)
    if res.per_image is None or score is None:
        return None
    values = res.per_image.double().cpu()
    mean = values.nanmean().item()
    if not abs(mean - score) <= 1e-6 * max(1.0, abs(score)):
        return None
    return values.tolist()


def _score_rows(
    name: str, metric: Metric, scores: dict[str, float], n: int, details: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    for key, value in scores.items():
        # Score keys start with the class's name; a suite label renames them.
        key = name + key[len(metric.name) :] if key.startswith(metric.name) else key
        row = {"metric": key, "value": value, "n": n, "direction": metric.direction}
        rows.append({**row, "details": details})
    return rows


def explain_and_score(
    p: Plan,
    sc: Scenario,
    model: torch.nn.Module,
    test: FaceArrays,
    targets: torch.Tensor,
    reliance: dict[str, float],
    store: Store,
    progress,
) -> None:
    """Every explainer on the explained images, every metric updated batch by batch."""
    ctx = _context(p, sc, reliance)
    bs = p.suite.explain.batch_size
    images = test.images.to(p.device)  # uint8: the explained set moves once
    masks = test.label_maps.to(p.device) if test.label_maps is not None else None
    sparse = test.landmarks.to(p.device) if test.landmarks is not None else None
    boxes = test.boxes.to(p.device) if test.boxes is not None else None
    canonical, points = canonical_for(p.datasets["test"], test)
    points = points.to(p.device) if points is not None else None
    targets = targets.to(p.device)
    fig = p.suite.figures
    patch = fig.patch_size or max(1, test.size[0] // 32)
    # The prototype is drawn on CelebAMask-HQ's regions; other protocols get the patches.
    drawable = masks is not None and isinstance(p.protocol, CelebAMaskRegions)

    policy = p.suite.explain.postprocess
    # The oracle's map: the injected attributes' regions (all ranked ones where none is).
    groups = ctx.bias_regions[: len(sc.attributes)] or ctx.bias_regions
    shortcut = sorted({r for g in groups for r in g})

    def oracle_masks(s: torch.Tensor | None, label: str) -> torch.Tensor:
        if s is None or not shortcut:
            raise BenchError(f"explainer {label} on {sc.name}: the oracle needs region masks "
                             "and bias regions, which this scenario does not have")  # fmt: skip
        return region_masks(s, shortcut).float()

    def regions_at(i: int) -> torch.Tensor | None:
        lab = masks[i : i + bs] if masks is not None else None
        lm = sparse[i : i + bs] if sparse is not None else None
        return p.protocol.s_batch(lab, lm, test.size)

    def batches():
        for i in range(0, len(images), bs):
            x = to_pixels(images[i : i + bs], p.device)
            yield (
                i,
                {
                    "x_batch": x,
                    "y_batch": targets[i : i + bs],
                    "l_batch": points[i : i + bs] if points is not None else None,
                },
            )

    for label, cls, params in p.explainers:
        if not p.runs(sc.name, label) or (not p.fresh and store.is_done(p.run_id, sc.name, label)):
            continue
        kwargs = {"batch_size": bs, "seed": p.seed_for("explain", label), **params}
        explainer = _build(cls, model, kwargs, canonical, label)
        metrics = [(name, mcls(ctx, **mparams)) for name, mcls, mparams in p.metrics]
        figures = None
        if fig.enabled:
            figures = FaceXFigures(
                ctx.region_names, patch, fig.top_k, canonical, test.size, prototype=drawable,
                gallery=fig.gallery, shortcut=tuple(shortcut),
            )  # fmt: skip
        task = progress.add_task(f"{label} on {sc.name}", total=len(images))
        t0 = time.perf_counter()
        if explainer.dataset_level:  # model-level methods (CMS) see the whole set first
            explainer.fit(batch for _, batch in batches())
        for i, batch in batches():
            x, y, lm = batch["x_batch"], batch["y_batch"], batch["l_batch"]
            s = regions_at(i)
            b = boxes[i : i + bs] if boxes is not None else None
            r = oracle_masks(s, label) if "regions" in explainer.needs else None
            a = explainer.explain(x, y, lm, r)
            placed = postprocess(a, policy)
            explain_fn = partial(_reexplain, cls, kwargs, canonical, label, lm, r)
            cache: dict[Any, Any] = {}
            for _, metric in metrics:
                metric.update(
                    x_batch=x, y_batch=y, a_batch=placed if localises(metric) else a,
                    s_batch=s, b_batch=b, model=model, cache=cache, explain_fn=explain_fn,
                )  # fmt: skip
            if figures is not None:
                figures.update(x, placed, s, lm, i)
            progress.advance(task, len(x))
        scores, regions, per_image, image_scores = [], [], {}, {}
        for name, metric in metrics:
            res = metric.compute()
            scores += _score_rows(name, metric, res.scores, res.n, res.details)
            regions += [{"metric": name, **vars(r)} for r in res.regions]
            if metric.comparative and res.per_image is not None:
                per_image[name] = res.per_image.double().cpu().tolist()
            elif (values := _image_scores(metric, res)) is not None:
                image_scores[name] = values
        rows = []
        if figures is not None:
            folder = p.db.parent / "figures" / p.run_id[:16]
            rows = figures.render(folder, slug(sc.name, label), f"{label} on {sc.name}")
        seconds = time.perf_counter() - t0
        store.put_explainer_results(
            p.run_id, sc.name, label, scores, regions, seconds, per_image, rows, image_scores,
        )  # fmt: skip
        if p.announce:
            done = f"stored: {label} on {sc.name} ({seconds:.1f}s)"
            progress.console.print(done, highlight=False)
    compare_explainers(p, sc, ctx, store)


def _build(
    cls: Any, model: Any, kwargs: dict[str, Any], canonical: CanonicalFace | None, label: str
) -> Explainer:
    """An explainer with the suite's parameters and, where it needs one, the canonical face."""
    if canonical is None and "canonical" in getattr(cls, "needs", ()):
        raise BenchError(f"explainer {label} needs landmarks, which the test data lacks")
    return build_explainer(cls, model, canonical=canonical, **kwargs)


def _reexplain(
    cls: Any,
    kwargs: dict[str, Any],
    canonical: CanonicalFace | None,
    label: str,
    l_batch: torch.Tensor | None,
    r_batch: torch.Tensor | None,
    model: torch.nn.Module,
    x_batch: torch.Tensor,
    y_batch: torch.Tensor,
    seed_offset: int = 0,
) -> torch.Tensor:
    """The scored explainer rebuilt on ``model`` (a metric's ``explain_fn``), its own
    seed moved by ``seed_offset`` (stability re-runs)."""
    if seed_offset:
        kwargs = {**kwargs, "seed": int(kwargs.get("seed", 0)) + seed_offset}
    explainer = _build(cls, model, kwargs, canonical, label)
    return fit_and_explain(explainer, x_batch, y_batch, l_batch, r_batch)


def compare_explainers(p: Plan, sc: Scenario, ctx: MetricContext, store: Store) -> None:
    """Comparative metrics over every explainer of the suite in this scenario.

    Recomputed from the stored per-image values on every run, so a resumed run scores
    against exactly the explainers the suite lists; the compared set is stored with
    each score.
    """
    metrics = [(name, mcls(ctx, **mparams)) for name, mcls, mparams in p.metrics]
    compare_stored(store, p.run_id, sc.name, [label for label, _, _ in p.explainers], metrics)


def compare_stored(
    store: Store, run_id: str, scenario: str, labels: list[str], metrics: list[tuple[str, Metric]]
) -> None:
    """Score the comparative ``metrics`` of one scenario from the stored per-image values
    of every explainer in ``labels``; nothing while one of them is missing."""
    for name, metric in metrics:
        if not metric.comparative:
            continue
        stored = store.per_image(run_id, scenario, name)
        if any(label not in stored for label in labels):
            continue
        values = {label: torch.tensor(stored[label]) for label in labels}
        result = metric.compare(values)
        n = len(next(iter(values.values())))
        details = {"compared": labels, **getattr(metric, "settings", {})}
        for label in labels:
            rows = _score_rows(name, metric, {metric.name: result[label]}, n, details)
            store.put_scores(run_id, scenario, label, rows)
