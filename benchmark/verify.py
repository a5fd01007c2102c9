"""One verification scenario (``task: verification``, METHODS §10): the pairs, the
embedding's verification accuracy, and every explainer on the similarity of each probe
to its pair's reference.

Pairs come from the test dataset: LFW's and RFW's ``pairs()`` files, or, for the
synthetic faces, each face against a re-render of the same person (``mates``: new pose,
light and noise) and against another person's re-render. The probe is the pair's first
image; :class:`~benchmark.models.verification.PairScore` makes probe k's explained
output the cosine to reference k, so explainers and metrics run as for a classifier.

``target: inpainting`` plays the inpainting game (Williford et al., ECCV 2020) on the
synthetic faces: probe, mate (a re-take) and nonmate (the mate with one face part
changed); the explained score is cos(probe, mate) − cos(probe, nonmate), and the
scenario's bias regions are that part's, so ranking position and pointing game ask
whether a map of the probe puts the changed part first.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from benchmark.data.align import align_faces
from benchmark.data.base import FaceArrays
from benchmark.errors import BenchError
from benchmark.models.verification import PairScore, embed_images
from benchmark.scoring import explain_and_score
from benchmark.splits import seeded_cap
from benchmark.store import Store

if TYPE_CHECKING:
    from benchmark.plan import Plan
    from benchmark.suite import Scenario


def dataset_pairs(p: Plan, test: FaceArrays) -> tuple[FaceArrays, FaceArrays, torch.Tensor]:
    """Probes, references (aligned with the probes) and bool (P,) mated, of the whole set."""
    dataset = p.datasets["test"]
    if hasattr(dataset, "pairs"):
        index, same = dataset.pairs(test)[:2]
        if len(index) == 0:
            raise BenchError("verification: no pair of the pair file has both images loaded")
        return test.subset(index[:, 0]), test.subset(index[:, 1]), same
    mates = dataset.mates(test, p.seed_for("mates"))
    n = len(test)
    if n < 2:
        raise BenchError("verification: the synthetic test set needs at least 2 faces")
    g = torch.Generator().manual_seed(p.seed_for("nonmates"))
    # A derangement: every face meets another person's re-render.
    other = (torch.arange(n) + torch.randint(1, n, (n,), generator=g)) % n
    probes = test.subset(torch.cat([torch.arange(n), torch.arange(n)]))
    refs = mates.subset(torch.cat([torch.arange(n), other]))
    return (
        probes,
        refs,
        torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)]),
    )


def crop_for_model(p: Plan, faces: FaceArrays) -> FaceArrays:
    """The faces as the model reads them: aligned as ``model.input.crop`` says."""
    spec = p.suite.model.input
    return (
        faces
        if spec.crop == "none" or len(faces) == 0
        else align_faces(faces, spec.crop, spec.padding)[0]
    )


def best_threshold_accuracy(scores: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The verification accuracy at the similarity threshold that maximises it over
    these pairs, and that threshold (the optimistic LFW "accuracy" without folds)."""
    order = scores.argsort()
    s, y = scores[order], same[order].float()
    n = len(s)
    # threshold between sorted scores k−1 and k: pairs ≥ it are called mated
    mated_above = torch.cat([y.flip(0).cumsum(0).flip(0), torch.zeros(1)])
    nonmated_below = torch.cat([torch.zeros(1), (1 - y).cumsum(0)])
    correct = mated_above + nonmated_below
    k = int(correct.argmax())
    cut = float(s[k - 1] + s[k]) / 2 if 0 < k < n else float(s[0] - 1 if k == 0 else s[-1] + 1)
    return float(correct[k] / n), cut


def _rate(scores: torch.Tensor, cut: float | None, mated: bool) -> float | None:
    """Share of pairs verified correctly at ``cut`` (None without a threshold)."""
    if cut is None or len(scores) == 0:
        return None
    return float(((scores >= cut) if mated else (scores < cut)).float().mean())


def triplets(p: Plan, test: FaceArrays, part: str) -> tuple[FaceArrays, FaceArrays, FaceArrays]:
    """The inpainting game's probes (the test faces), mates (re-takes) and nonmates
    (the same re-takes with ``part`` changed: ``SyntheticFaces.mates(part=...)``)."""
    dataset = p.datasets["test"]
    seed = p.seed_for("mates")
    return test, dataset.mates(test, seed), dataset.mates(test, seed, part)


def run_verification_scenario(
    p: Plan,
    sc: Scenario,
    test: FaceArrays,
    store: Store,
    progress,
    timings: dict[str, Any],
    embedding: tuple,
) -> None:
    """Pairs (or triplets), accuracy, then every explainer on the scenario's probes.

    ``embedding``: (model, model hash, training seconds, cached) as ``get_model`` gives.
    """
    embed, model_hash, seconds, cached = embedding
    embed = embed.to(p.device).eval()
    bs = p.suite.explain.batch_size
    if sc.target == "inpainting":
        probes, refs, nonmates = (crop_for_model(p, f) for f in triplets(p, test, sc.attributes[0]))
        e_non = embed_images(embed, nonmates.images, bs, p.device)
    else:
        probes, refs, same = dataset_pairs(p, test)
        probes, refs = crop_for_model(p, probes), crop_for_model(p, refs)
    # Every image is embedded once: the accuracy and the explained references share them.
    e_refs = embed_images(embed, refs.images, bs, p.device)
    e_probes = embed_images(embed, probes.images, bs, p.device)
    scores = (e_probes * e_refs).sum(1).cpu()
    if sc.target == "inpainting":
        # Triplet accuracy: the probe is closer to its mate than to the part-swapped nonmate.
        gap = scores - (e_probes * e_non).sum(1).cpu()
        accuracy, cut, same = (
            float((gap > 0).float().mean()),
            None,
            torch.ones(len(gap), dtype=bool),
        )
        want = same
    else:
        accuracy, cut = (
            best_threshold_accuracy(scores, same) if same.any() and (~same).any() else (None, None)
        )
        want = same if sc.target == "mated" else ~same
    chosen = torch.nonzero(want).flatten()
    chosen = seeded_cap(chosen, p.suite.explain.max_images, p.seed_for("explain-pairs", sc.name))
    if len(chosen) == 0:
        raise BenchError(f"scenario {sc.name}: the test data has no {sc.target} pairs")
    if sc.target == "inpainting":
        part = sc.attributes[0]
        what = f"{len(gap)} triplets, nonmates differ in the {part}; explaining {len(chosen)}"
        result = f"; triplet accuracy {100 * accuracy:.1f}%"
    else:
        what = (f"{int(same.sum())} mated / {int((~same).sum())} nonmated pairs; "
                f"explaining {len(chosen)} {sc.target}")  # fmt: skip
        result = (
            f"; accuracy {100 * accuracy:.1f}% at cos ≥ {cut:.3f}" if accuracy is not None else ""
        )
    progress.console.print(f"[bold]{sc.name}[/]: {what}{result}", highlight=False)
    inpainting = sc.target == "inpainting"
    store.put_scenario({
        "run_id": p.run_id, "scenario": sc.name, "target": sc.target,
        "attributes": list(sc.attributes), "rho": None, "directions": [],
        "bias_regions": [list(g) for g in p.bias_regions.get(sc.name, ())],
        "model_hash": model_hash, "n_train": 0, "n_test": len(same),
        "train_cells": {},
        "test_cells": {"triplets": len(same)} if inpainting
        else {"mated": int(same.sum()), "nonmated": int((~same).sum())},
        # "aligned" = mated accepted (TAR), "conflicting" = nonmated rejected (TNR)
        "accuracy": accuracy,
        "accuracy_aligned": None if inpainting else _rate(scores[same], cut, True),
        "accuracy_conflicting": None if inpainting else _rate(scores[~same], cut, False),
        "n_aligned": int(same.sum()), "n_conflicting": int((~same).sum()),
        "train_seconds": seconds, "cached": cached, "n_explained": len(chosen),
    })  # fmt: skip
    explained = probes.subset(chosen)
    on = chosen.to(e_refs.device)
    model = PairScore(embed, e_refs[on], nonmates=e_non[on] if inpainting else None, embedded=True)
    targets = torch.arange(len(chosen), device=p.device)
    t0 = time.perf_counter()
    explain_and_score(p, sc, model, explained, targets, {}, store, progress)
    timings[f"explain/{sc.name}"] = time.perf_counter() - t0
