"""Parameter sweeps: every combination of a grid, one backtest each, in parallel processes.

    grid = parse_sweep(["spread_bps=1,2,4", "quantity=0.01,0.02"])   # 6 combinations
    rows = run_sweep(None, "data/btcusdt_20240808.csv.gz", "market_maker", {}, grid, seed=1)

Each worker process loads the data once (``initializer``) and runs its share of the grid; results
come back as summary dicts (no equity curves: a grid of hundreds stays small), ranked by a metric.
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


def _init(config, data, strategy, seed, engine_name) -> None:
    from hftshm.backtest.api import platform_raw
    from hftshm.backtest.data import load_events
    from hftshm.symbols import DEFAULT_SYMBOLS, SymbolTable

    raw = platform_raw(config)
    symbols = SymbolTable.from_section(raw["symbols"]) if raw.get("symbols") else DEFAULT_SYMBOLS
    events, description = load_events(data, symbols)
    _state.update(raw=raw, events=events, description=description, strategy=strategy, seed=seed,
                  engine_name=engine_name)


def _run_one(params: dict[str, Any]) -> dict[str, Any]:
    from hftshm.backtest.api import run_backtest

    try:
        result = run_backtest(_state["raw"], _state["events"], _state["strategy"], params, _state["seed"],
                              engine_name=_state["engine_name"])
    except Exception as exc:  # one bad combination must not sink the grid; it is reported in its row
        return {"params": params, "error": f"{type(exc).__name__}: {exc}"}
    summary = result.to_dict(curve=False)
    return {"params": params, **{k: summary.get(k) for k in SUMMARY_KEYS}}


def run_sweep(config, data, strategy: str, base_params: dict[str, Any], grid: dict[str, list[str]], seed: int = 1,
              rank_by: str = "net_pnl", workers: int | None = None, engine_name: str = "auto") -> list[dict[str, Any]]:
    """Every combination of ``grid`` over ``base_params``; rows ranked best first by ``rank_by``
    (max_drawdown: smallest first). Rows with an ``error`` key failed and sort last."""
    if rank_by not in RANK_METRICS:
        raise ValueError(f"rank by {rank_by!r}; allowed: {', '.join(RANK_METRICS)}")
    combos = [{**base_params, **combo} for combo in combinations(grid)]
    workers = max(1, min(workers or (os.cpu_count() or 1), len(combos)))
    with ProcessPoolExecutor(max_workers=workers, initializer=_init,
                             initargs=(config, data, strategy, seed, engine_name)) as pool:
        rows = list(pool.map(_run_one, combos))
    for row, combo in zip(rows, combinations(grid)):
        row["params"] = combo  # show what varied, not the whole parameter set
    return rank(rows, rank_by)


def rank(rows: list[dict[str, Any]], rank_by: str) -> list[dict[str, Any]]:
    sign = 1.0 if rank_by == "max_drawdown" else -1.0

    def key(row):
        value = row.get(rank_by)
        if "error" in row or value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0.0)
        return (0, sign * value)

    return sorted(rows, key=key)
