"""CLI: ``hftshm exchange replay ORDERS.csv -o REPORTS.csv`` runs orders through the matching engine.

The contract (others' tests and tools rely on it):

Input header ``ts,order_id,owner,symbol,action,side,type,tif,price,qty``; action new|cancel|replace,
side buy|sell, type limit|market, tif gtc|ioc|fok|post_only. Cancel uses only order_id; replace
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
) -> None:
    """Run ORDERS.csv through the price-time priority matching engine and write every report."""
    from hftshm.exchange.csv_io import HeaderError, read_orders_file, write_reports
    from hftshm.exchange.engine import MatchingEngine

    try:
        exchange_config, symbols = load_exchange_config(config)
    except ConfigError as exc:
        typer.secho(f"config error: {exc}", fg="red", err=True)
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
