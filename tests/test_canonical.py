"""Canonical saliency maps (METHODS §7): the warp, CIS against a direct loop, density
normalisation, CMS as a per-class mean, and the canonical summary of any explainer."""

from __future__ import annotations

import pytest
import torch

from benchmark.data.synthetic import SyntheticFaces, canonical_face
from explainers.canonical import CanonicalFace, CanonicalSummary, PiecewiseAffine
from explainers.canonical_saliency import CanonicalImageSaliency, CanonicalModelSaliency
from tests.conftest import TOY_POINTS, toy_landmarks

TOY = CanonicalFace(torch.tensor(TOY_POINTS), (32, 32))


@pytest.fixture(scope="module")
def faces():
    return SyntheticFaces(n=12, size=64).load("canon", seed=0)


def test_warp_is_the_identity_when_landmarks_match_the_canonical_face():
    warp = PiecewiseAffine(TOY, (32, 32))
    same = TOY.points[None].expand(3, -1, -1)
    q = torch.rand(50, 2, generator=torch.Generator().manual_seed(0)) * 31
    assert torch.allclose(warp.to_image(q, same), q.expand(3, -1, -1), atol=1e-4)
    maps = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(warp.project(maps, same), maps, atol=1e-5)
    assert torch.allclose(warp.reproject(maps, same), maps, atol=1e-5)


def test_warp_round_trip_and_affine_inside_the_landmark_hull():
    warp = PiecewiseAffine(TOY, (32, 32))
    lm = toy_landmarks(4)
    q = torch.rand(200, 2, generator=torch.Generator().manual_seed(0)) * 31
    p = warp.to_image(q, lm)
    back = torch.stack([warp.to_canonical(p[i], lm[i : i + 1])[0] for i in range(4)])
    assert (back - q).abs().max() < 1e-3
    # A shifted face moves every point inside its landmark hull by the same shift.
    shifted = TOY.points[None] + torch.tensor([2.0, -1.0])
    inner = q[warp.inside_face(q)]
    assert len(inner) > 10
    moved = warp.to_image(inner, shifted)[0]
    assert torch.allclose(moved, inner + torch.tensor([2.0, -1.0]), atol=1e-4)


def test_dense_warp_aligns_synthetic_faces_to_the_canonical_label_map(faces):
    """Warped label maps agree with the canonical face's far more than unwarped ones."""
    canon = canonical_face(64)
    face = CanonicalFace(canon.extras["dense_landmarks"][0], (64, 64))
    warp = PiecewiseAffine(face, (64, 64))
    onehot = torch.nn.functional.one_hot(faces.label_maps.long(), 19).permute(0, 3, 1, 2)
    warped = warp.project(onehot.float(), faces.extras["dense_landmarks"]).argmax(1)
    target = canon.label_maps[0].long()
    before = (faces.label_maps.long() == target).float().mean()
    after = (warped == target).float().mean()
    assert after > before + 0.05, (float(before), float(after))


class _MinModel(torch.nn.Module):
    """Class-1 logit 10·min(x): any black square drops the confidence by the same amount."""

    def forward(self, x):
        z = 10 * x.flatten(1).amin(1, keepdim=True)
        return torch.cat([torch.zeros_like(z), z], 1)


def test_density_normalisation_makes_equal_drops_a_flat_map():
    """Overlapping squares update some pixels up to 4 times; P = P*/N stays flat."""
    x = 0.5 + 0.5 * torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    lm = TOY.points[None].expand(2, -1, -1)
    cis = CanonicalImageSaliency(_MinModel(), canonical=TOY, patch=4, stride=2)
    maps = cis.canonical_maps(x, torch.ones(2, dtype=torch.long), lm)
    p = torch.sigmoid(10 * x.flatten(1).amin(1)) - 0.5  # the one drop of each image
    assert torch.allclose(maps, p[:, None, None].expand_as(maps), atol=1e-6)


def test_cis_equals_a_direct_loop_over_grid_points(patch_model):
    """Occlude each warped point's square, one forward each; accumulate on F by hand."""
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 0])
    lm = toy_landmarks(2)
    cis = CanonicalImageSaliency(patch_model, canonical=TOY, patch=3, stride=4)
    got = cis.canonical_maps(x, y, lm)
    warp = PiecewiseAffine(TOY, (32, 32))
    grid = torch.arange(1.5, 32, 4)  # (32 - 1) % 4 / 2 = 1.5: centred
    q = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
    p = warp.to_image(q, lm)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    want = torch.zeros(2, 32, 32)
    for b in range(2):
        prob = patch_model(x[b : b + 1]).softmax(-1)[0, y[b]]
        total, count = torch.zeros(32, 32), torch.zeros(32, 32)
        for n in range(len(q)):
            hole = ((xs - p[b, n, 0]).abs() < 1.5) & ((ys - p[b, n, 1]).abs() < 1.5)
            occluded = x[b : b + 1] * ~hole
            drop = prob - patch_model(occluded).softmax(-1)[0, y[b]]
            box = ((xs - q[n, 0]).abs() < 1.5) & ((ys - q[n, 1]).abs() < 1.5)
            total += drop * box
            count += box
        want[b] = torch.where(count > 0, total / count.clamp_min(1), 0.0)
    assert torch.allclose(got, want, atol=1e-6)


def test_face_area_leaves_the_background_of_the_canonical_face_empty(patch_model):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    lm = TOY.points[None]
    face = CanonicalImageSaliency(patch_model, canonical=TOY, patch=2, stride=1, area="face")
    maps = face.canonical_maps(x, torch.ones(1, dtype=torch.long), lm)[0]
    # The toy landmarks span x 10..22, y 12..23; squares reach one pixel further.
    assert maps[:, :8].abs().sum() == 0 and maps[:10].abs().sum() == 0
    assert maps[:, 25:].abs().sum() == 0 and maps[26:].abs().sum() == 0


def test_cms_is_the_per_class_mean_of_cis_reprojected(patch_model):
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([1, 1, 0, 1, 0, 0])
    lm = toy_landmarks(6)
    cms = CanonicalModelSaliency(patch_model, canonical=TOY, batch_size=4, patch=3, stride=2)
    cms.fit([{"x_batch": x[:4], "y_batch": y[:4], "l_batch": lm[:4]},
             {"x_batch": x[4:], "y_batch": y[4:], "l_batch": lm[4:]}])  # fmt: skip
    cis = CanonicalImageSaliency(patch_model, canonical=TOY, patch=3, stride=2)
    each = cis.canonical_maps(x, y, lm)
    for k in (0, 1):
        assert torch.allclose(cms.cms[k], each[y == k].mean(0), atol=1e-6)
    maps = cms.explain(x, y, lm)
    want = PiecewiseAffine(TOY, (32, 32)).reproject(cms.cms[y], lm)
    assert torch.allclose(maps, want, atol=1e-6)
    single = CanonicalModelSaliency(patch_model, canonical=TOY, per_class=False, patch=3, stride=2)
    single.fit([{"x_batch": x, "y_batch": y, "l_batch": lm}])
    assert torch.allclose(single.cms[0], each.mean(0), atol=1e-6)


def test_cms_must_be_fitted_and_needs_landmarks(patch_model):
    cms = CanonicalModelSaliency(patch_model, canonical=TOY)
    x, y = torch.rand(1, 3, 32, 32), torch.ones(1, dtype=torch.long)
    with pytest.raises(ValueError, match="landmarks"):
        cms.explain(x, y)
    with pytest.raises(ValueError, match="fitted"):
        cms.explain(x, y, TOY.points[None])
    with pytest.raises(ValueError, match="area"):
        CanonicalImageSaliency(patch_model, canonical=TOY, area="mesh")


def test_canonical_summary_peaks_where_the_maps_peak_on_the_face(faces):
    """Maps that mark each face's mouth, wherever it is, sum to a peak at F's mouth."""
    canon = canonical_face(64)
    face = CanonicalFace(canon.extras["dense_landmarks"][0], (64, 64))
    summary = CanonicalSummary(face, (64, 64))
    mouth = faces.landmarks[:, 3:].mean(1)  # midpoint of the mouth corners
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    d2 = (xs - mouth[:, 0, None, None]) ** 2 + (ys - mouth[:, 1, None, None]) ** 2
    summary.update(torch.exp(-d2 / 8), faces.extras["dense_landmarks"])
    mean = summary.result()
    r, c = divmod(int(mean.argmax()), 64)
    want = canon.landmarks[0, 3:].mean(0)
    assert abs(c - float(want[0])) <= 1.5 and abs(r - float(want[1])) <= 1.5
    assert summary.n == len(faces) and float(mean.min()) >= 0 and float(mean.max()) <= 1


def test_build_explainer_hands_the_canonical_face_only_to_methods_that_need_it(patch_model):
    from explainers.base import build_explainer
    from explainers.gradcam import GradCAM

    assert build_explainer(CanonicalModelSaliency, patch_model, canonical=TOY).canonical is TOY
    assert isinstance(build_explainer(GradCAM, patch_model, canonical=TOY), GradCAM)
    with pytest.raises(ValueError, match="needs a canonical face"):
        build_explainer(CanonicalImageSaliency, patch_model)
