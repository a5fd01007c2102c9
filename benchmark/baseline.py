"""Baseline files: a run's scores with their standard errors, to commit beside a suite.

The file is JSON with one score row per line, sorted, so a changed score is a one-line
diff in review. Values keep their full float repr, so a run identical to the one that
wrote the baseline compares equal to the last bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark.compare import Row, Side
from benchmark.errors import BenchError

FORMAT = "face-xai-bench baseline 1"


def dumps(side: Side, source: str, git_sha: str | None = None) -> str:
    """The baseline text of ``side`` (a run or group loaded with ``load_side``)."""
    head = {
        "format": FORMAT,
        "suite": side.suite,
        "source": source,
        "git_sha": git_sha,
        "seeds": side.seeds,
        "tolerance": dict(sorted(side.tolerance.items())),
    }
    rows = []
    for (scenario, explainer, metric), row in sorted(side.rows.items()):
        item = {
            "scenario": scenario, "explainer": explainer, "metric": metric,
            "direction": row.direction, "value": row.value, "se": row.se,
            "seeds": {str(k): v for k, v in sorted(row.seeds.items())},
        }  # fmt: skip
        rows.append("  " + json.dumps(item, ensure_ascii=False))
    lines = json.dumps(head, indent=1, ensure_ascii=False)[:-2]  # drop the closing "\n}"
    return lines + ',\n "rows": [\n' + ",\n".join(rows) + "\n ]\n}\n"


def save(path: Path, side: Side, source: str, git_sha: str | None = None) -> None:
    """Write the baseline atomically (a half-written baseline would fail every check)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(side, source, git_sha))
    tmp.replace(path)


def load(path: Path) -> Side:
    """A baseline file as a comparison side."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"{path}: no such baseline file") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: not a baseline (line {exc.lineno}: {exc.msg})") from None
    if data.get("format") != FORMAT:
        raise BenchError(f"{path}: format: expected {FORMAT!r}, got {data.get('format')!r}")
    rows = {}
    for i, item in enumerate(data.get("rows", [])):
        try:
            key = (item["scenario"], item["explainer"], item["metric"])
            rows[key] = Row(
                direction=item["direction"],
                seeds={int(k): float(v) for k, v in item.get("seeds", {}).items()},
                value=float(item["value"]),
                se=float(item.get("se", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BenchError(f"{path}: rows[{i}]: expected scenario, explainer, metric, "
                             f"direction and value ({exc})") from None  # fmt: skip
    tolerance = {k: float(v) for k, v in (data.get("tolerance") or {}).items()}
    return Side(f"baseline {path.name}", list(data.get("seeds", [])), rows, tolerance,
                data.get("suite"))  # fmt: skip
