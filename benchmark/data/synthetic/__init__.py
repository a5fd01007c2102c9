"""Synthetic faces (DATASETS.md): placeholder until the renderer lands in this session."""

ATTRIBUTES: tuple[str, ...] = (
    "Male", "Young", "Blond_Hair", "Eyeglasses", "Smiling", "Wearing_Earrings",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Hat", "Heavy_Makeup",
)  # fmt: skip
GROUPS: tuple[str, ...] = ("skin_tone",)


class SyntheticFaces:
    attribute_names = ATTRIBUTES
    group_names = GROUPS

    def __init__(self, n: int = 2000, size: int = 64, prevalence: dict | None = None):
        self.n, self.size, self.prevalence = n, size, prevalence
