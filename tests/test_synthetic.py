"""The embedded synthetic faces: determinism, annotations, counterfactuals, caching."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import torch

from benchmark.data.base import FaceArrays
from benchmark.data.regions import REGION_ID, REGION_NAMES
from benchmark.data.synthetic import (
    ATTRIBUTES,
    GROUPS,
    FaceParams,
    SyntheticFaces,
    canonical_face,
    canonical_params,
    render,
    sample_params,
    toggle,
)

dataset_module = importlib.import_module("benchmark.data.synthetic.dataset")

SIZE = 64
ALL_ON = {a: 1 for a in ATTRIBUTES}


@pytest.fixture(scope="module")
def params() -> FaceParams:
    return sample_params(240, seed=11)


@pytest.fixture(scope="module")
def faces(params: FaceParams) -> FaceArrays:
    return render(params, SIZE)


def _mask(fa: FaceArrays, *regions: str) -> torch.Tensor:
    assert fa.label_maps is not None
    out = torch.zeros_like(fa.label_maps, dtype=torch.bool)
    for name in regions:
        out |= fa.label_maps == REGION_ID[name]
    return out


def test_public_constants():
    assert ATTRIBUTES == (
        "Male", "Young", "Blond_Hair", "Eyeglasses", "Smiling", "Wearing_Earrings",
        "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Hat", "Heavy_Makeup",
    )  # fmt: skip
    assert GROUPS == ("skin_tone",)
    assert SyntheticFaces.attribute_names == ATTRIBUTES
    assert SyntheticFaces.group_names == GROUPS


def test_deterministic_per_seed():
    a, b = render(sample_params(12, 3), 48), render(sample_params(12, 3), 48)
    assert torch.equal(a.images, b.images) and torch.equal(a.label_maps, b.label_maps)
    c = render(sample_params(12, 4), 48)
    assert not torch.equal(a.images, c.images)


def test_shapes_and_dtypes(faces: FaceArrays, params: FaceParams):
    n = len(params)
    assert faces.images.shape == (n, 3, SIZE, SIZE) and faces.images.dtype == torch.uint8
    assert faces.attributes.shape == (n, 10) and faces.attributes.dtype == torch.int8
    assert faces.attribute_names == ATTRIBUTES and faces.regions == REGION_NAMES
    assert faces.label_maps.shape == (n, SIZE, SIZE) and faces.label_maps.dtype == torch.uint8
    assert int(faces.label_maps.max()) < len(REGION_NAMES)
    assert faces.landmarks.shape == (n, 5, 2) and faces.landmarks.dtype == torch.float32
    assert faces.boxes.shape == (n, 4) and faces.boxes.dtype == torch.float32
    assert faces.groups["skin_tone"].dtype == torch.int64
    assert set(faces.groups["skin_tone"].tolist()) == {0, 1, 2, 3}
    dense = faces.extras["dense_landmarks"]
    assert dense.shape == (n, 68, 2) and dense.dtype == torch.float32
    assert all(f"param.{f.name}" in faces.extras for f in dataclasses.fields(FaceParams))


def test_params_round_trip_through_extras(faces: FaceArrays, params: FaceParams):
    back = FaceParams.from_dict(faces.extras, prefix="param.")
    for name, value in params.as_dict().items():
        assert torch.equal(getattr(back, name), value), name
    again = render(back[torch.tensor([5, 9])], SIZE)
    assert torch.equal(again.images, faces.images[[5, 9]])


def test_attributes_are_independent_with_given_prevalence():
    p = sample_params(4000, 0, prevalence={"Eyeglasses": 1.0, "Wearing_Hat": 0.0})
    a = p.attributes.float()
    assert a[:, ATTRIBUTES.index("Eyeglasses")].min() == 1
    assert a[:, ATTRIBUTES.index("Wearing_Hat")].max() == 0
    assert abs(a[:, 0].mean().item() - 0.5) < 0.03
    corr = torch.corrcoef(a[:, [0, 1, 2, 4, 5, 6, 7, 9]].T)
    assert (corr - torch.eye(8)).abs().max() < 0.06
    with pytest.raises(ValueError):
        sample_params(4, 0, prevalence={"Bald": 0.5})


def test_subset_renders_like_the_batch(faces: FaceArrays, params: FaceParams):
    index = torch.tensor([0, 7, 101, 239, 33])
    alone = render(params[index], SIZE)
    assert torch.equal(alone.images, faces.images[index])
    assert torch.equal(alone.label_maps, faces.label_maps[index])
    assert torch.equal(alone.landmarks, faces.landmarks[index])
    assert torch.equal(render(params[101], SIZE).images, faces.images[101:102])


def test_canonical_face_shows_every_region():
    face = canonical_face(SIZE, ALL_ON)
    present = set(face.label_maps.unique().tolist())
    # Eyes stay labelled behind the lenses (later labels win, METHODS.md §1): all 19 show.
    assert present == set(range(len(REGION_NAMES)))
    bare = canonical_face(SIZE, {**ALL_ON, "Eyeglasses": 0})
    assert set(bare.label_maps.unique().tolist()) == set(range(len(REGION_NAMES))) - {3}


def test_canonical_face_is_centred_and_clean():
    face = canonical_face(SIZE)
    assert torch.equal(face.images, canonical_face(SIZE).images)
    lm = face.landmarks[0]
    assert torch.allclose(lm[0, 0] + lm[1, 0], torch.tensor(SIZE - 1.0), atol=1e-4)
    assert torch.allclose(lm[2, 0], torch.tensor((SIZE - 1) / 2), atol=1e-4)
    assert lm[0, 1] == lm[1, 1] and lm[0, 1] < lm[2, 1] < lm[3, 1]
    assert torch.equal(face.label_maps[0], face.label_maps[0].flip(-1).clone().apply_(
        lambda i: {4: 5, 5: 4, 6: 7, 7: 6, 8: 9, 9: 8}.get(i, i)))  # fmt: skip
    params = canonical_params({"Eyeglasses": 1, "skin_tone": 3})
    assert len(params) == 1 and params.attribute("skin_tone").item() == 3


def test_canonical_label_maps_agree_across_sizes():
    small = canonical_face(64, ALL_ON).label_maps[0]
    big = canonical_face(256, ALL_ON).label_maps[0]
    assert (big[1::4, 1::4] == small).float().mean() > 0.95
    for size in (112, 224, 512):
        face = canonical_face(size, ALL_ON)
        assert face.images.shape[-1] == size
        expect = face.landmarks[0, 2] / size
        assert torch.allclose(expect, canonical_face(64).landmarks[0, 2] / 64, atol=0.01)


@pytest.mark.parametrize(
    "attribute, regions",
    [
        ("Eyeglasses", ("eye_g",)),
        ("Wearing_Hat", ("hat",)),
        ("Wearing_Earrings", ("ear_r",)),
        ("Wearing_Necklace", ("neck_l",)),
        ("Wearing_Lipstick", ("u_lip", "l_lip")),
        ("Smiling", ("mouth",)),
    ],
)
def test_attribute_on_draws_its_region(params: FaceParams, attribute: str, regions: tuple):
    on = render(toggle(params[:60], attribute, 1), SIZE)
    off = render(toggle(params[:60], attribute, 0), SIZE)
    assert _mask(on, *regions).flatten(1).any(1).all()
    if attribute != "Wearing_Lipstick":
        assert not _mask(off, *regions).flatten(1).any(1).any()


def test_lipstick_makes_lips_redder(params: FaceParams):
    on = render(toggle(params[:60], "Wearing_Lipstick", 1), SIZE)
    off = render(toggle(params[:60], "Wearing_Lipstick", 0), SIZE)

    def redness(fa: FaceArrays) -> torch.Tensor:
        lips = _mask(fa, "u_lip", "l_lip").unsqueeze(1)
        img = fa.images.float()
        red = (img[:, 0] - 0.5 * (img[:, 1] + img[:, 2])).unsqueeze(1)
        return (red * lips).flatten(1).sum(1) / lips.flatten(1).sum(1)

    gain = redness(on) - redness(off)
    assert (gain > 20).float().mean() > 0.95 and (gain > 10).all() and gain.mean() > 50


@pytest.mark.parametrize(
    "attribute, regions, either",
    [
        ("Wearing_Lipstick", ("u_lip", "l_lip"), True),
        ("Eyeglasses", ("eye_g", "l_eye", "r_eye", "l_brow", "r_brow"), False),  # lens tint
        ("Wearing_Hat", ("hat",), False),
        ("Wearing_Earrings", ("ear_r",), False),
        ("Wearing_Necklace", ("neck_l",), False),
        ("Blond_Hair", ("hair",), True),
        ("Smiling", ("mouth", "u_lip", "l_lip"), True),
        ("Heavy_Makeup", ("skin", "eye_g"), True),
    ],
)
def test_counterfactual_changes_only_its_regions(params, faces, attribute, regions, either):
    flipped = render(toggle(params, attribute), SIZE)
    changed = (flipped.images != faces.images).any(1)
    assert changed.flatten(1).any(1).float().mean() > 0.9
    on = torch.where(params.attribute(attribute).bool()[:, None, None],
                     _mask(faces, *regions), _mask(flipped, *regions))  # fmt: skip
    allowed = _mask(faces, *regions) | _mask(flipped, *regions) if either else on
    assert not (changed & ~allowed).any()


def test_toggle_targets_and_skin_tone(params: FaceParams, faces: FaceArrays):
    male = render(toggle(params[:40], "Male"), SIZE)
    assert (male.images != faces.images[:40]).flatten(1).any(1).all()
    assert torch.equal(toggle(toggle(params, "Young"), "Young").attributes, params.attributes)
    dark = toggle(params[:40], "skin_tone", 3)
    assert (dark.skin_tone == 3).all() and torch.equal(dark.noise_seed, params.noise_seed[:40])
    with pytest.raises(ValueError):
        toggle(params, "skin_tone")
    neutral = canonical_params()
    assert toggle(neutral, "Male").target_gain[0, 0] == 1.0


def test_landmarks_lie_in_their_regions(params: FaceParams, faces: FaceArrays):
    bare = render(toggle(params, "Eyeglasses", 0), SIZE)
    pix = faces.landmarks.round().long().clamp(0, SIZE - 1)
    rows = torch.arange(len(params))

    def label_at(fa: FaceArrays, k: int) -> torch.Tensor:
        return fa.label_maps[rows, pix[:, k, 1], pix[:, k, 0]]

    assert (label_at(bare, 0) == REGION_ID["l_eye"]).all()
    assert (label_at(bare, 1) == REGION_ID["r_eye"]).all()
    glasses = params.attribute("Eyeglasses").bool()
    assert (label_at(faces, 0)[glasses] == REGION_ID["l_eye"]).all()  # eyes win over eye_g
    lens = faces.label_maps[glasses] == REGION_ID["eye_g"]
    assert lens.flatten(1).sum(1).min() > 0  # …but the rest of the lens is eye_g
    assert (label_at(faces, 2) == REGION_ID["nose"]).all()
    mouth = _mask(faces, "u_lip", "l_lip", "mouth")
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    for k in (3, 4):
        d2 = (xs - faces.landmarks[:, k, 0, None, None]) ** 2
        d2 = d2 + (ys - faces.landmarks[:, k, 1, None, None]) ** 2
        nearest = torch.where(mouth, d2, torch.tensor(1e9)).flatten(1).min(1).values
        assert (nearest <= 4.0).all()
    assert (faces.landmarks[:, 0, 0] < faces.landmarks[:, 1, 0]).all()
    assert (faces.landmarks[:, 3, 0] < faces.landmarks[:, 4, 0]).all()


def test_dense_landmarks_follow_the_68_point_layout(faces: FaceArrays):
    d = faces.extras["dense_landmarks"]
    assert (d[:, 8, 1] > d[:, :17, 1].max(1).values - 1.0).all()  # chin is the lowest
    assert (d[:, 36:42, 0].mean(1) < d[:, 42:48, 0].mean(1)).all()  # image-left eye first
    assert (d[:, 17:22, 1].mean(1) < d[:, 36:42, 1].mean(1)).all()  # brows above the eyes
    assert (d[:, 27:36, 1].mean(1) < d[:, 48:68, 1].mean(1)).all()  # nose above the mouth
    assert torch.allclose(d[:, 30], faces.landmarks[:, 2], atol=1e-4)  # nose tip


def test_face_box_holds_the_skin(faces: FaceArrays):
    skin = _mask(faces, "skin")
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    b = faces.boxes[:, :, None, None]
    inside = (xs >= b[:, 0] - 0.5) & (xs <= b[:, 2] + 0.5)
    inside &= (ys >= b[:, 1] - 0.5) & (ys <= b[:, 3] + 0.5)
    share = (skin & inside).flatten(1).sum(1) / skin.flatten(1).sum(1)
    assert (share >= 0.98).all()
    assert ((faces.boxes[:, 2] - faces.boxes[:, 0]) > SIZE * 0.35).all()


def test_dataset_cache_round_trip(tmp_path, monkeypatch):
    data = SyntheticFaces(n=30, size=32, prevalence={"Eyeglasses": 0.8})
    first = data.load("train", 0, cache_dir=tmp_path)
    assert len(first) == 30 and first.size == (32, 32)
    assert len(list(tmp_path.glob("synthetic-*"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("a cached pool must not be rendered again")

    monkeypatch.setattr(dataset_module, "render", fail)
    second = data.load("train", 0, cache_dir=tmp_path)
    for name in ("images", "label_maps", "attributes", "landmarks", "boxes"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert first.extras.keys() == second.extras.keys()
    assert all(torch.equal(first.extras[k], second.extras[k]) for k in first.extras)
    assert torch.equal(first.groups["skin_tone"], second.groups["skin_tone"])


def test_dataset_splits_and_seeds_differ():
    data = SyntheticFaces(n=8, size=32)
    train, test = data.load("train", 0), data.load("test", 0)
    assert not torch.equal(train.images, test.images)
    assert not torch.equal(train.images, data.load("train", 1).images)
    assert torch.equal(train.images, data.load("train", 0).images)
    assert data.cache_key("train", 0) != SyntheticFaces(n=8, size=64).cache_key("train", 0)
