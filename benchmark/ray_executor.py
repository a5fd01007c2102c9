"""`bench run --executor ray`: a suite's cells as Ray tasks, the driver the one writer.

The driver plans the suite (bad input fails here, exit 2, before Ray starts), records
the runs, and submits one task per prepare cell and one per explain cell that is not
stored yet. An explain task takes its prepare cell's result as an argument, so Ray
orders them. That result carries the scenario's stored rows and the trained checkpoint
bytes, so a node without the shared cache folder installs the model and does not
train it again. A task runs its cell as the local runner would, into a private DuckDB
file, and returns that file's rows. The driver stores each one as it arrives
(``benchmark.merge.merge_rows``, which checks that rows computed twice agree). A
killed run therefore loses only the cells in flight, and rerunning it skips what is
stored, exactly like a local run. Comparative metrics are scored once every explainer
of a scenario is stored.

Every node needs this checkout installed, and the suite, data and plugin paths must be
visible under the same names. A worker whose code or data differ gives another run id
and is refused.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmark.cells import Cell, plan_cells
from benchmark.errors import BenchError
from benchmark.merge import Rows, finish_runs, merge_rows, read_rows
from benchmark.plan import Plan, group_id, plan
from benchmark.store import Store

_CHECKED = ("runs", "scenarios", "reliance")  # what every cell of a scenario stores again


#: The splits this worker process loaded: Ray reuses a worker for many cells, and the
#: quickstart's data takes ~8 s to read, longer than most explain cells.
_DATA_MEMO: dict[tuple, object] = {}


@dataclass(frozen=True)
class Job:
    """What a worker needs to plan the suite as the driver did."""

    suite: str
    device: str | None
    cache: str
    cwd: str
    run_ids: dict[int, str]
    threads: int


def _worker_plan(job: Job, cell: Cell, fresh: bool) -> Plan:
    import torch

    torch.set_num_threads(job.threads)
    if os.path.isdir(job.cwd):  # relative dataset roots and suite plugins resolve as for the driver
        os.chdir(job.cwd)
        if job.cwd not in sys.path:
            sys.path.insert(0, job.cwd)
    p = plan(Path(job.suite), None, job.device, fresh)
    one = replace(p.for_seed(cell.seed), cache=Path(job.cache))
    if one.run_id != job.run_ids[cell.seed]:
        raise BenchError(
            f"ray worker on {socket.gethostname()}: run id {one.run_id[:12]}, the driver's "
            f"{job.run_ids[cell.seed][:12]}; expected the same code, data and packages on "
            "every node"
        )
    only = {cell.scenario: {cell.explainer} if cell.explainer else set()}
    return replace(one, only=only, data_memo=_DATA_MEMO)


def _run_cell(job: Job, cell: Cell, fresh: bool, seed_rows: Rows | None) -> dict[str, Any]:
    """Run one cell into a private database; its rows, and who ran it how fast."""
    from benchmark.runner import run_seed

    t0 = time.perf_counter()
    p = _worker_plan(job, cell, fresh)
    with tempfile.TemporaryDirectory(prefix="bench-cell-") as tmp:
        p = replace(p, db=Path(tmp) / "cell.duckdb")
        quiet = Console(file=io.StringIO(), width=140)
        with Store(p.db) as store:
            if seed_rows is not None:  # the prepare cell's scenario rows: reliance not redone
                merge_rows(store, [("prepare", seed_rows)], Path(tmp) / "figures")
            run_seed(p, group_id(p.suite, p.fingerprint), store, quiet)
            rows = read_rows(store.con, {p.run_id})
    rows["shards"] = []  # the driver records the run's one shard
    return {"rows": rows, "seconds": time.perf_counter() - t0, "node": socket.gethostname()}


def prepare_cell(job: Job, cell: Cell, fresh: bool) -> dict[str, Any]:
    """A Ray task: train (or load) a scenario's model, store its accuracies and reliance;
    the checkpoint's bytes go with the result, for nodes without the shared cache."""
    from benchmark.models.train import CheckpointCache

    result = _run_cell(job, cell, fresh, None)
    cache = CheckpointCache(Path(job.cache))
    keys = {r["model_hash"] for r in result["rows"]["scenarios"] if r.get("model_hash")}
    result["checkpoints"] = {
        k: cache.path(k).read_bytes() for k in keys if cache.path(k).is_file()
    }  # a model explained as it is has no checkpoint in the cache
    return result


def explain_cell(job: Job, cell: Cell, prepared: dict[str, Any]) -> dict[str, Any]:
    """A Ray task: one explainer on one scenario, with the prepare cell's model."""
    from benchmark.models.train import CheckpointCache

    cache = CheckpointCache(Path(job.cache))
    for key, blob in prepared["checkpoints"].items():
        cache.install(key, blob)
    return _run_cell(job, cell, False, prepared["rows"])


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BenchError(
            "--executor ray: Ray is not installed; expected pip install '.[ray]' "
            "(or pip install ray)"
        ) from None
    return ray


def run_on_ray(
    suite: Path,
    db: Path | None = None,
    device: str | None = None,
    fresh: bool = False,
    console: Console | None = None,
    leaderboard: bool = True,
    address: str | None = None,
    gpus_per_cell: float | None = None,
    cpus_per_cell: float = 1.0,
) -> str:
    """Run a suite's cells on a Ray cluster (``address``; a local one by default);
    returns the run id (the group id for several seeds). See the module doc."""
    console = console or Console()
    ray = _import_ray()
    # The driver validates and writes; the workers compute, each resolving the device
    # itself (a cluster's head node often has no GPU).
    p = plan(Path(suite), db, "cpu", fresh)
    requested = device or p.suite.device
    seeds = p.suite.seeds or [p.suite.seed]
    group = group_id(p.suite, p.fingerprint)
    runs = {s: p.for_seed(s) for s in seeds}
    job = Job(str(Path(suite).resolve()), requested, str(p.cache.resolve()), os.getcwd(),
              {s: r.run_id for s, r in runs.items()}, max(1, int(cpus_per_cell)))  # fmt: skip
    from benchmark.runner import run_record, shard_plan

    t0 = time.perf_counter()
    with Store(p.db) as store:
        for r in runs.values():  # the workers add their devices as their cells arrive
            store.start_run({**run_record(r, group), "device": "ray"})
        cells = plan_cells(p.suite)
        todo = [
            c for c in cells
            if c.explainer is not None
            and (fresh or not store.is_done(job.run_ids[c.seed], c.scenario, c.explainer))
        ]  # fmt: skip
        n_explain = sum(c.explainer is not None for c in cells)
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith("BENCH_")}
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env} if env else None)  # fmt: skip
        gpus = gpus_per_cell
        if gpus is None:  # one GPU per cell wherever the cells will run on CUDA
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0
            gpus = float(requested == "cuda" or (requested == "auto" and has_gpu))
        console.print(
            f"[bold]{p.suite.name}[/] on ray ({ray.cluster_resources().get('CPU', 0):g} CPU, "
            f"{ray.cluster_resources().get('GPU', 0):g} GPU): {n_explain} explain cell(s), "
            f"{n_explain - len(todo)} stored, {len(todo)} to run; {cpus_per_cell:g} CPU and "
            f"{gpus:g} GPU per cell → {p.db}",
            highlight=False,
        )
        # Ray's default retries stay: a cell is idempotent (its own private database).
        options = {"num_cpus": cpus_per_cell, "num_gpus": gpus}
        prepare = ray.remote(prepare_cell).options(**options)
        explain = ray.remote(explain_cell).options(**options)
        prepared = {c.needs: None for c in todo}
        refs = {prepare.remote(job, c, fresh): c for c in prepared}
        by_cell = {c: ref for ref, c in refs.items()}
        refs |= {explain.remote(job, c, by_cell[c.needs]): c for c in todo}
        status, pending = "failed", list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                cell = refs[ready[0]]
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    raise (cause if isinstance(cause, BenchError) else exc) from None
                # Stored rows of the run take part: a scenario prepared twice must agree
                # (with --fresh the stored ones are being replaced: only the run's row).
                checked = ("runs",) if fresh else _CHECKED
                stored = read_rows(store.con, {job.run_ids[cell.seed]}, checked)
                sources = [(str(p.db), stored), (str(cell), result["rows"])]
                merge_rows(store, sources, p.db.parent / "figures")
                console.print(
                    f"stored: {cell} ({result['seconds']:.1f}s on {result['node']})",
                    highlight=False,
                )
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            for ref in pending if status != "done" else ():
                ray.cancel(ref)
            timings = {"total": time.perf_counter() - t0}
            for r in runs.values():
                store.put_shard(r.run_id, group, (1, 1), status, timings, shard_plan(r))
            finish_runs(store, {r.run_id for r in runs.values()})
            for r in runs.values():
                store.finish_run(r.run_id, status, timings)
    console.print(f"done in {timings['total']:.1f}s; results in {p.db}", highlight=False)
    if leaderboard:
        from leaderboard.site import build_site

        build_site(p.db, p.db.parent / "site")
        console.print(f"leaderboard: {p.db.parent / 'site' / 'index.html'}")
    return group if len(seeds) > 1 else next(iter(runs.values())).run_id
