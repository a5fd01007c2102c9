"""`bench compare`, `bench check` and `bench baseline save`: CI gates on explanation
quality (issue 6). Registered on the app in ``benchmark.cli``."""

from __future__ import annotations

from pathlib import Path

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from benchmark.baseline import load as load_baseline
from benchmark.baseline import save as save_baseline
from benchmark.compare import Side, Verdict, compare, load_side
from benchmark.errors import BenchError

STYLE = {"worse": "bold red", "better": "green", "missing": "bold red", "new": "cyan"}
DEFAULT_DB = Path("bench_results/results.duckdb")


def _side(ref: str, db: Path, resamples: int) -> Side:
    """A baseline file, or a run or group id in ``db``."""
    path = Path(ref)
    if path.suffix == ".json" or path.is_file():
        return load_baseline(path)
    if not db.is_file():
        raise BenchError(f"{db}: no such results database (give --db)")
    with duckdb.connect(str(db), read_only=True) as con:
        return load_side(con, ref, resamples)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def report(verdicts: list[Verdict], a: Side, b: Side, everything: bool) -> Table:
    """A rich table of the rows (only the changed ones unless ``everything``)."""
    table = Table(title=f"{b.label} against {a.label}", title_justify="left")
    for col in ("scenario", "explainer", "metric", "A", "B", "B − A", "CI of B − A", "tol"):
        table.add_column(col, justify="right" if col in ("A", "B", "B − A", "tol") else "left")
    table.add_column("verdict")
    for v in verdicts:
        if not everything and v.verdict == "unchanged":
            continue
        arrow = "↑" if v.direction == "higher" else "↓"
        ci = "–" if v.low is None else f"[{v.low:.3g}, {v.high:.3g}]"
        style = STYLE.get(v.verdict, "")
        verdict = f"[{style}]{v.verdict}[/]" if style else v.verdict
        table.add_row(*v.key[:2], f"{v.key[2]} {arrow}", _num(v.a), _num(v.b), _num(v.diff),
                      ci, f"{v.tolerance:g}", verdict)  # fmt: skip
    return table


def _summary(verdicts: list[Verdict]) -> str:
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def compare_cmd(
    a: str = typer.Argument(..., help="Reference: a run or group id prefix, or a baseline file."),
    b: str = typer.Argument(..., help="Compared: a run or group id prefix, or a baseline file."),
    db: Path = typer.Option(DEFAULT_DB, help="Results database."),
    confidence: float = typer.Option(0.95, help="Level of the difference's interval."),
    resamples: int = typer.Option(2000, help="Bootstrap resamples."),
    correction: str = typer.Option("bonferroni", help="bonferroni (all rows at once) | none."),
    all_rows: bool = typer.Option(False, "--all", help="Show unchanged rows too."),
) -> None:
    """Two runs side by side: values, difference, its CI, and a verdict per row."""
    from benchmark.cli import _fail, console

    try:
        sa, sb = _side(a, db, resamples), _side(b, db, resamples)
    except BenchError as exc:
        _fail(exc)
    if correction not in ("bonferroni", "none"):
        _fail(BenchError(f"--correction: expected bonferroni or none, got {correction!r}"))
    verdicts = compare(sa, sb, confidence, correction=correction)
    console.print(report(verdicts, sa, sb, all_rows))
    console.print(f"{len(verdicts)} rows: {_summary(verdicts)}", highlight=False)


def check_cmd(
    suite: Path = typer.Argument(..., help="Suite YAML file."),
    baseline: Path = typer.Option(..., "--baseline", help="Baseline file (bench baseline save)."),
    db: Path = typer.Option(None, help="Results DB (default: the suite's, else bench_results/)."),
    device: str = typer.Option(None, help="cpu | cuda | auto (default: the suite's)."),
) -> None:
    """Run the suite (reusing stored work) and fail when a row regressed beyond tolerance."""
    from benchmark.cli import _fail, console
    from benchmark.runner import plan, run_plan

    try:
        base = load_baseline(baseline)
        p = plan(suite, db, device, False)
        ref = run_plan(p, console)
        check = p.suite.check
        with duckdb.connect(str(p.db), read_only=True) as con:
            side = load_side(con, ref, check.resamples)
    except BenchError as exc:
        _fail(exc)
    verdicts = compare(base, side, check.confidence, check.tolerance, check.correction)
    bad = [v for v in verdicts if v.verdict in ("worse", "missing")]
    console.print(report(verdicts, base, side, everything=False))
    console.print(f"{len(verdicts)} rows: {_summary(verdicts)}", highlight=False)
    if bad:
        Console(stderr=True).print(
            f"[bold red]check failed:[/] {len(bad)} row(s) worse than {baseline} or missing",
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(f"check passed against {baseline}", highlight=False)


def baseline_save_cmd(
    suite: Path = typer.Argument(..., help="Suite YAML file (run first, reusing stored work)."),
    out: Path = typer.Option(..., "--out", help="Baseline file to write."),
    db: Path = typer.Option(None, help="Results DB (default: the suite's, else bench_results/)."),
    run_id: str = typer.Option(None, "--run", help="Save this stored run or group; do not run."),
    device: str = typer.Option(None, help="cpu | cuda | auto (default: the suite's)."),
) -> None:
    """Write a small, diff-friendly baseline of the suite's scores to commit beside it."""
    from benchmark.cli import _fail, console
    from benchmark.runner import plan, run_plan

    try:
        p = plan(suite, db, device, False)
        ref = run_id or run_plan(p, console)
        with duckdb.connect(str(p.db), read_only=True) as con:
            side = load_side(con, ref, p.suite.check.resamples)
        save_baseline(out, side, ref, p.git_sha)
    except BenchError as exc:
        _fail(exc)
    console.print(f"baseline of {len(side.rows)} rows ({side.label}) → {out}", highlight=False)
