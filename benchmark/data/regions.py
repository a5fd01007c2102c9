"""The CelebAMask-HQ region protocol (METHODS.md §1): 19 label ids and attribute→regions."""

from __future__ import annotations

REGION_NAMES: tuple[str, ...] = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow",
    "l_ear", "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l",
    "neck", "cloth",
)  # fmt: skip
REGION_ID: dict[str, int] = {name: i for i, name in enumerate(REGION_NAMES)}

# Default `bias_regions` (METHODS.md §1); a suite may override it per scenario.
ATTRIBUTE_REGIONS: dict[str, tuple[str, ...]] = {
    "Blond_Hair": ("hair",),
    "Eyeglasses": ("eye_g",),
    "Smiling": ("mouth",),
    "Wearing_Earrings": ("ear_r",),
    "Wearing_Lipstick": ("u_lip", "l_lip"),
    "Wearing_Necklace": ("neck_l",),
    "Wearing_Hat": ("hat",),
    "skin_tone": ("skin",),
    "race": ("skin",),
}
#: Face parts of the inpainting game (the nonmate differs from the mate in one) and
#: the regions each draws: the game's ground truth.
PART_REGIONS: dict[str, tuple[str, ...]] = {
    "brows": ("l_brow", "r_brow"),
    "eyes": ("l_eye", "r_eye"),
    "nose": ("nose",),
    "mouth": ("mouth", "u_lip", "l_lip"),
}
# FairFace's and RFW's race columns: skin, as race (METHODS §1).
RACE_COLUMNS = ("White", "Black", "Latino_Hispanic", "East_Asian", "Southeast_Asian",
                "Indian", "Middle_Eastern", "Asian")  # fmt: skip
ATTRIBUTE_REGIONS.update({race: ATTRIBUTE_REGIONS["race"] for race in RACE_COLUMNS})
