"""``run_backtest``: one strategy over one data file, in one process; the function the CLI, the
parameter sweep and the web API's job runner all call.

    from hftshm.backtest import run_backtest
    result = run_backtest(None, "data/btcusdt_20240808.csv.gz", "market_maker", {"spread_bps": 3}, seed=7)
    print(result.net_pnl, result.sharpe); result.write("out/")

``config`` is the platform config: None (config/platform.toml if present, else defaults), a path,
or an already parsed TOML dict. Its ``[symbols]``, ``[risk]``, ``[oms]`` and ``[exchange]`` sections
configure the stages exactly as on the platform; if ``strategy`` names an instance in
``[strategies]``, that instance's class and parameters are the starting point and ``params``
override them. ``seed`` seeds the exchange's latency model (same seed, same data -> same fills).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hftshm.backtest import compiled, engine
from hftshm.backtest.data import load_events
from hftshm.backtest.report import BacktestResult, max_drawdown, sharpe_ratio
from hftshm.config import DEFAULT_CONFIG, ConfigError, Section, read_toml
from hftshm.strategies.base import StrategyError
from hftshm.strategies.config import StrategiesConfig
from hftshm.strategies.registry import load_class
from hftshm.strategies.runtime import StrategyHost
from hftshm.symbols import DEFAULT_SYMBOLS, SymbolTable
from hftshm.units import units_of

ENGINES = ("auto", "compiled", "python")


def platform_raw(config: Any) -> dict:
    """The parsed platform config for ``config`` (None, a path, or a dict)."""
    if config is None:
        return read_toml(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else {}
    if isinstance(config, (str, Path)):
        return read_toml(config)
    if isinstance(config, dict):
        return config
    raw = getattr(config, "raw", None)
    if isinstance(raw, dict):
        return raw
    raise ConfigError(f"config must be None, a path or a parsed TOML dict, found {type(config).__name__}")


def resolve_strategy(raw: dict, symbols: SymbolTable, strategy: str, params: dict | None,
                     symbol: str | None) -> tuple[str, str, dict, str]:
    """(instance name, class spec, params, symbol): a [strategies] instance named ``strategy`` gives
    defaults; otherwise ``strategy`` is a class spec with its own defaults."""
    base_params: dict = {}
    spec, name, sym = strategy, strategy, "BTCUSDT"
    section = raw.get("strategies") or {}
    if isinstance(section.get(strategy), dict):
        instance = StrategiesConfig.from_section(Section("strategies", section), symbols).instance(strategy)
        spec, sym, base_params = instance.spec, instance.symbol, dict(instance.params)
    merged = {**base_params, **(params or {})}
    return name.rsplit(":", 1)[-1].rsplit(".", 1)[-1], spec, merged, (symbol or sym).upper()


def run_backtest(config: Any, data: str | Path | np.ndarray, strategy: str, params: dict | None = None,
                 seed: int = 1, *, symbol: str | None = None, engine_name: str = "auto", venue: Any = None,
                 equity_interval_ms: float = 1000.0) -> BacktestResult:
    """Run ``strategy`` over ``data``; see the module docstring. Raises StrategyError / ConfigError /
    BacktestDataError with a message naming what is wrong."""
    if engine_name not in ENGINES:
        raise ValueError(f"engine {engine_name!r}; allowed: {', '.join(ENGINES)}")
    raw = platform_raw(config)
    symbols, data_symbols = symbol_table_for(raw, data)
    name, spec, merged, sym_name = resolve_strategy(raw, symbols, strategy, params, symbol)
    configured_symbol = sym_name
    if symbol is None and len(data_symbols) == 1 and sym_name not in data_symbols:
        sym_name = data_symbols[0]  # one instrument in the data: the strategy trades it
    cls = load_class(spec)
    try:
        sym = symbols.by_name(sym_name)
    except KeyError as exc:
        raise StrategyError(name, str(exc.args[0])) from None
    if sym_name != configured_symbol:
        merged = sizes_for_market(cls, merged, params, configured_symbol, symbols, sym)
    events, description = load_events(data, symbols)
    interval_ns = int(equity_interval_ms * 1e6)

    if venue is None:
        venue = make_venue(raw, symbols, seed)
    host = StrategyHost(symbols)
    strategy_id = host.add(name, cls, sym.name, merged)
    resolved = host.slot(strategy_id).params
    strategy_obj = host.strategy(strategy_id)
    use_compiled = engine_name == "compiled" or (engine_name == "auto" and compiled.supports(strategy_obj)
                                                 and hasattr(venue, "V"))
    if use_compiled:
        if not compiled.supports(strategy_obj):
            raise StrategyError(name, f"is not a compiled strategy ({spec}); use --engine python")
        if not hasattr(venue, "V"):
            raise ValueError("the compiled loop needs the platform venue (risk, OMS, exchange kernels)")
        out, elapsed = compiled.run(events, [strategy_obj], venue, symbols, interval_ns)
        compiled.raise_faults(host, [strategy_obj])
    else:
        started = time.perf_counter()
        out = engine.run_loop(events, host, venue, engine.L2BookSource(symbols), interval_ns)
        elapsed = time.perf_counter() - started
    if host.failures:
        failed_name, error = host.failures[0]
        raise StrategyError(failed_name, f"raised during the backtest and was paused: {error}")
    result = _result(name, resolved, seed, description, "compiled" if use_compiled else "python", out, strategy_obj,
                     venue, elapsed, equity_interval_ms)
    result.symbol, result.market, result.units = sym.name, sym.market, units_of(sym).as_dict()
    return result


def sizes_for_market(cls, merged: dict, given: dict | None, configured_symbol: str, symbols: SymbolTable,
                     traded) -> dict:
    """An instance configured for one symbol run on the data's other symbol: its quantity parameters
    (``Param.contracts``) stay only if both count quantities in the same kind of unit. Coin sizes
    (0.01 BTC) mean nothing on an inverse market whose quantities are contracts of 10 USD, nor the
    other way round: the traded market's defaults apply instead, unless ``given`` (the caller's own
    parameters) sets them."""
    configured_market = symbols.by_name(configured_symbol).market if configured_symbol in symbols else "linear"
    if (configured_market == "inverse") == (traded.market == "inverse"):
        return merged
    declared = getattr(cls, "PARAMS", {}) or {}
    given = given or {}
    return {k: v for k, v in merged.items() if k in given or not (k in declared and declared[k].is_quantity)}


def symbol_table_for(raw: dict, data) -> tuple[SymbolTable, list[str]]:
    """(symbol table, the data's symbols): the data's instruments (hftshm.feed.instruments) merged with
    [symbols], the config overriding; an events array brings none."""
    from hftshm.backtest.data import BacktestDataError
    from hftshm.feed.instruments import InstrumentError, instruments_of, resolve

    configured = SymbolTable.from_section(raw["symbols"]) if raw.get("symbols") else None
    path = Path(data) if isinstance(data, (str, Path)) else None
    if path is None or path.suffix == ".npy" or not path.is_file():
        return configured or DEFAULT_SYMBOLS, []
    try:
        found = instruments_of(path)
        return resolve(configured, found, source=str(path)), [i.symbol for i in found]
    except InstrumentError as exc:
        raise BacktestDataError(str(exc)) from None


def make_venue(raw: dict, symbols: SymbolTable, seed: int):
    """The platform's own risk -> OMS -> exchange stages in one process."""
    from hftshm.backtest.venue import PlatformVenue

    return PlatformVenue(raw, symbols, seed)


def _result(name, params, seed, description, engine_name, out, strategy, venue, elapsed, interval_ms) -> BacktestResult:
    portfolio = strategy.portfolio
    equity = np.asarray(out.equity, dtype=np.float64)
    equity_ts = np.asarray(out.equity_ts, dtype=np.int64)
    traded = portfolio.traded_qty
    return BacktestResult(
        strategy=name, params=dict(params), seed=seed, data=description, engine=engine_name, rows=out.rows,
        elapsed_s=elapsed, start_ns=out.start_ns, end_ns=out.end_ns,
        realized_pnl=portfolio.realized_pnl, unrealized_pnl=portfolio.unrealized_pnl, fees=portfolio.fees,
        net_pnl=portfolio.net_pnl, position=portfolio.position,
        sharpe=sharpe_ratio(equity[:-1] if len(equity) > 2 else equity, interval_ms / 1000.0),
        max_drawdown=max_drawdown(equity), trades=portfolio.count("fills"), orders_sent=out.orders_sent,
        cancels=portfolio.count("cancels"), rejects=portfolio.count("rejects"),
        fill_ratio=traded / out.submitted_qty if out.submitted_qty > 0 else float("nan"),
        traded_qty=traded, turnover=portfolio.traded_notional,
        latency_model=dict(venue.latency_model), fill_model=venue.fill_model,
        equity_interval_ms=interval_ms, equity_ts_ns=equity_ts, equity=equity,
        fills=engine.fills_array(out.fills), reject_reasons=dict(out.reject_reasons),
        strategy_summary=strategy.summary(), instance=strategy,
    )
