"""The four real CelebAMask-HQ samples of ../shared as a CelebAMask-HQ folder (images
linked, never copied; label maps split into the dataset's per-region PNGs)."""

from __future__ import annotations

from pathlib import Path

import cv2

from benchmark.data.files import CELEBA_ATTRIBUTES
from tests.test_celebamask_hq import SAMPLES, write_region_pngs

#: Our own reading of the four faces (the real attribute file is not among the
#: samples): 0 and 2 are women with lipstick, 1 and 3 bearded men.
ATTRIBUTES = {
    0: {"Male": -1, "Wearing_Lipstick": 1, "No_Beard": 1},
    1: {"Male": 1, "Wearing_Lipstick": -1, "No_Beard": -1},
    2: {"Male": -1, "Wearing_Lipstick": 1, "No_Beard": 1},
    3: {"Male": 1, "Wearing_Lipstick": -1, "No_Beard": -1},
}


def real_samples_folder(root: Path) -> Path:
    """A ``CelebAMask-HQ`` folder under ``root`` holding the four real samples."""
    folder = root / "CelebAMask-HQ"
    (folder / "CelebA-HQ-img").mkdir(parents=True)
    for i in range(4):
        (folder / "CelebA-HQ-img" / f"{i}.jpg").symlink_to(SAMPLES / f"{i}.jpg")
        labels = cv2.imread(str(SAMPLES / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
        write_region_pngs(folder / "CelebAMask-HQ-mask-anno", i, labels)
    names = list(CELEBA_ATTRIBUTES)
    rows = [f"{i}.jpg  " + " ".join(str(ATTRIBUTES[i].get(n, -1)) for n in names) for i in range(4)]
    (folder / "CelebAMask-HQ-attribute-anno.txt").write_text(
        "4\n" + " ".join(names) + "\n" + "\n".join(rows) + "\n"
    )
    return folder
