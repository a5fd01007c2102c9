"""Human names of score keys and run settings, for headers and captions.

One table from score keys to the names a reader sees; the raw key stays in the header's
tooltip. Unknown keys (plugins, ``quantus:Foo``, suite labels) get a title-cased id.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Score key → human name. Keys are the metric classes' names (``metrics/*.py``).
NAMES: dict[str, str] = {
    "average_drop": "Average Drop %",
    "increase_in_confidence": "Increase in confidence %",
    "win_percent": "Win %",
    "ranking_position": "Ranking position",
    "deletion_auc": "Deletion AUC",
    "insertion_auc": "Insertion AUC",
    "bbox_ap": "bbox AP",
    "bbox_ap_face": "bbox AP (face box)",
    "pointing_game": "Pointing game",
    "model_randomisation": "Sanity: model randomisation",
    "explainer_stability": "Explainer stability",
    "gt_agreement": "Ground-truth agreement (Spearman ρ)",
    "gt_agreement.top_hit": "Ground truth: top attribute right",
}

_ORDINAL = {1: "st", 2: "nd", 3: "rd"}

#: ``explain.postprocess`` of a suite → how its maps were treated before region metrics.
POSTPROCESS: dict[str, str] = {
    "signed": "signed (raw maps)",
    "positive": "positive (ReLU)",
    "absolute": "absolute (|map|)",
}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else _ORDINAL.get(n % 10, "th")
    return f"{n}{suffix}"


def title_id(key: str) -> str:
    """``quantus:faithfulness_estimate`` → ``Quantus: Faithfulness Estimate``.

    Only first letters are raised, so ``FaithfulnessCorrelation`` keeps its capitals.
    """
    out = []
    for part in key.replace(":", ": ").replace(".", " ").replace("_", " ").split(" "):
        out.append(part[:1].upper() + part[1:] if part else part)
    return " ".join(p for p in out if p)


def metric_name(key: str, registry: Mapping[str, str] | None = None) -> str:
    """The human name of a score key.

    Args:
        key: a score key as stored (``ranking_position.rp2``, a suite label, a plugin).
        registry: suite label → registered metric name, to name a labelled metric.
    """
    if key in NAMES:
        return NAMES[key]
    base, _, sub = key.partition(".")
    registered = (registry or {}).get(base, base)
    if base in NAMES:
        head = NAMES[base]
    elif registered in NAMES:
        head = f"{NAMES[registered]} ({base})"
    else:
        head = title_id(base)
    if not sub:
        return head
    if sub.startswith("rp") and sub[2:].isdigit():  # ranking_position.rp2: the 2nd attribute
        return f"{head} ({_ordinal(int(sub[2:]))} attribute)"
    return f"{head} ({title_id(sub).lower()})"


def arrow(direction: str | None) -> str:
    """↑ where higher is better, ↓ where lower is."""
    return "↑" if direction == "higher" else "↓"


def postprocess_text(suite_json: Mapping[str, object]) -> str:
    """``maps: positive (ReLU) before region metrics`` from ``explain.postprocess``."""
    explain = suite_json.get("explain") if isinstance(suite_json, Mapping) else None
    policy = explain.get("postprocess") if isinstance(explain, Mapping) else None
    if policy in (None, "signed"):
        return "maps: signed (raw maps)"
    return f"maps: {POSTPROCESS.get(str(policy), str(policy))} before region metrics"
