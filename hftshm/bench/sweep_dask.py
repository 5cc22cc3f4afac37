"""``hftshm bench sweep-dask``: one sweep grid on the local process pool and on a Dask LocalCluster
with as many workers, side by side, on the shipped day. Target: Dask takes at most 1.2x the pool's
wall time (its scheduler and the per-worker data load are the overhead).

The cluster is started first and timed on its own (``startup``: spawning worker processes that import
numba and load the cached kernels; the pool forks from a process that has them): a real cluster is
already up. ``second_grid`` runs the grid again on the same workers (data already loaded there)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from hftshm.bench.report import emit

DEFAULT_GRID = ["spread_bps=0.5,1,2,4", "quantity=0.005,0.01,0.02,0.04"]  # 16 combinations


def sweep_dask_command(
    data: Path = typer.Option(Path("data/btcusdt_20240808.csv.gz"), "--data", help="day to sweep over"),
    sweep: list[str] = typer.Option(DEFAULT_GRID, "--sweep", help="k=v1,v2 grid axes (default: 16 combinations)"),
    workers: int = typer.Option(2, "--workers", help="pool processes = LocalCluster workers"),
    strategy: str = typer.Option("market_maker", "--strategy"),
    json_path: str = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """The same grid on the local process pool and on a 2-worker Dask LocalCluster: wall time each."""
    from hftshm.backtest.sweep import parse_sweep, run_sweep
    from hftshm.backtest.sweep_dask import run_sweep_dask

    grid = parse_sweep(sweep)
    load = os.getloadavg()[0]
    run_sweep(None, data, strategy, {}, parse_sweep(["spread_bps=1"]), workers=1, progress=False)  # compile once
    started = time.perf_counter()
    local = run_sweep(None, data, strategy, {}, grid, workers=workers, progress=False)
    local_s = time.perf_counter() - started
    from distributed import Client

    from hftshm.backtest.sweep_dask import local_cluster

    started = time.perf_counter()
    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        startup_s = time.perf_counter() - started
        started = time.perf_counter()
        dask = run_sweep_dask("local", None, data, strategy, {}, grid, progress=False, client=client)
        dask_s = time.perf_counter() - started
        started = time.perf_counter()
        run_sweep_dask("local", None, data, strategy, {}, grid, progress=False, client=client)
        warm_s = time.perf_counter() - started
    same = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in local] == \
        [{k: v for k, v in r.items() if k != "elapsed_s"} for r in dask]
    results = [
        {"name": "sweep.local_pool", "wall_s": local_s, "combinations": len(local), "workers": workers},
        {"name": "sweep.dask_local_cluster", "wall_s": dask_s, "combinations": len(dask), "workers": workers,
         "ratio_to_pool": dask_s / local_s, "rows_equal": same},
        {"name": "sweep.dask_local_cluster.second_grid", "wall_s": warm_s, "combinations": len(dask),
         "workers": workers, "ratio_to_pool": warm_s / local_s},
        {"name": "sweep.dask_local_cluster.startup", "wall_s": startup_s, "workers": workers},
    ]
    emit("bench sweep-dask: local process pool vs Dask LocalCluster", results, json_path, width=140,
         notes=[f"load average {load:.2f}; target: Dask <= 1.2x the pool's wall time"])


def register(bench_app: typer.Typer) -> None:
    bench_app.command("sweep-dask")(sweep_dask_command)
