"""Explain and score one scenario: every explainer batch by batch, every metric updated
from the same maps, FaceX figures drawn, then the comparative metrics (Win %) computed
over all explainers of the scenario.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from benchmark.data.base import FaceArrays
from benchmark.data.regions import ATTRIBUTE_REGIONS, REGION_NAMES
from benchmark.models.train import to_pixels
from benchmark.store import Store
from leaderboard.site import slug
from metrics.base import Metric, MetricContext
from metrics.regions import RegionIoR

if TYPE_CHECKING:
    from benchmark.runner import Plan
    from benchmark.suite import Scenario


class FaceXFigures:
    """The FaceX prototype heatmap and high-impact patch grid of one explainer (§2).

    Args:
        region_names: names of the label ids.
        patch: patch side Z in pixels.
        top_k: patches kept per region.
    """

    def __init__(self, region_names: tuple[str, ...], patch: int, top_k: int):
        from metrics.patches import HighImpactPatches

        self.region_names = region_names
        self.patches = HighImpactPatches(region_names, patch, top_k)
        self.ior = RegionIoR(len(region_names))

    def update(
        self, x_batch: torch.Tensor, a_batch: torch.Tensor, s_batch: torch.Tensor, offset: int
    ) -> None:
        self.ior.update(a_batch, s_batch)
        self.patches.update(x_batch, a_batch, s_batch, offset)

    def render(self, folder: Path, stem: str, title: str) -> list[dict[str, Any]]:
        """Write both PNGs into ``folder``; rows for the ``figures`` table."""
        from benchmark.figures import encode_png, patch_grid_figure, prototype_figure

        if self.ior.n == 0:
            return []
        mean, count = self.ior.result()
        ior, present = mean.tolist(), (count > 0).tolist()
        by_region = {
            r: (v if ok else None) for r, v, ok in zip(self.region_names, ior, present, strict=True)
        }
        order = sorted(
            (r for r, v in by_region.items() if v is not None),
            key=lambda r: -ior[self.region_names.index(r)],
        )
        images = {
            "prototype": prototype_figure(by_region, title=title),
            "patches": patch_grid_figure(self.patches.result(), order, title=title),
        }
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for kind, image in images.items():
            png = encode_png(image)
            path = folder / f"{stem}-{kind}.png"
            path.write_bytes(png)
            rows.append({"kind": kind, "path": str(path), "png": png})
        return rows


def _context(p: Plan, sc: Scenario, test: FaceArrays, reliance: dict[str, float]) -> MetricContext:
    index = test.regions.index
    return MetricContext(
        region_names=tuple(test.regions),
        bias_attributes=tuple(sc.attributes) if p.bias_regions else (),
        bias_regions=tuple(
            tuple(index(r) for r in group) for group in p.bias_regions.get(sc.name, ())
        ),
        n_classes=2,
        reliance=reliance,
        attribute_regions={a: tuple(index(r) for r in ATTRIBUTE_REGIONS[a]) for a in reliance},
    )


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
    ctx = _context(p, sc, test, reliance)
    bs = p.suite.explain.batch_size
    images = test.images.to(p.device)  # uint8: the explained set moves once
    masks = test.label_maps.to(p.device) if test.label_maps is not None else None
    boxes = test.boxes.to(p.device) if test.boxes is not None else None
    targets = targets.to(p.device)
    fig = p.suite.figures
    patch = fig.patch_size or max(1, test.size[0] // 32)
    for label, cls, params in p.explainers:
        if not p.fresh and store.is_done(p.run_id, sc.name, label):
            continue
        defaults = {"batch_size": bs, "seed": p.seed_for("explain", label)}
        explainer = cls(model, **{**defaults, **params})
        metrics = [(name, mcls(ctx, **mparams)) for name, mcls, mparams in p.metrics]
        # The prototype is drawn on CelebAMask-HQ's regions; other protocols get none yet.
        drawable = masks is not None and set(ctx.region_names) <= set(REGION_NAMES)
        figures = (
            FaceXFigures(ctx.region_names, patch, fig.top_k) if fig.enabled and drawable else None
        )
        task = progress.add_task(f"{label} on {sc.name}", total=len(images))
        t0 = time.perf_counter()
        for i in range(0, len(images), bs):
            x = to_pixels(images[i : i + bs], p.device)
            y = targets[i : i + bs]
            s = masks[i : i + bs] if masks is not None else None
            b = boxes[i : i + bs] if boxes is not None else None
            a = explainer.explain(x, y)
            cache: dict[Any, Any] = {}
            for _, metric in metrics:
                metric.update(
                    x_batch=x, y_batch=y, a_batch=a, s_batch=s, b_batch=b, model=model, cache=cache
                )
            if figures is not None:
                figures.update(x, a, s, i)
            progress.advance(task, len(x))
        scores, regions, per_image = [], [], {}
        for name, metric in metrics:
            res = metric.compute()
            scores += _score_rows(name, metric, res.scores, res.n, res.details)
            regions += [{"metric": name, **vars(r)} for r in res.regions]
            if metric.comparative and res.per_image is not None:
                per_image[name] = res.per_image.double().cpu().tolist()
        rows = []
        if figures is not None:
            folder = p.db.parent / "figures" / p.run_id[:16]
            rows = figures.render(folder, slug(sc.name, label), f"{label} on {sc.name}")
        store.put_explainer_results(
            p.run_id, sc.name, label, scores, regions, time.perf_counter() - t0, per_image, rows
        )
    compare_explainers(p, sc, ctx, store)


def compare_explainers(p: Plan, sc: Scenario, ctx: MetricContext, store: Store) -> None:
    """Comparative metrics over every explainer of the suite in this scenario.

    Recomputed from the stored per-image values on every run, so a resumed run scores
    against exactly the explainers the suite lists; the compared set is stored with
    each score.
    """
    labels = [label for label, _, _ in p.explainers]
    for name, mcls, mparams in p.metrics:
        metric = mcls(ctx, **mparams)
        if not metric.comparative:
            continue
        stored = store.per_image(p.run_id, sc.name, name)
        if any(label not in stored for label in labels):
            continue
        values = {label: torch.tensor(stored[label]) for label in labels}
        result = metric.compare(values)
        n = len(next(iter(values.values())))
        details = {"compared": labels, **getattr(metric, "settings", {})}
        for label in labels:
            rows = _score_rows(name, metric, {metric.name: result[label]}, n, details)
            store.put_scores(p.run_id, sc.name, label, rows)
