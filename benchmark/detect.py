"""One detection scenario (``task: detection``, METHODS §10): the detector's reference
detections, its detection rate, and every explainer on the score of the detection that
matches each image's reference box.

The reference of an image is its top detection on the unperturbed image; images without
one are not explained. Their boxes replace the dataset's, so ``bbox_ap`` with
``reference: face`` scores each map against the detection it explains (MinPlus Table 1).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torchvision.ops import box_iou

from benchmark.data.base import FaceArrays
from benchmark.errors import BenchError
from benchmark.models.detection import DetectionScore, reference_detections
from benchmark.models.train import to_pixels
from benchmark.scoring import explain_and_score
from benchmark.splits import seeded_cap
from benchmark.store import Store

if TYPE_CHECKING:
    from benchmark.plan import Plan
    from benchmark.suite import Scenario


def run_detection_scenario(
    p: Plan, sc: Scenario, test: FaceArrays, store: Store, progress, timings: dict[str, Any]
) -> None:
    """References, detection rate, then every explainer on the matched detection score."""
    detector = p.model
    assert detector is not None  # a detector is never trained here
    detector = detector.to(p.device).eval()
    bs = p.suite.explain.batch_size
    ref = torch.cat([
        reference_detections(detector, to_pixels(test.images[i : i + bs], p.device))[0]
        for i in range(0, len(test), bs)
    ])  # fmt: skip
    found = torch.isfinite(ref).all(1)
    # Where the dataset has face boxes, a detection counts when it overlaps its face.
    hit = found.clone()
    if test.boxes is not None and found.any():
        iou = box_iou(ref[found], test.boxes[found].float()).diagonal()
        hit[found] = iou >= 0.5
    chosen = torch.nonzero(found).flatten()
    chosen = seeded_cap(
        chosen, p.suite.explain.max_images, p.seed_for("explain-detections", sc.name)
    )
    if len(chosen) == 0:
        raise BenchError(f"scenario {sc.name}: the detector finds no face in the test data")
    progress.console.print(
        f"[bold]{sc.name}[/]: faces detected in {int(found.sum())} of {len(test)} images "
        f"({100 * float(hit.float().mean()):.1f}% matching the data's face); "
        f"explaining {len(chosen)}",
        highlight=False,
    )
    store.put_scenario({
        "run_id": p.run_id, "scenario": sc.name, "target": sc.target, "attributes": [],
        "rho": None, "directions": [], "bias_regions": [],
        "model_hash": f"{p.suite.model.source}:detection", "n_train": 0,
        "n_test": len(test), "train_cells": {}, "test_cells": {"detected": int(found.sum())},
        "accuracy": float(hit.float().mean()), "accuracy_aligned": None,
        "accuracy_conflicting": None, "n_aligned": None, "n_conflicting": None,
        "train_seconds": 0.0, "cached": True, "n_explained": len(chosen),
    })  # fmt: skip
    explained = replace(test.subset(chosen), boxes=ref[chosen])
    model = DetectionScore(detector, ref[chosen].to(p.device))
    targets = torch.arange(len(chosen), device=p.device)
    t0 = time.perf_counter()
    explain_and_score(p, sc, model, explained, targets, {}, store, progress)
    timings[f"explain/{sc.name}"] = time.perf_counter() - t0
