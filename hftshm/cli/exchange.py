"""CLI: ``hftshm exchange replay ORDERS.csv -o REPORTS.csv`` runs orders through the matching engine.

The contract (others' tests and tools rely on it):

Input header ``ts,order_id,owner,symbol,action,side,type,tif,price,qty``; action new|cancel|replace,
side buy|sell, type limit|market, tif gtc|ioc|fok|post_only. owner is an opaque account name ("alice",
"42"): the same name is the same owner for self-trade prevention and FOK. symbol is any symbol: its tick
and lot come from --tick-size/--lot-size, [symbols] of the config, --instruments (a tick CSV's
instruments), or else the grid the file's own prices and quantities are on (said on stderr); an empty
symbol is rejected unknown_symbol. Cancel uses only order_id; replace
carries the new price and the new OPEN qty. Output header
``order_id,event,price,qty,leaves_qty,contra_order_id,reason``, event ack|reject|partial|fill|cancel|replace,
in the order the engine produced them:

- every accepted new order gets ``ack`` first (market, IOC, FOK too); a refused one gets only
  ``reject`` with its reason (unknown_order, bad_price, bad_qty, post_only_would_cross,
  fok_cannot_fill, book_full, unknown_symbol, duplicate_order_id, malformed_order);
- each execution gives one report per side at the resting order's price, ``partial`` while
  quantity remains, ``fill`` when none does, contra_order_id naming the other side;
- the unfilled rest of a market/IOC order gets ``cancel`` (qty = cancelled, leaves 0, reason
  ioc_remainder); a cancel request likewise (reason user_cancel), or ``reject`` unknown_order
  when the order is not live; self-trade prevention cancels the resting order (reason stp);
- ``replace`` carries the new price and qty = new open quantity; a crossing replace trades at once;
  a post-only order replaced to a crossing price is rejected and left as it was;
- FOK counts only liquidity it may trade with (not its own owner's); post-only checks crossing
  against any resting order; market orders leave price empty and ignore tif.

A malformed row is reported on stderr with its line number and skipped (exit code 0 unless
``--strict``); a bad header or unreadable file exits 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import typer

from hftshm.config import DEFAULT_CONFIG, ConfigError

exchange_app = typer.Typer(help="The simulated exchange: replay orders through the matching engine.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(exchange_app, name="exchange")


def load_exchange_config(config_path: Path | None):
    """(ExchangeConfig, SymbolTable) from the [exchange] and [symbols] sections; defaults without a file."""
    from hftshm.config import read_toml
    from hftshm.exchange.config import ExchangeConfig
    from hftshm.symbols import DEFAULT_SYMBOLS, SymbolTable

    if config_path is None:
        if not DEFAULT_CONFIG.exists():
            return ExchangeConfig(), DEFAULT_SYMBOLS
        config_path = DEFAULT_CONFIG
    raw = read_toml(config_path)
    symbols = SymbolTable.from_section(raw["symbols"]) if raw.get("symbols") else DEFAULT_SYMBOLS
    return ExchangeConfig.from_raw(raw.get("exchange")), symbols


@exchange_app.command("replay")
def replay_command(
    orders_csv: Path = typer.Argument(..., help="orders CSV: ts,order_id,owner,symbol,action,side,type,tif,price,qty"),
    output: Path = typer.Option(..., "--output", "-o", help="reports CSV to write"),
    config: Path = typer.Option(None, "--config", "-c",
                                help="platform config (default config/platform.toml if present)"),
    strict: bool = typer.Option(False, "--strict", help="exit 1 when any row was malformed"),
    instruments: List[Path] = typer.Option(None, "--instruments",
                                           help="a tick CSV (its .instruments.json) or the sidecar itself: "
                                                "instruments of its symbols"),
    tick_size: List[str] = typer.Option(None, "--tick-size", help="SYMBOL=STEP: price grid of a symbol"),
    lot_size: List[str] = typer.Option(None, "--lot-size", help="SYMBOL=STEP: quantity grid of a symbol"),
) -> None:
    """Run ORDERS.csv through the price-time priority matching engine and write every report.

    Any symbol: its tick and lot come from --tick-size/--lot-size, else [symbols] of the config, else
    --instruments, else the grid the file's own prices and quantities are on."""
    from hftshm.exchange.csv_io import HeaderError, read_orders_file, write_reports
    from hftshm.exchange.engine import MatchingEngine
    from hftshm.feed.instruments import InstrumentError

    try:
        exchange_config, symbols = load_exchange_config(config)
        symbols = _replay_symbols(orders_csv, symbols, instruments, tick_size, lot_size)
    except (ConfigError, InstrumentError) as exc:
        typer.secho(f"config error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.secho(f"cannot read {orders_csv}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        orders, errors = read_orders_file(orders_csv, symbols)
    except (OSError, UnicodeDecodeError) as exc:
        typer.secho(f"cannot read {orders_csv}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    except HeaderError as exc:
        typer.secho(f"{orders_csv}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    for error in errors:
        typer.secho(f"{orders_csv}: {error} (row skipped)", fg="yellow", err=True)
    engine = MatchingEngine(exchange_config, symbols)
    reports = engine.process(orders)
    try:
        with open(output, "w", newline="") as stream:
            write_reports(stream, reports)
    except OSError as exc:
        typer.secho(f"cannot write {output}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    stats = engine.stats
    print(f"{len(orders)} orders -> {len(reports)} reports ({stats['executions']} executions, "
          f"{stats['rejects']} rejects), {len(errors)} malformed rows skipped; wrote {output}", file=sys.stderr)
    if strict and errors:
        raise typer.Exit(1)


def _replay_symbols(orders_csv: Path, configured, instrument_files, tick_sizes, lot_sizes):
    """The symbol table for a replay: the config's, the --instruments files', then every other symbol of
    the orders file with the grid its own prices and quantities are on; --tick-size/--lot-size win."""
    from dataclasses import replace

    from hftshm.exchange.csv_io import order_symbols
    from hftshm.feed import instruments as inst
    from hftshm.symbols import Symbol, SymbolTable

    found = []
    for path in instrument_files or ():
        path = Path(path)
        data = path if not path.name.endswith(inst.SIDECAR_SUFFIX) else path.with_name(
            path.name[: -len(inst.SIDECAR_SUFFIX)])
        if inst.read_sidecar(data) is None and not data.is_file():
            raise inst.InstrumentError(f"--instruments {path}: neither a tick CSV nor an instruments file")
        found.extend(inst.instruments_of(data))
    symbols = inst.resolve(configured, found, source=", ".join(map(str, instrument_files or ()))) if found \
        else configured
    ticks = inst.parse_overrides(tick_sizes, "--tick-size")
    lots = inst.parse_overrides(lot_sizes, "--lot-size")
    with open(orders_csv, newline="") as stream:
        seen = order_symbols(stream)
    table = list(symbols)
    next_id = symbols.max_id() + 1
    for name in sorted(seen):
        if name in symbols:
            continue
        prices, qtys = seen[name]
        tick = ticks.get(name) or _grid_of(prices) or "1"
        lot = lots.get(name) or _grid_of(qtys) or "1"
        print(f"{name}: not in the config; tick {tick}, lot {lot} "
              f"({'given' if name in ticks else 'the grid its orders are on'})", file=sys.stderr)
        table.append(Symbol(name, next_id, float(inst.parse_step(tick, f"tick of {name}")),
                            float(inst.parse_step(lot, f"lot of {name}"))))
        next_id += 1
    for name in ticks:
        if name not in seen and name not in symbols:
            raise inst.InstrumentError(f"--tick-size names {name}, which is neither in the orders nor configured")
    out = []
    for sym in table:
        tick, lot = ticks.get(sym.name), lots.get(sym.name)
        out.append(replace(sym, tick_size=float(inst.parse_step(tick, "--tick-size")) if tick else sym.tick_size,
                           lot_size=float(inst.parse_step(lot, "--lot-size")) if lot else sym.lot_size))
    return SymbolTable(out, explicit=symbols.explicit)


def _grid_of(texts: list[str]) -> str | None:
    """The largest decimal step dividing every positive number of ``texts`` (exact), None if there is none.
    One distinct number says nothing of a grid (its largest step is itself: one order at 2600.01 gave a
    tick of 2600.01): it gives the unit of its last printed decimal instead."""
    from decimal import Decimal, InvalidOperation
    from math import gcd

    from hftshm.feed.instruments import text_of

    values = []
    for text in texts:
        try:
            value = Decimal(text)
        except InvalidOperation:
            continue
        if value.is_finite() and value > 0:
            values.append(value.normalize())
    if not values:
        return None
    scale = max(max(0, -v.as_tuple().exponent) for v in values)
    if scale > 12:
        return None
    if len(set(values)) == 1:
        return text_of(Decimal(1).scaleb(-scale))
    step = 0
    for value in values:
        step = gcd(step, int(value.scaleb(scale)))
    return text_of(Decimal(step).scaleb(-scale))
