"""Small helpers shared by the leaderboard's modules (and the runner's summary)."""

from __future__ import annotations

import re

import duckdb


def fmt(value: float | None, pct: bool = False) -> str:
    """A score as printed: integers bare, else three significant digits; ``pct`` ×100."""
    if value is None or value != value:  # None or NaN
        return "–"
    if pct:
        return f"{100 * value:.1f}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def slug(*parts: str) -> str:
    """A file-name-safe join of ``parts``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether ``table`` has ``column``: the leaderboard opens older databases read-only,
    so the store's migrations have not added later columns to them."""
    (n,) = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()
    return bool(n)
