"""Region protocols: landmark11 patches land on their face parts, follow rotation and
scale; overlapping mask stacks score exactly as label maps do; a suite picks the
protocol and runs end to end with it."""

from __future__ import annotations

import io

import duckdb
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from benchmark.catalogue import REGION_PROTOCOLS
from benchmark.data.landmark11 import LANDMARK11, landmark11_masks
from benchmark.data.regions import REGION_ID
from benchmark.data.synthetic.render import canonical_face
from benchmark.errors import BenchError
from benchmark.runner import plan, run_suite
from metrics.bbox import union_box_from_masks
from metrics.patches import HighImpactPatches
from metrics.regions import image_ior


@pytest.fixture(scope="module")
def face():
    return canonical_face(128)


def shares(face, name: str) -> dict[str, float]:
    """Label shares inside one landmark11 patch of the canonical synthetic face."""
    mask = landmark11_masks(face.landmarks, face.size)[0, LANDMARK11.index(name)]
    labels = face.label_maps[0][mask]
    ids, counts = torch.unique(labels, return_counts=True)
    names = {v: k for k, v in REGION_ID.items()}
    return {names[int(i)]: int(c) / int(mask.sum()) for i, c in zip(ids, counts, strict=True)}


def test_landmark11_patches_land_on_their_face_parts(face):
    for side, eye in (("left", "l_eye"), ("right", "r_eye")):
        assert shares(face, f"{side}_eye")[eye] > 0.15  # the eye and the skin around it
        cheek, forehead, chin = (shares(face, f"{side}_{p}") for p in ("cheek", "forehead", "chin"))
        assert cheek == {"skin": 1.0}
        assert forehead["skin"] > 0.9 and not {"l_eye", "r_eye", "nose"} & set(forehead)
        assert chin["skin"] > 0.7 and not {"u_lip", "l_lip", "nose"} & set(chin)
        mouth = shares(face, f"{side}_mouth")
        assert mouth["u_lip"] + mouth["l_lip"] > 0.1 and "nose" not in mouth
    assert max(shares(face, "nose"), key=shares(face, "nose").get) == "nose"
    # Vertical order of the patch centres: forehead < eye < nose ≈ cheek < mouth < chin.
    masks = landmark11_masks(face.landmarks, face.size)[0]
    rows = torch.arange(128.0).view(128, 1)
    y = {n: float((masks[i] * rows).sum() / masks[i].sum()) for i, n in enumerate(LANDMARK11)}
    assert y["left_forehead"] < y["left_eye"] < y["nose"] < y["left_mouth"] < y["left_chin"]


def test_landmark11_follows_rotation_and_scale(face):
    points, (h, w) = face.landmarks.float(), face.size
    masks = landmark11_masks(points, (h, w))
    # torch.rot90 moves pixel (row y, col x) to (row W-1-x, col y).
    turned = torch.stack((points[..., 1], (w - 1) - points[..., 0]), dim=-1)
    assert torch.equal(landmark11_masks(turned, (w, h)), torch.rot90(masks, 1, dims=(-2, -1)))
    # Twice the size: pixel centres scale about the pixel corners.
    big = landmark11_masks((points + 0.5) * 2 - 0.5, (2 * h, 2 * w)).float()
    small = F.interpolate(big, size=(h, w), mode="area") > 0.5
    inter, union = (small & masks).sum((2, 3)), (small | masks).sum((2, 3))
    assert (inter / union).min() > 0.85


def test_landmark11_without_landmarks_has_no_regions():
    points = torch.full((2, 5, 2), float("nan"))
    assert not landmark11_masks(points, (16, 16)).any()


def label_case(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (3, 16, 16), generator=gen)
    labels[2] = labels[2].clamp(max=3)  # region 4 absent from image 2
    maps = torch.rand(3, 16, 16, generator=gen)
    return labels, maps, F.one_hot(labels, 5).permute(0, 3, 1, 2).bool()


@pytest.mark.parametrize("mode", ["soft", "thresholded"])
def test_a_mask_stack_scores_exactly_as_its_label_map(mode):
    labels, maps, stack = label_case()
    ior_l, present_l = image_ior(maps, labels, 5, mode, size=8)
    ior_s, present_s = image_ior(maps, stack, 5, mode, size=8)
    assert torch.equal(present_l, present_s) and not present_s[2, 4]
    assert torch.allclose(ior_l, ior_s, atol=1e-6)
    box_l, ok_l = union_box_from_masks(labels, [1, 3])
    box_s, ok_s = union_box_from_masks(stack, [1, 3])
    assert torch.equal(box_l, box_s) and torch.equal(ok_l, ok_s)
    names = tuple("abcde")
    by_label, by_stack = HighImpactPatches(names, 4, 2), HighImpactPatches(names, 4, 2)
    x = torch.rand(3, 3, 16, 16)
    by_label.update(x, maps, labels, 0)
    by_stack.update(x, maps, stack, 0)
    for name in names:
        a, b = by_label.result()[name], by_stack.result()[name]
        assert torch.equal(a.images, b.images) and torch.allclose(a.values, b.values)


def test_overlapping_masks_by_hand():
    # G after min-max: [[0, 1/3], [2/3, 1]]; mask 0 = top row, mask 1 = right column:
    # they share the top-right pixel.
    maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    stack = torch.tensor([[[[1, 1], [0, 0]], [[0, 1], [0, 1]], [[0, 0], [0, 0]]]]).bool()
    ior, present = image_ior(maps, stack, 3)
    assert ior[0].tolist() == pytest.approx([1 / 6, 2 / 3, 0.0])
    assert present[0].tolist() == [True, True, False]


SUITE = """
name: patches
seed: 1
device: cpu
region_protocol: landmark11
dataset:
  train: {{name: synthetic_faces, params: {{n: 600, size: 32}}}}
  test: {{name: {test}, params: {test_params}}}
model: {{arch: small_cnn, params: {{width: 8}}, train: {{epochs: 1, batch_size: 64}}}}
scenarios:
  - {{name: lipstick, target: Male, attributes: [Wearing_Lipstick], rho: 0.9,
     direction: negative}}
explainers: [gradcam]
metrics: [ranking_position, bbox_ap, gt_agreement]
explain: {{batch_size: 32, max_images: 32}}
figures: {{patch_size: 4}}
db: {db}
"""


def test_a_suite_ranks_landmark11_patches_end_to_end(tmp_path):
    path = tmp_path / "s.yaml"
    db = tmp_path / "r.duckdb"
    path.write_text(SUITE.format(test="synthetic_faces", test_params="{n: 300, size: 32}", db=db))
    run_suite(path, console=Console(file=io.StringIO()), leaderboard=False)
    with duckdb.connect(str(db), read_only=True) as con:
        regions = con.execute("SELECT region, rank FROM region_scores").fetchall()
        bias = con.execute("SELECT bias_regions FROM scenarios").fetchone()[0]
        kinds = {k for (k,) in con.execute("SELECT kind FROM figures").fetchall()}
        scores = dict(con.execute("SELECT metric, value FROM scores").fetchall())
    assert {r for r, _ in regions} <= set(LANDMARK11) and len(regions) >= 9
    assert "left_mouth" in bias and "right_mouth" in bias
    assert 1 <= scores["ranking_position"] <= 11 and 0 <= scores["bbox_ap"] <= 1
    # Lipstick and eyeglasses (etc.) have patches; earrings and necklace do not.
    assert "gt_agreement" in scores
    # no prototype: it is drawn on the 19 labels
    assert kinds == {"patches", "canonical", *(f"gallery:{i:03d}" for i in range(4))}


def test_a_protocol_the_test_data_cannot_feed_stops_before_work(tmp_path):
    from tests.test_celebamask_hq import build_replica

    build_replica(tmp_path / "hq")
    path = tmp_path / "s.yaml"
    path.write_text(
        SUITE.format(test="celebamask_hq", test_params=f"{{root: {tmp_path / 'hq'}}}", db="x")
    )
    with pytest.raises(BenchError, match="makes them from landmarks, which dataset"):
        plan(path, None, None, False)
    assert REGION_PROTOCOLS.get("masks19")().regions[REGION_ID["hair"]] == "hair"
