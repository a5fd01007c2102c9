"""``bench export``: one table of the results database as CSV, Parquet or JSON.

DuckDB writes the file itself (``COPY (SELECT …) TO … (FORMAT …)``; Parquet and JSON are
built into it), so exporting needs no pandas or pyarrow. Rows come in primary-key order,
so two exports of the same database are byte-identical.

Encodings: JSON columns stay JSON text in CSV and Parquet and become nested values in
JSON; list columns (``per_image.values``) are ``[a, b]`` text in CSV. BLOB columns (the
figures' PNG bytes) are kept as raw bytes in Parquet and written as base64 text in CSV
and JSON, which cannot hold bytes: the figures survive every format.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from benchmark.errors import BenchError, did_you_mean
from benchmark.store import TABLES

# Format → the COPY options DuckDB needs for it. JSON as one array: ``json.load`` reads
# it, not only JSON-lines readers.
FORMATS = {
    "csv": "FORMAT csv, HEADER true",
    "parquet": "FORMAT parquet",
    "json": "FORMAT json, ARRAY true",
}


def _literal(path: Path) -> str:
    # COPY takes no parameter for its target: the path goes in as a quoted SQL literal.
    return "'" + str(path).replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def resolve_run(con: duckdb.DuckDBPyConnection, prefix: str) -> str:
    """The one run id that starts with ``prefix``.

    Raises:
        BenchError: no run, or several runs, start with it.
    """
    ids = [
        r[0]
        for r in con.execute(
            "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id", [prefix]
        ).fetchall()
    ]
    if not ids:
        known = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
        listed = ", ".join(known[:5]) + (", …" if len(known) > 5 else "")
        hint = did_you_mean(prefix, known) or (
            f"; runs: {listed}" if known else "; the database has no runs"
        )
        raise BenchError(f"--run: no run id starts with {prefix!r}{hint}")
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
        raise BenchError(
            f"--run: {prefix!r} is ambiguous, {len(ids)} runs start with it ({shown}); "
            "give more of the id"
        )
    return ids[0]


def _select(con: duckdb.DuckDBPyConnection, table: str, fmt: str, run: bool) -> str:
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE table_name = ? AND schema_name = 'main' ORDER BY column_index",
        [table],
    ).fetchall()
    cols = [
        f'to_base64("{c}") AS "{c}"' if t == "BLOB" and fmt != "parquet" else f'"{c}"'
        for c, t in columns
    ]
    keys = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = ? AND schema_name = 'main' AND constraint_type = 'PRIMARY KEY'",
        [table],
    ).fetchone()
    order = " ORDER BY " + ", ".join(f'"{k}"' for k in keys[0]) if keys else ""
    where = " WHERE run_id = ?" if run else ""
    return f"SELECT {', '.join(cols)} FROM {table}{where}{order}"


def export_table(
    db: Path, table: str, fmt: str, out: Path | None = None, run: str | None = None
) -> tuple[Path, int]:
    """Write one table of ``db`` to a file.

    Every input is checked before anything is written; a failed write leaves no file.

    Args:
        db: the DuckDB results database.
        table: one of :data:`benchmark.store.TABLES`.
        fmt: ``csv``, ``parquet`` or ``json``.
        out: the file to write, or a folder to write ``<table>.<fmt>`` in (default:
            ``<table>.<fmt>`` in the current folder).
        run: only this run's rows; a unique prefix of a run id is enough.

    Returns:
        The path written and the number of rows in it.

    Raises:
        BenchError: unknown table or format, missing or unreadable database, unknown or
            ambiguous run.
    """
    if table not in TABLES:
        raise BenchError(
            f"unknown table {table!r}; expected one of {', '.join(TABLES)}"
            f"{did_you_mean(table, TABLES)}"
        )
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise BenchError(
            f"--format: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}"
            f"{did_you_mean(fmt, FORMATS)}"
        )
    db = Path(db)
    if not db.is_file():
        raise BenchError(f"--db: no results database at {db}; run a suite first (bench run …)")
    target = Path(out) if out is not None else Path(f"{table}.{fmt}")
    if target.is_dir():
        target = target / f"{table}.{fmt}"
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        raise BenchError(
            f"--db: cannot open {db} as a DuckDB database: {_first_line(exc)}"
        ) from exc
    with con:
        present = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if table not in present:
            raise BenchError(f"{db} has no table {table!r} (written by an older version?)")
        run_id = resolve_run(con, run) if run is not None else None
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target, then moved: an interrupted COPY leaves no half file
        # under the name a later step would trust.
        partial = target.with_name(f".{target.name}.partial")
        sql = f"COPY ({_select(con, table, fmt, run_id is not None)}) TO {_literal(partial)} "
        try:
            (n,) = con.execute(f"{sql}({FORMATS[fmt]})", [run_id] if run_id else []).fetchone()
            os.replace(partial, target)
        except (duckdb.Error, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise BenchError(f"--out: cannot write {target}: {_first_line(exc)}") from exc
    return target, int(n)
