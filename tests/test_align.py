"""Face crops a model declares (benchmark.data.align) and landmarks read off label maps
(benchmark.data.mask_landmarks), against hand-placed geometry."""

from __future__ import annotations

import math

import torch

from benchmark.data.align import TEMPLATE, align_faces, similarity_to
from benchmark.data.base import FaceArrays
from benchmark.data.mask_landmarks import landmarks_from_label_maps
from benchmark.data.regions import REGION_ID


def test_similarity_recovers_a_known_transform():
    dst = torch.tensor(TEMPLATE).unsqueeze(0) * 100
    a, c = 1.3 * math.cos(0.4), 1.3 * math.sin(0.4)
    m = torch.tensor([[[a, -c, 7.0], [c, a, -3.0]]])
    src = dst @ m[:, :, :2].transpose(1, 2) + m[:, :, 2]
    assert torch.allclose(similarity_to(src, dst), m, atol=1e-4)


def _face(points: torch.Tensor, size: int = 64) -> FaceArrays:
    """A grey image with a white pixel and a nose label at each landmark."""
    img = torch.full((1, 3, size, size), 60, dtype=torch.uint8)
    lab = torch.zeros(1, size, size, dtype=torch.uint8)
    for x, y in points.round().long().tolist():
        img[0, :, y, x] = 255
        lab[0, y, x] = REGION_ID["nose"]
    return FaceArrays(images=img, attributes=torch.zeros(1, 0, dtype=torch.int8),
                      attribute_names=(), label_maps=lab, landmarks=points[None].float(),
                      boxes=torch.tensor([[16.0, 16.0, 48.0, 48.0]]))  # fmt: skip


def test_landmark_crop_puts_the_landmarks_on_the_template():
    # the template, rotated by 20° and shrunk into a 30 px face at (20, 12)
    t = torch.tensor(TEMPLATE) - 0.5
    r = torch.tensor([[math.cos(0.35), -math.sin(0.35)], [math.sin(0.35), math.cos(0.35)]])
    points = (t @ r.T) * 30 + torch.tensor([36.0, 30.0])
    aligned, _ = align_faces(_face(points), "landmarks", padding=0.25)
    expected = (torch.tensor(TEMPLATE) + 0.25) / 1.5 * 64 - 0.5
    assert torch.allclose(aligned.landmarks[0], expected, atol=1e-3)
    for x, y in expected.round().long().tolist():  # pixels and labels moved with them
        assert aligned.images[0, 0, y - 1 : y + 2, x - 1 : x + 2].max() > 120
        assert (aligned.label_maps[0, y - 1 : y + 2, x - 1 : x + 2] == REGION_ID["nose"]).any()


def test_box_crop_fills_the_chip_with_the_box():
    aligned, _ = align_faces(_face(torch.tensor(TEMPLATE) * 32 + 16), "box", padding=0.0)
    assert torch.allclose(aligned.boxes[0], torch.tensor([0.0, 0.0, 64.0, 64.0]), atol=1e-3)
    # the box's 32 px span becomes the chip's 64: a landmark at x = 25.6 lands near 19.7
    assert torch.allclose(aligned.landmarks[0, 0], (torch.tensor(TEMPLATE[0]) * 32 + 16 - 16
                                                    + 0.5) * 2 - 0.5, atol=1e-3)  # fmt: skip


def test_landmarks_from_label_maps_of_a_drawn_face():
    lab = torch.zeros(2, 64, 64, dtype=torch.uint8)
    lab[0, 28:33, 18:23] = REGION_ID["r_eye"]  # labels name the eyes either way round
    lab[0, 28:33, 42:47] = REGION_ID["l_eye"]
    lab[0, 30:42, 30:35] = REGION_ID["nose"]  # lowest third: rows 38–41
    lab[0, 48:51, 22:43] = REGION_ID["u_lip"]
    lab[0, 51:53, 24:41] = REGION_ID["l_lip"]
    lm = landmarks_from_label_maps(lab)
    expected = torch.tensor([[20.0, 30.0], [44.0, 30.0], [32.0, 39.5], [22.5, 49.0],
                             [41.5, 49.0]])  # fmt: skip
    assert torch.allclose(lm[0], expected, atol=1e-4)
    assert torch.isnan(lm[1]).all()  # an empty map has no face to place
