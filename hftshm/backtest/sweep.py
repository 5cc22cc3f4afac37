"""Parameter sweeps: every combination of a grid, one backtest each, in parallel processes.

    grid = parse_sweep(["spread_bps=1,2,4", "quantity=0.01,0.02"])   # 6 combinations
    rows = run_sweep(None, "data/btcusdt_20240808.csv.gz", "market_maker", {}, grid, seed=1)

Each worker process loads each data file once (on first use) and runs its share of the grid;
several data files make a days x parameters grid. Results come back as summary dicts (no equity
curves: a grid of hundreds stays small), ranked by a metric. ``--cluster`` runs the same tasks on
Dask (``hftshm.backtest.sweep_dask``).
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

RANK_METRICS = ("net_pnl", "sharpe", "realized_pnl", "max_drawdown", "fill_ratio", "trades", "turnover")
SUMMARY_KEYS = ("net_pnl", "realized_pnl", "unrealized_pnl", "fees", "sharpe", "max_drawdown", "trades",
                "fill_ratio", "turnover", "position", "rejects", "elapsed_s")

_state: dict[str, Any] = {}


def parse_sweep(items: list[str]) -> dict[str, list[str]]:
    """``["k=v1,v2", ...]`` -> ``{"k": ["v1", "v2"]}`` (values stay strings; PARAMS give types)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not choices:
            raise ValueError(f"--sweep {item!r} is not key=v1,v2,...")
        if key in grid:
            raise ValueError(f"--sweep names {key!r} twice")
        grid[key] = choices
    return grid


def combinations(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _init(config, strategy, seed, engine_name) -> None:
    """Once per worker process: the platform config; data files load on first use."""
    from hftshm.backtest.api import platform_raw

    raw = platform_raw(config)
    _state.clear()
    _state.update(setup=(config, strategy, seed, engine_name), raw=raw, events={},
                  strategy=strategy, seed=seed, engine_name=engine_name)


def _events(data):
    """The market data of one data file, loaded once per worker process (a days x parameters grid
    reuses it) with that file's own instruments (``api.symbol_table_for``): a symbol the config does
    not name sweeps like a configured one."""
    from hftshm.backtest.api import load_data

    cache = _state["events"]
    key = str(data)
    if key not in cache:
        cache[key] = load_data(_state["raw"], data)
    return cache[key]


def run_task(task: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
    """One combination on one data file; a failure is reported in its row, never raised."""
    from hftshm.backtest.api import run_backtest

    data, params = task
    try:
        result = run_backtest(_state["raw"], _events(data), _state["strategy"], params, _state["seed"],
                              engine_name=_state["engine_name"])
    except Exception as exc:  # one bad combination must not sink the grid; it is reported in its row
        return {"params": params, "error": f"{type(exc).__name__}: {exc}"}
    summary = result.to_dict(curve=False)
    return {"params": params, **{k: summary.get(k) for k in SUMMARY_KEYS}}


def grid_tasks(data, base_params: dict[str, Any], grid: dict[str, list[str]]) -> tuple[list, list]:
    """(tasks, labels): every data file x every combination, days outermost."""
    files = list(data) if isinstance(data, (list, tuple)) else [data]
    tasks, labels = [], []
    for path in files:
        for combo in combinations(grid):
            tasks.append((path, {**base_params, **combo}))
            labels.append((path, combo))
    return tasks, labels


def finish_rows(rows: list[dict[str, Any]], labels: list, several_files: bool, rank_by: str) -> list[dict[str, Any]]:
    from pathlib import Path

    for row, (path, combo) in zip(rows, labels):
        row["params"] = combo  # show what varied, not the whole parameter set
        if several_files:
            row["data"] = Path(path).name
    return rank(rows, rank_by)


def progress_bar(total: int):
    """A progress bar of combinations done, on stderr (stdout stays the table or the JSON)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def run_sweep(config, data, strategy: str, base_params: dict[str, Any], grid: dict[str, list[str]], seed: int = 1,
              rank_by: str = "net_pnl", workers: int | None = None, engine_name: str = "auto",
              progress: bool = True) -> list[dict[str, Any]]:
    """Every combination of ``grid`` over ``base_params`` on every file of ``data`` (one path or a
    list: a days x parameters grid); rows ranked best first by ``rank_by`` (max_drawdown: smallest
    first). Rows with an ``error`` key failed and sort last; with several files each row names its
    ``data``. The local process pool; ``hftshm.backtest.sweep_dask`` runs the same tasks on Dask."""
    from concurrent.futures import as_completed

    if rank_by not in RANK_METRICS:
        raise ValueError(f"rank by {rank_by!r}; allowed: {', '.join(RANK_METRICS)}")
    tasks, labels = grid_tasks(data, base_params, grid)
    workers = max(1, min(workers or (os.cpu_count() or 1), len(tasks)))
    rows: list[Any] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=workers, initializer=_init,
                             initargs=(config, strategy, seed, engine_name)) as pool, \
            _maybe_progress(progress, len(tasks)) as bar:
        futures = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            rows[futures[future]] = future.result()
            bar.advance()
    return finish_rows(rows, labels, isinstance(data, (list, tuple)) and len(data) > 1, rank_by)


class _maybe_progress:
    def __init__(self, enabled: bool, total: int):
        self.bar = progress_bar(total) if enabled else None
        self.total = total

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task("sweep", total=self.total)
        return self

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def rank(rows: list[dict[str, Any]], rank_by: str) -> list[dict[str, Any]]:
    sign = 1.0 if rank_by == "max_drawdown" else -1.0

    def key(row):
        value = row.get(rank_by)
        if "error" in row or value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0.0)
        return (0, sign * value)

    return sorted(rows, key=key)
