"""The `bench` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmark.allocator import tune_glibc_malloc
from benchmark.errors import BenchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmark explainers of face-analysis models on suites of injected biases.",
)
# Suites may name `package.module:attr` plugins that live beside them, not installed: the
# working directory is importable, as it is for `python -m`.
if "" not in sys.path and str(Path.cwd()) not in sys.path:
    sys.path.insert(0, str(Path.cwd()))
tune_glibc_malloc()  # CPU perturbation forwards: ~2× faster (benchmark/allocator.py)
# Piped output gets 140 columns instead of rich's 80, so the summary keeps one line a row.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)


def _fail(exc: BenchError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
    raise typer.Exit(exc.exit_code)


@app.command()
def validate(suite: Path = typer.Argument(..., help="Suite YAML file.")) -> None:
    """Validate a suite as `bench run` would (the model and every explainer and metric
    are built with their parameters), without its data and without running anything."""
    from benchmark.plan import plan

    try:
        s = plan(suite, None, "cpu", False, check_data=False).suite
    except BenchError as exc:
        _fail(exc)
    console.print(
        f"{suite}: OK — {len(s.scenarios)} scenario(s) × {len(s.explainers)} explainer(s)"
        f" × {len(s.metrics)} metric(s)",
        highlight=False,
    )


@app.command(name="list")
def list_(kind: str = typer.Argument(..., help="explainers | metrics | datasets | models")) -> None:
    """List a registry: names, aliases, where each comes from."""
    from benchmark.catalogue import REGISTRIES

    registry = REGISTRIES.get(kind.lower()) or REGISTRIES.get(kind.lower() + "s")
    if registry is None:
        from benchmark.errors import did_you_mean

        _fail(
            BenchError(
                f"unknown registry {kind!r}; expected one of "
                f"{', '.join(REGISTRIES)}{did_you_mean(kind, REGISTRIES)}"
            )
        )
    table = Table(title=f"{kind.lower()}", show_lines=False)
    for col in ("name", "aliases", "source", "summary"):
        table.add_column(col)
    for entry in registry:
        table.add_row(entry.name, ", ".join(entry.aliases), entry.source, entry.summary)
    for prefix, entry in registry.prefixes().items():  # open-ended families (quantus:<Class>)
        table.add_row(f"{prefix}:<name>", "", entry.source, entry.summary)
    console.print(table)


@app.command()
def run(
    suite: Path = typer.Argument(..., help="Suite YAML file."),
    db: Path | None = typer.Option(
        None, "--db", help="DuckDB file (default: the suite's, else bench_results/results.duckdb)."
    ),
    device: str | None = typer.Option(
        None, "--device", help="Override the suite's device: auto|cpu|cuda."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Recompute everything, ignoring stored results and cached models."
    ),
    leaderboard: bool = typer.Option(
        True, "--leaderboard/--no-leaderboard", help="Render the static site beside the DB."
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="Run shard K of N of the suite's cells (K/N, from 1), into its "
        "own DB (default RESULTS.shard-K-of-N.duckdb); join them with bench merge.",
    ),
    executor: str = typer.Option("local", "--executor", help="local | ray."),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster to join (default: a local one; ray: RAY_ADDRESS)."
    ),
    gpus_per_cell: float | None = typer.Option(
        None, "--gpus-per-cell", help="Ray: GPUs per cell (default 1 on CUDA, else 0)."
    ),
    cpus_per_cell: float = typer.Option(1.0, "--cpus-per-cell", help="Ray: CPUs per cell."),
) -> None:
    """Run a suite end to end: data, bias, model, explainers, metrics, DuckDB."""
    from benchmark.cells import parse_shard
    from benchmark.runner import run_suite

    try:
        if executor not in ("local", "ray"):
            from benchmark.errors import did_you_mean

            raise BenchError(
                f"--executor: expected local or ray, got {executor!r}"
                + did_you_mean(executor, ["local", "ray"])
            )
        k_n = parse_shard(shard) if shard is not None else None
        if executor == "ray":
            if k_n is not None:
                raise BenchError("--shard: the ray executor runs every cell; drop --shard")
            from benchmark.ray_executor import run_on_ray

            run_on_ray(
                suite, db=db, device=device, fresh=fresh, console=console,
                leaderboard=leaderboard, address=address, gpus_per_cell=gpus_per_cell,
                cpus_per_cell=cpus_per_cell,
            )  # fmt: skip
        else:
            run_suite(
                suite, db=db, device=device, fresh=fresh, console=console,
                leaderboard=leaderboard, shard=k_n,
            )  # fmt: skip
    except BenchError as exc:
        _fail(exc)


@app.command()
def merge(
    inputs: list[Path] = typer.Argument(..., help="Shard databases (bench run --shard K/N)."),
    db: Path = typer.Option(..., "--db", help="The merged DuckDB file (created or extended)."),
    leaderboard: bool = typer.Option(
        True, "--leaderboard/--no-leaderboard", help="Render the static site beside the DB."
    ),
) -> None:
    """Merge the shards of one run into one results database (idempotent)."""
    from benchmark.merge import merge_databases

    try:
        report = merge_databases(inputs, db)
    except BenchError as exc:
        _fail(exc)
    for run_id, r in report.items():
        if r["expected"] is None:
            console.print(f"run {run_id[:12]}: {r['cells']} explain cell(s)", highlight=False)
            continue
        missing = sorted(set(range(1, r["of"] + 1)) - set(r["shards"]))
        gap = f"; missing shard(s) {', '.join(map(str, missing))} of {r['of']}" if missing else ""
        console.print(
            f"run {run_id[:12]}: {r['status']}, {r['cells']}/{r['expected']} explain cells "
            f"from shard(s) {', '.join(map(str, r['shards']))} of {r['of']}{gap}",
            highlight=False,
        )
    console.print(f"merged {len(inputs)} database(s) → {db}", highlight=False)
    if leaderboard:
        from leaderboard.site import build_site

        build_site(db, db.parent / "site")
        console.print(f"leaderboard: {db.parent / 'site' / 'index.html'}")


datasets_app = typer.Typer(no_args_is_help=True, help="Datasets a suite reads from disk.")
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("check")
def datasets_check(suite: Path = typer.Argument(..., help="Suite YAML file.")) -> None:
    """Report whether every dataset of a suite is on disk; exit 2 listing what is missing."""
    from benchmark.catalogue import DATASETS
    from benchmark.suite import load_suite

    try:
        s = load_suite(suite)
    except BenchError as exc:
        _fail(exc)
    table = Table(title=f"datasets of {s.name}")
    for col in ("split", "dataset", "status"):
        table.add_column(col)
    problems: list[str] = []
    for split in ("train", "test"):
        spec = getattr(s.dataset, split)
        if spec is None:  # a model explained as it is reads no training set
            continue
        try:
            ds = DATASETS.get(spec.name)(**spec.params)
        except (TypeError, ValueError) as exc:
            _fail(BenchError(f"{s.source}: dataset.{split}.params: {exc}"))
        missing = ds.missing() if callable(getattr(ds, "missing", None)) else []
        status = "[red]" + escape("\n".join(missing)) + "[/]" if missing else "[green]ready[/]"
        table.add_row(split, spec.name, status)
        problems += missing
    console.print(table)
    if problems:
        err_console.print(f"[bold red]error:[/] {len(problems)} missing item(s)", highlight=False)
        raise typer.Exit(2)


@app.command(name="leaderboard")
def leaderboard_(
    db: Path = typer.Option(Path("bench_results/results.duckdb"), "--db", help="Results DB."),
    out: Path = typer.Option(Path("bench_results/site"), "--out", help="Site folder."),
) -> None:
    """Write the static leaderboard site from a results database alone."""
    from leaderboard.site import build_site

    if not db.is_file():
        _fail(BenchError(f"--db: no results database at {db}; run a suite first (bench run …)"))
    pages = build_site(db, out)
    console.print(f"leaderboard: {len(pages)} page(s) in {out}/ (open {out / 'index.html'})")


@app.command()
def export(
    table: str = typer.Argument(..., help="Table: runs, scenarios, scores, figures, …"),
    format_: str = typer.Option(..., "--format", help="csv | parquet | json."),
    db: Path = typer.Option(Path("bench_results/results.duckdb"), "--db", help="Results DB."),
    out: Path | None = typer.Option(None, "--out", help="File or folder (default ./TABLE.EXT)."),
    run: str | None = typer.Option(None, "--run", help="Only this run (a unique id prefix)."),
) -> None:
    """Export one results table (figures' PNG bytes as base64 in csv and json)."""
    from benchmark.export import export_table

    try:
        path, n = export_table(db, table, format_, out=out, run=run)
    except BenchError as exc:
        _fail(exc)
    console.print(f"{table}: {n} row(s) → {path}", highlight=False)


def _register_gates() -> None:
    """`compare`, `check` and `baseline save` (benchmark/cli_gate.py)."""
    from benchmark import cli_gate

    app.command(name="compare")(cli_gate.compare_cmd)
    app.command(name="check")(cli_gate.check_cmd)
    baseline_app = typer.Typer(no_args_is_help=True, help="Baseline files for bench check.")
    baseline_app.command(name="save")(cli_gate.baseline_save_cmd)
    app.add_typer(baseline_app, name="baseline")


_register_gates()


def main() -> None:  # pragma: no cover - console entry for `python -m benchmark`
    sys.exit(app())
