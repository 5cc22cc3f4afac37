"""CLI: ``hftshm backtest``: one strategy over recorded data in one process, or a parameter sweep."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG

DEFAULT_DATA = Path("data/btcusdt_20240808.csv.gz")


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_command)


def backtest_command(
    data: list[Path] = typer.Option([DEFAULT_DATA], "--data", "-d",
                                    help="canonical tick CSV (.csv/.csv.gz) or .npy of market_event; several: "
                                         "one run over them merged by exchange time (several symbols or days), "
                                         "with --sweep a days x parameters grid"),
    strategy: list[str] = typer.Option(["market_maker"], "--strategy", "-s",
                                       help="a [strategies] instance, built-in name, package.module:Class or entry "
                                            "point; SPEC@SYMBOL trades that symbol (repeatable; one without a symbol "
                                            "runs once on each symbol of the data)"),
    param: list[str] = typer.Option([], "--param", "-p", help="k=v strategy parameter (repeatable)"),
    seed: int = typer.Option(1, "--seed", help="seeds the exchange latency model: same seed, same fills"),
    out: Path = typer.Option(None, "--out", "-o", help="write report.json, report.html, fills.csv here"),
    sweep: list[str] = typer.Option([], "--sweep", help="k=v1,v2,... grid axis (repeatable): run every combination"),
    rank_by: str = typer.Option("net_pnl", "--rank-by", help="sweep ranking: net_pnl, sharpe, max_drawdown, ..."),
    jobs: int = typer.Option(None, "--jobs", "-j", help="sweep processes (default: CPUs)"),
    cluster: str = typer.Option(None, "--cluster", help="run the sweep on Dask: 'local' (a LocalCluster of --jobs "
                                "workers) or a scheduler tcp://HOST:8786 (default: the local process pool)"),
    engine: str = typer.Option("auto", "--engine",
                               help="auto (compiled when the strategy has a kernel), compiled, python"),
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c",
                                help="platform config: [symbols] [risk] [oms] [exchange]"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Backtest a strategy through the platform's own risk, OMS and exchange kernels, in one process.

    Prints PnL (realized, unrealized, fees), Sharpe, max drawdown, trades, fill ratio, turnover and the
    latency model, per symbol when several trade; --out writes the report (JSON + an HTML page with the
    equity curve). --sweep runs a grid in parallel processes and prints a ranked table.
    """
    from hftshm.backtest.api import run_backtest
    from hftshm.backtest.data import BacktestDataError
    from hftshm.backtest.sweep import parse_sweep, run_sweep
    from hftshm.cli.strategies import parse_params
    from hftshm.config import ConfigError
    from hftshm.strategies.base import StrategyError

    cfg = config if Path(config).is_file() else None
    warming = None
    if not _kernels_cached():
        typer.secho("first run: compiling the kernels (about 20 s on 2 idle cores); later runs load them "
                    "from the cache", fg="yellow", err=True)
        from hftshm.runtime.compile_cache import begin_warm

        # in parallel processes, with a progress line; a single run parses its data meanwhile, once the
        # pool has compiled the parse kernels (it compiles them last, beside the loop kernel); data
        # given as .npy events needs no parse kernels
        warming = begin_warm("backtest", parse=any(Path(d).name.endswith((".csv", ".csv.gz")) for d in data))
    try:
        params = parse_params(param)
        strategies = strategy[0] if len(strategy) == 1 else strategy
        run_data = data if len(data) > 1 else data[0]
        if warming is not None and not sweep:
            run_data = _load_while_compiling(cfg, run_data, warming)
        elif warming is not None:
            warming.wait()
        if sweep:
            sweep_data = data if len(data) > 1 else data[0]
            if cluster:
                from hftshm.backtest.sweep_dask import run_sweep_dask

                rows = run_sweep_dask(cluster, cfg, sweep_data, strategies, params, parse_sweep(sweep), seed, rank_by,
                                      jobs, engine)
            else:
                rows = run_sweep(cfg, sweep_data, strategies, params, parse_sweep(sweep), seed, rank_by, jobs, engine)
            _print_sweep(rows, rank_by, as_json)
            return
        if cluster:
            raise ValueError("--cluster runs sweeps: add --sweep k=v1,v2")
        result = run_backtest(cfg, run_data, strategies, params, seed, engine_name=engine)
    except (BacktestDataError, ConfigError, StrategyError, LookupError, ValueError) as exc:
        typer.secho(f"backtest: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    summary = result.to_dict(curve=False)
    if out is not None:
        paths = result.write(out)
        summary["files"] = {k: str(v) for k, v in paths.items()}
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    _print_result(summary)


def _load_while_compiling(cfg, data, warming):
    """The data loaded (a CSV parsed into its event cache on a first run) while the pool compiles the
    loop's kernels, then the pool waited for; a load that fails stops the pool. The parse waits for
    its kernels from the pool: compiling them here as well would take a core from the pool while
    both of its processes are busy."""
    from hftshm.backtest.api import load_data

    try:
        warming.wait_parse()
        loaded = load_data(cfg, data)
    except BaseException:
        warming.cancel()
        raise
    warming.wait()
    return loaded


def _kernels_cached() -> bool:
    """Whether numba's on-disk cache already holds the compiled backtest loop."""
    import os

    from hftshm.backtest import simulate_nb

    module = Path(simulate_nb.__file__)
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    roots = [Path(cache_dir)] if cache_dir else [module.parent / "__pycache__"]
    return any(any(root.rglob("simulate_nb.run-*.nbi")) for root in roots if root.is_dir())


def _print_result(d: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from hftshm.backtest.report import figures

    market = f", {d['symbol']} {d.get('market', '')}" if d.get("symbol") else ""
    table = Table(title=f"backtest {d['strategy']} ({d['engine']}, seed {d['seed']}{market})", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures(d):
        table.add_row(key, _fmt(value))
    console = Console()
    console.print(table)
    console.print(f"fill model: {d['fill_model']}; latency model: {json.dumps(d['latency_model'])}")
    if d.get("reject_reasons"):
        console.print("rejects by reason: " + ", ".join(f"{k} {v}" for k, v in d["reject_reasons"].items()))
    summaries = d.get("strategy_summary") or {}
    if summaries and all(isinstance(v, dict) for v in summaries.values()):  # several strategies
        for name, summary in summaries.items():
            console.print(f"strategy {name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in summary.items()))
    elif summaries:
        console.print("strategy: " + ", ".join(f"{k}={_fmt(v)}" for k, v in summaries.items()))
    if len(d.get("symbols") or {}) > 1:
        from hftshm.backtest.report import qty_unit_text

        per = Table(title="per symbol (position in its qty unit, money in its currency)")
        # the rest of each row (strategies, realized/unrealized, cancels, turnover) is in the JSON report
        columns = {"orders_sent": "orders", "trades": "fills", "position": "position", "fees": "fees",
                   "net_pnl": "net PnL", "rejects": "rejects"}
        for column in ("symbol", "market", "qty in", "PnL in", *columns.values()):
            per.add_column(column, justify="right" if column in columns.values() else "left")
        for name, row in d["symbols"].items():
            per.add_row(name, row["market"], qty_unit_text(row.get("units") or {}), row.get("currency", ""),
                        *(_fmt(row[c]) for c in columns))
        console.print(per)
        totals = Table(title="per settlement currency (never added across currencies)")
        columns = {"net_pnl": "net PnL", "fees": "fees", "max_drawdown": "max drawdown", "orders_sent": "orders",
                   "trades": "fills"}
        for column in ("currency", "symbols", *columns.values()):
            totals.add_column(column, justify="right" if column in columns.values() else "left")
        for currency, total in (d.get("currencies") or {}).items():
            totals.add_row(currency, ", ".join(total["symbols"]), *(_fmt(total[c]) for c in columns))
        console.print(totals)
    for kind, path in d.get("files", {}).items():
        console.print(f"{kind}: {path}")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if 0.0 < abs(value) < 0.01:  # a coin's PnL and fees (a few 1e-5 ETH) would print as 0.0000
            return f"{value:.4g}"
        return f"{value:,.4f}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _print_sweep(rows: list[dict], rank_by: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=1, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    keys = list(rows[0]["params"]) if rows else []
    days = any("data" in row for row in rows)
    table = Table(title=f"sweep: {len(rows)} runs ranked by {rank_by}")
    table.add_column("#", justify="right")
    if days:
        table.add_column("data")
    for key in keys:
        table.add_column(key, justify="right")
    metrics = ("net_pnl", "sharpe", "max_drawdown", "trades", "fill_ratio", "fees", "position")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for rank, row in enumerate(rows, 1):
        cells = [str(rank)] + ([row.get("data", "")] if days else []) + [str(row["params"][k]) for k in keys]
        if "error" in row:
            cells += [row["error"]] + [""] * (len(metrics) - 1)
        else:
            cells += [_fmt(row.get(m)) for m in metrics]
        table.add_row(*cells)
    Console().print(table)
