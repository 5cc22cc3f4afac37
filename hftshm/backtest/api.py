"""``run_backtest``: strategies over recorded data, in one process; the function the CLI, the
parameter sweep and the web API's job runner all call.

    from hftshm.backtest import run_backtest
    result = run_backtest(None, "data/btcusdt_20240808.csv.gz", "market_maker", {"spread_bps": 3}, seed=7)
    print(result.net_pnl, result.sharpe); result.write("out/")

``config`` is the platform config: None (config/platform.toml if present, else defaults), a path,
or an already parsed TOML dict. Its ``[symbols]``, ``[risk]``, ``[oms]`` and ``[exchange]`` sections
configure the stages exactly as on the platform; if ``strategy`` names an instance in
``[strategies]``, that instance's class and parameters are the starting point and ``params``
override them. ``seed`` seeds the exchange's latency model (same seed, same data -> same fills).

Several symbols in one run: ``data`` may be a list of files (merged by exchange time, as the feed
merges them) and ``strategy`` a list (``SPEC@SYMBOL`` names a symbol); the result then breaks the
figures down per symbol (``result.symbols``: orders sent, fills, position, PnL, fees, in the symbol's
units) and adds them up per settlement currency (``result.currencies``). Symbols that settle in
different currencies (BTCUSDT in USDT, the inverse ETHUSD_PERP in ETH) are never added: the top-level
money figures are then null and each currency has its own totals and equity curve:

    result = run_backtest(None, ["btc.csv.gz", "eth.csv.gz"], ["market_maker@BTCUSDT", "mm_eth"])
    result.symbols["ETHUSDT"]["net_pnl"], result.currencies["USDT"]["net_pnl"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hftshm.backtest import compiled, engine
from hftshm.backtest.data import BacktestDataError, load_events, load_many
from hftshm.backtest.report import BacktestResult, max_drawdown, sharpe_ratio
from hftshm.config import DEFAULT_CONFIG, ConfigError, Section, read_toml
from hftshm.strategies.base import StrategyError
from hftshm.strategies.config import StrategiesConfig, sizes_for_market
from hftshm.strategies.registry import load_class
from hftshm.strategies.runtime import StrategyHost
from hftshm.symbols import DEFAULT_SYMBOLS, SymbolTable
from hftshm.units import currency_of, totals_by_currency, units_of

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
    name, spec, merged, sym, _explicit = _resolve(raw, symbols, strategy, params, symbol)
    return name, spec, merged, sym


def _resolve(raw, symbols, strategy, params, symbol):
    base_params: dict = {}
    spec, name, sym, explicit = strategy, strategy, "BTCUSDT", symbol is not None
    section = raw.get("strategies") or {}
    if isinstance(section.get(strategy), dict):
        instance = StrategiesConfig.from_section(Section("strategies", section), symbols).instance(strategy)
        spec, sym, base_params, explicit = instance.spec, instance.symbol, dict(instance.params), True
    merged = {**base_params, **(params or {})}
    return name.rsplit(":", 1)[-1].rsplit(".", 1)[-1], spec, merged, (symbol or sym).upper(), explicit


@dataclass
class BacktestData:
    """Loaded market data with the symbol table it was read with: what a sweep loads once per file."""

    events: np.ndarray
    symbols: SymbolTable
    data_symbols: list[str]  # the data's own instruments (empty for a bare events array)
    description: str


def load_data(config: Any, data) -> BacktestData:
    """``data`` (a path, several paths merged by exchange time, an events array, or BacktestData) loaded
    with the symbol table of its instruments and ``[symbols]``."""
    if isinstance(data, BacktestData):
        return data
    raw = platform_raw(config)
    symbols, data_symbols = symbol_table_for(raw, data)
    if isinstance(data, (list, tuple)):
        if not data:
            raise BacktestDataError("no data files given")
        events, description = load_many(data, symbols) if len(data) > 1 else load_events(data[0], symbols)
    else:
        events, description = load_events(data, symbols)
    return BacktestData(events, symbols, data_symbols, description)


def plan_strategies(raw: dict, symbols: SymbolTable, strategies, params: dict | None, symbol: str | None,
                    data_symbols: list[str]) -> list[tuple[str, str, dict, str]]:
    """(name, class spec, params, symbol) of every strategy instance of a backtest.

    ``strategies``: one spec or several; ``SPEC@SYMBOL`` names the symbol. A spec without a symbol
    (or a [strategies] instance whose symbol is not in the data) trades the data's symbol; when the
    data holds several symbols it runs once on each (``NAME-SYMBOL``), so ``--data BTC --data ETH
    --strategy market_maker`` quotes both books with one instance each."""
    specs = [strategies] if isinstance(strategies, str) else list(strategies)
    if not specs:
        raise ValueError("no strategy given")
    planned = []
    for text in specs:
        spec_text, at, at_symbol = text.partition("@")
        if at and not at_symbol:
            raise ValueError(f"strategy {text!r}: nothing after '@' (SPEC@SYMBOL)")
        name, spec, merged, sym, explicit = _resolve(raw, symbols, spec_text, params, at_symbol or symbol)
        if at_symbol or symbol:  # moved onto a symbol: coin sizes do not carry onto contracts (nor back)
            configured = _resolve(raw, symbols, spec_text, params, None)[3]
            planned.append((name, spec, _sized(spec, merged, params, configured, symbols, sym), sym))
        elif explicit and (not data_symbols or sym in data_symbols):
            planned.append((name, spec, merged, sym))
        elif len(data_symbols) == 1:  # one instrument in the data: trade it
            planned.append((name, spec, _sized(spec, merged, params, sym, symbols, data_symbols[0]), data_symbols[0]))
        elif data_symbols:
            planned.extend((f"{name}-{s}", spec, _sized(spec, merged, params, sym, symbols, s), s) for s in data_symbols)
        else:
            planned.append((name, spec, merged, sym))
    names = [p[0] for p in planned]
    if len(set(names)) != len(names):  # one class twice on a symbol each: name them by symbol
        planned = [(f"{n}-{s}" if names.count(n) > 1 else n, spec, m, s) for n, spec, m, s in planned]
    return planned


def _sized(spec: str, merged: dict, given: dict | None, configured: str, symbols: SymbolTable, traded: str) -> dict:
    """``merged`` for an instance configured for ``configured`` that trades ``traded`` instead."""
    if traded == configured or traded not in symbols:
        return dict(merged)
    return sizes_for_market(load_class(spec), merged, given, configured, symbols, symbols.by_name(traded))


def run_backtest(config: Any, data, strategy: str | list[str], params: dict | None = None,
                 seed: int = 1, *, symbol: str | None = None, engine_name: str = "auto", venue: Any = None,
                 equity_interval_ms: float = 1000.0) -> BacktestResult:
    """Run ``strategy`` over ``data``; see the module docstring. Raises StrategyError / ConfigError /
    BacktestDataError with a message naming what is wrong."""
    if engine_name not in ENGINES:
        raise ValueError(f"engine {engine_name!r}; allowed: {', '.join(ENGINES)}")
    raw = platform_raw(config)
    loaded = load_data(raw, data)
    symbols, events = loaded.symbols, loaded.events
    planned = plan_strategies(raw, symbols, strategy, params, symbol, loaded.data_symbols)
    interval_ns = int(equity_interval_ms * 1e6)

    if venue is None:
        venue = make_venue(raw, symbols, seed)
    host = StrategyHost(symbols)
    objects, resolved = [], {}
    for name, spec, merged, sym_name in planned:
        cls = load_class(spec)
        try:
            sym = symbols.by_name(sym_name)
        except KeyError as exc:
            raise StrategyError(name, str(exc.args[0])) from None
        strategy_id = host.add(name, cls, sym.name, merged)
        resolved[name] = host.slot(strategy_id).params
        objects.append(host.strategy(strategy_id))
    compilable = all(compiled.supports(s) for s in objects)
    use_compiled = engine_name == "compiled" or (engine_name == "auto" and compilable and hasattr(venue, "V"))
    if use_compiled:
        if not compilable:
            name = next(s.name for s in objects if not compiled.supports(s))
            raise StrategyError(name, "is not a compiled strategy; use --engine python")
        if not hasattr(venue, "V"):
            raise ValueError("the compiled loop needs the platform venue (risk, OMS, exchange kernels)")
        out, elapsed = compiled.run(events, objects, venue, symbols, interval_ns)
        compiled.raise_faults(host, objects)
    else:
        started = time.perf_counter()
        out = engine.run_loop(events, host, venue, engine.L2BookSource(symbols), interval_ns)
        elapsed = time.perf_counter() - started
    if host.failures:
        failed_name, error = host.failures[0]
        raise StrategyError(failed_name, f"raised during the backtest and was paused: {error}")
    result = _result(resolved, seed, loaded.description, "compiled" if use_compiled else "python", out, objects,
                     venue, elapsed, equity_interval_ms)
    traded = list(dict.fromkeys(s.symbol.name for s in objects))
    if len(traded) == 1:  # one symbol: the figures are in its units (several: per symbol, result.symbols)
        sym = objects[0].symbol
        result.symbol, result.market, result.units = sym.name, sym.market, units_of(sym).as_dict()
    else:
        result.symbol, result.market = ", ".join(traded), "several"
        if len(result.currencies) == 1:  # one currency: the money figures are in it (positions per symbol only)
            currency = next(iter(result.currencies))
            result.units = {"pnl": currency, "notional": currency}
    return result


def symbol_table_for(raw: dict, data) -> tuple[SymbolTable, list[str]]:
    """(symbol table, the data's symbols): the data's instruments (hftshm.feed.instruments) merged with
    [symbols], the config overriding; an events array brings none. ``data``: a path or several."""
    from hftshm.feed.instruments import InstrumentError, instruments_of, resolve

    configured = SymbolTable.from_section(raw["symbols"]) if raw.get("symbols") else None
    paths = [Path(p) for p in data] if isinstance(data, (list, tuple)) else (
        [Path(data)] if isinstance(data, (str, Path)) else [])
    paths = [p for p in paths if p.suffix != ".npy" and p.is_file()]
    if not paths:
        return configured or DEFAULT_SYMBOLS, []
    try:
        found = [inst for p in paths for inst in instruments_of(p)]
        names = list(dict.fromkeys(i.symbol for i in found))
        return resolve(configured, found, source=", ".join(map(str, paths))), names
    except InstrumentError as exc:
        raise BacktestDataError(str(exc)) from None


def make_venue(raw: dict, symbols: SymbolTable, seed: int):
    """The platform's own risk -> OMS -> exchange stages in one process."""
    from hftshm.backtest.venue import PlatformVenue

    return PlatformVenue(raw, symbols, seed)


def _result(params, seed, description, engine_name, out, strategies, venue, elapsed, interval_ms) -> BacktestResult:
    equity = np.asarray(out.equity, dtype=np.float64)
    equity_ts = np.asarray(out.equity_ts, dtype=np.int64)
    portfolios = [s.portfolio for s in strategies]
    by_symbol = per_symbol(strategies)
    currencies = per_currency(by_symbol, out, equity, interval_ms)
    single = len(strategies) == 1
    nan = float("nan")
    # figures of symbols settling in different currencies are never added (per currency only)
    mixed = len(currencies) > 1
    # quantities of different units (BTC and contracts) neither
    one_qty_unit = len({(row["units"]["qty"], row["units"].get("contract_usd")) for row in by_symbol.values()}) == 1
    traded = sum(p.traded_qty for p in portfolios) if one_qty_unit else nan
    return BacktestResult(
        strategy=", ".join(s.name for s in strategies), params=next(iter(params.values())) if single else params,
        seed=seed, data=description, engine=engine_name, rows=out.rows,
        elapsed_s=elapsed, start_ns=out.start_ns, end_ns=out.end_ns,
        realized_pnl=nan if mixed else sum(p.realized_pnl for p in portfolios),
        unrealized_pnl=nan if mixed else sum(p.unrealized_pnl for p in portfolios),
        fees=nan if mixed else sum(p.fees for p in portfolios), net_pnl=nan if mixed else sum(p.net_pnl for p in portfolios),
        # a position is in one symbol's units: with several symbols it is per symbol only
        position=by_symbol[strategies[0].symbol.name]["position"] if len(by_symbol) == 1 else nan,
        sharpe=nan if mixed else sharpe_ratio(equity[:-1] if len(equity) > 2 else equity, interval_ms / 1000.0),
        max_drawdown=nan if mixed else max_drawdown(equity), trades=sum(p.count("fills") for p in portfolios),
        orders_sent=out.orders_sent, cancels=sum(p.count("cancels") for p in portfolios),
        rejects=sum(p.count("rejects") for p in portfolios),
        fill_ratio=traded / out.submitted_qty if out.submitted_qty > 0 else nan,
        traded_qty=traded, turnover=nan if mixed else sum(p.traded_notional for p in portfolios),
        latency_model=dict(venue.latency_model), fill_model=venue.fill_model,
        equity_interval_ms=interval_ms, equity_ts_ns=equity_ts, equity=np.zeros(0) if mixed else equity,
        fills=engine.fills_array(out.fills), reject_reasons=dict(out.reject_reasons),
        strategy_summary=strategies[0].summary() if single else {s.name: s.summary() for s in strategies},
        symbols=by_symbol, currencies=currencies,
        equity_by_currency={c: np.asarray(v, dtype=np.float64) for c, v in out.equity_by_currency.items()},
        instance=strategies[0] if single else list(strategies),
    )


MONEY = ("realized_pnl", "unrealized_pnl", "fees", "net_pnl", "turnover")


def per_currency(by_symbol: dict[str, dict], out, equity: np.ndarray, interval_ms: float) -> dict[str, dict]:
    """Per settlement currency: the money figures of its symbols added up, and its equity curve's Sharpe,
    max drawdown and last value (``out.equity_by_currency``; the one ``equity`` when there is one currency)."""
    totals = totals_by_currency(by_symbol, {name: row["currency"] for name, row in by_symbol.items()}, MONEY)
    for currency, total in totals.items():
        curve = equity if len(totals) == 1 else np.asarray(out.equity_by_currency.get(currency, ()), np.float64)
        total["equity"] = float(curve[-1]) if len(curve) else float("nan")
        total["sharpe"] = sharpe_ratio(curve[:-1] if len(curve) > 2 else curve, interval_ms / 1000.0)
        total["max_drawdown"] = max_drawdown(curve)
        total["orders_sent"] = sum(by_symbol[name]["orders_sent"] for name in total["symbols"])
        total["trades"] = sum(by_symbol[name]["trades"] for name in total["symbols"])
    return totals


def per_symbol(strategies) -> dict[str, dict]:
    """Figures per symbol, summed over the strategies trading it: orders sent (new orders), fills
    (``trades``), position in the symbol's own units (``units.qty``), PnL and fees in its settlement
    currency (``currency``, ``units.pnl``)."""
    out: dict[str, dict] = {}
    for s in strategies:
        p = s.portfolio
        row = out.setdefault(s.symbol.name, {
            "market": s.symbol.market, "currency": currency_of(s.symbol), "units": units_of(s.symbol).as_dict(),
            "strategies": [], "orders_sent": 0, "position": 0.0, "realized_pnl": 0.0,
            "unrealized_pnl": 0.0, "fees": 0.0, "net_pnl": 0.0, "trades": 0, "cancels": 0, "rejects": 0,
            "traded_qty": 0.0, "turnover": 0.0, "mid": float("nan")})
        row["strategies"].append(s.name)
        for key, value in (("orders_sent", p.count("orders")), ("position", p.position),
                           ("realized_pnl", p.realized_pnl),
                           ("unrealized_pnl", p.unrealized_pnl), ("fees", p.fees), ("net_pnl", p.net_pnl),
                           ("trades", p.count("fills")), ("cancels", p.count("cancels")),
                           ("rejects", p.count("rejects")), ("traded_qty", p.traded_qty),
                           ("turnover", p.traded_notional)):
            row[key] += value
        row["mid"] = p.mid
    return out
