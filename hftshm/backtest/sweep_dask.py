"""Sweeps on Dask: the same tasks as the local process pool (``hftshm.backtest.sweep``), scheduled by
``distributed`` on a ``LocalCluster`` (``--cluster local``) or a running cluster
(``--cluster tcp://HOST:8786``, whose workers have hftshm installed and the data files at the same paths).

Each task is one (data file, parameters) pair; a worker process sets up once per sweep and loads
each data file once (``sweep._events``), so a days x parameters grid reads every day once per
worker. A worker that dies mid-task is replaced by Dask and its tasks run again elsewhere (results
are deterministic, so a re-run gives the same row). Rows equal the local pool's: the same function
computes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hftshm.backtest import sweep


def _task(setup: tuple, task: tuple) -> dict[str, Any]:
    """Runs on a Dask worker: set up this worker for the sweep once, then one combination."""
    if sweep._state.get("setup") != setup:
        sweep._init(*setup)
    return sweep.run_task(task)


def local_cluster(workers: int | None = None):
    """A LocalCluster of single-threaded worker processes (numba kernels release no GIL to share)."""
    import os

    from distributed import LocalCluster

    n = max(1, workers or (os.cpu_count() or 1))
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, silence_logs=40)


def run_sweep_dask(cluster: str, config, data, strategy: str, base_params: dict[str, Any],
                   grid: dict[str, list[str]], seed: int = 1, rank_by: str = "net_pnl", workers: int | None = None,
                   engine_name: str = "auto", progress: bool = True, client=None) -> list[dict[str, Any]]:
    """``run_sweep`` on Dask. ``cluster``: "local" (a LocalCluster of ``workers`` processes, closed
    afterwards) or a scheduler address (tcp://HOST:8786). ``client``: an existing ``distributed.Client``."""
    from distributed import Client, as_completed

    if rank_by not in sweep.RANK_METRICS:
        raise ValueError(f"rank by {rank_by!r}; allowed: {', '.join(sweep.RANK_METRICS)}")
    files = list(data) if isinstance(data, (list, tuple)) else [data]
    files = [str(Path(f).resolve()) if Path(f).exists() else str(f) for f in files]
    tasks, labels = sweep.grid_tasks(files, base_params, grid)
    setup = (str(Path(config).resolve()) if config else None, strategy, seed, engine_name)
    owned = []
    if client is None:
        if cluster == "local":
            local = local_cluster(workers)
            owned.append(local)
            client = Client(local)
        elif cluster.startswith(("tcp://", "tls://")):
            try:
                client = Client(cluster, timeout="10s")
            except OSError as exc:
                raise ValueError(f"--cluster {cluster}: no Dask scheduler answers there ({exc})") from None
        else:
            raise ValueError(f"--cluster {cluster!r}: use 'local' or a scheduler address tcp://HOST:8786")
        owned.insert(0, client)
    try:
        futures = client.map(_task, [setup] * len(tasks), tasks, pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        rows: list[Any] = [None] * len(tasks)
        with sweep._maybe_progress(progress, len(tasks)) as bar:
            for future in as_completed(futures):
                i = index[future.key]
                try:
                    rows[i] = future.result()
                except Exception as exc:  # the task itself never raises; a lost worker beyond retries does
                    rows[i] = {"params": tasks[i][1], "error": f"{type(exc).__name__}: {exc}"}
                bar.advance()
    finally:
        for thing in owned:
            thing.close()
    return sweep.finish_rows(rows, labels, len(files) > 1, rank_by)
