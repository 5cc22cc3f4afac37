"""CLI: ``hftshm orders`` (list orders) and ``hftshm orders show ID`` (an order's event history).

Reads the OMS database: ``--db URL``, or ``[oms] database_url`` of the config (SQLite under
``[platform] run_dir`` by default). Read-only; safe while the platform runs.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG, ConfigError

orders_app = typer.Typer(help="Orders and their audit trail, from the OMS database.", invoke_without_command=True)

ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config file")
DbOption = typer.Option(None, "--db", help="database URL (default: \\[oms] database_url, or SQLite under run_dir)")
SchemaOption = typer.Option(None, "--schema",
                            help="PostgreSQL schema of the OMS tables (default \\[oms] database_schema)")
JsonOption = typer.Option(False, "--json", help="print JSON instead of a table")


def register(app: typer.Typer) -> None:
    app.add_typer(orders_app, name="orders")


@orders_app.callback()
def orders_command(
    ctx: typer.Context,
    state: list[str] = typer.Option(None, "--state", "-s", help="only orders in this state (repeatable): "
                                    "new, acknowledged, partially_filled, filled, cancelled, rejected, "
                                    "pending_cancel, replaced, or 'open'"),
    strategy: int = typer.Option(None, "--strategy", help="only this strategy id"),
    symbol: str = typer.Option(None, "--symbol", help="only this symbol (name from \\[symbols], or its id)"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="at most this many, newest first"),
    db: str = DbOption, schema: str = SchemaOption, config: Path = ConfigOption, as_json: bool = JsonOption,
) -> None:
    """List orders, newest first (``hftshm orders show ID`` for one order's event history)."""
    if ctx.invoked_subcommand is not None:
        return
    from hftshm.codes import OrderState, parse_code
    from hftshm.oms import states as state_table

    states_in: list[int] = []
    for text in state or []:
        if text.strip().lower() == "open":
            states_in += [int(s) for s in state_table.OPEN_STATES]
            continue
        try:
            states_in.append(int(parse_code(OrderState, text, "--state")))
        except ValueError as exc:
            _fail(f"{exc}, open", 2)
    symbol_id = _symbol_id(symbol, config) if symbol else None
    store = _open(db, schema, config)
    try:
        rows = store.list_orders(states_in=states_in or None, strategy_id=strategy, symbol_id=symbol_id, limit=limit)
    except Exception as exc:  # noqa: BLE001 - any database failure is reported, not a traceback
        _fail(f"cannot read orders from {store.url_display}: {_first_line(exc)}", 1)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([_order_json(r) for r in rows], indent=2))
        return
    _print_orders(rows)


@orders_app.command("show")
def show_command(
    order_id: int = typer.Argument(..., help="platform order id"),
    db: str = DbOption, schema: str = SchemaOption, config: Path = ConfigOption, as_json: bool = JsonOption,
) -> None:
    """One order and its full event history (every state change, both timestamps, the reason)."""
    store = _open(db, schema, config)
    try:
        order = store.get_order(order_id)
        events = store.events_of(order_id)
        fills = store.fills_of(order_id)
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot read order {order_id} from {store.url_display}: {_first_line(exc)}", 1)
    finally:
        store.close()
    if order is None and not events:
        _fail(f"no order {order_id} in {store.url_display}", 1)
    if as_json:
        typer.echo(json.dumps({"order": _order_json(order) if order else None,
                               "events": [_event_json(e) for e in events],
                               "fills": fills}, indent=2, default=_json_default))
        return
    _print_order_history(order, events, fills)


# -- helpers -------------------------------------------------------------------------------------


def _open(db: str | None, schema: str | None, config_path: Path):
    from hftshm.oms.store import Store, StoreError, safe_url

    url, default_schema = db, ""
    if url is None or schema is None:
        oms, run_dir = _oms_config(config_path)
        url = url or oms.database_url_for(run_dir)
        default_schema = oms.database_schema
    schema = default_schema if schema is None else schema
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        _fail(f"no OMS database at {url} (has the platform run with this run_dir? or pass --db URL)", 1)
    try:
        store = Store(url, schema=schema, connect_timeout_s=3.0, create=False)
        store.ping()
    except StoreError as exc:
        _fail(str(exc), 1)
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad credentials, ...
        _fail(f"cannot reach database {safe_url(url)}: {_first_line(exc)}", 1)
    store.url_display = safe_url(url)
    return store


def _oms_config(config_path: Path):
    """``[oms]`` and ``[platform] run_dir`` alone: reading orders must not need every section valid."""
    from hftshm.config import Section, read_toml
    from hftshm.oms.config import OmsConfig

    try:
        raw = read_toml(config_path)
        oms = OmsConfig.from_section(Section("oms", raw.get("oms", {})))
    except (ConfigError, ValueError) as exc:
        _fail(f"config error: {exc}", 2)
    run_dir = Path(raw.get("platform", {}).get("run_dir", "run"))
    if not run_dir.is_absolute():
        run_dir = Path(config_path).resolve().parent.parent / run_dir
    return oms, run_dir


def _symbol_id(symbol: str, config_path: Path) -> int:
    if symbol.isdigit():
        return int(symbol)
    from hftshm.config import read_toml
    from hftshm.symbols import SymbolTable

    try:
        return SymbolTable.from_section(read_toml(config_path).get("symbols")).by_name(symbol).symbol_id
    except (ConfigError, KeyError) as exc:
        _fail(str(exc).strip('"'), 2)


def _fail(message: str, code: int) -> None:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(code)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _name(enum, value) -> str:
    try:
        return enum(int(value)).name.lower()
    except (ValueError, TypeError):
        return str(value)


def _ts(ns) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:g}"


def _json_default(value):
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _order_json(row: dict) -> dict:
    from hftshm.codes import OrderState, OrderType, Side, TimeInForce

    out = {k: _clean(v) for k, v in row.items()}
    out["state"] = _name(OrderState, row["state"])
    out["side"] = _name(Side, row["side"])
    out["order_type"] = _name(OrderType, row["order_type"])
    out["tif"] = _name(TimeInForce, row["tif"])
    return out


def _event_json(row: dict) -> dict:
    from hftshm.codes import OrderEventKind, OrderState, Reason

    out = {k: _clean(v) for k, v in row.items()}
    out["kind"] = _name(OrderEventKind, row["kind"])
    out["state"] = _name(OrderState, row["state"])
    out["prev_state"] = _name(OrderState, row["prev_state"]) if row["prev_state"] else ""
    out["reason"] = _name(Reason, row["reason"]) if row["reason"] else ""
    return out


def _console():
    from rich.console import Console

    console = Console()
    # piped or redirected: do not squeeze the columns into 80 characters
    return console if console.is_terminal else Console(width=200)


def _print_orders(rows: list[dict]) -> None:
    from rich.table import Table

    from hftshm.codes import OrderState, Side

    table = Table(title=f"{len(rows)} order(s), newest first")
    for column in ("order_id", "strategy", "client_id", "symbol", "side", "price", "qty", "filled", "state",
                   "updated (UTC)"):
        table.add_column(column, justify="left" if column in ("state", "side", "updated (UTC)") else "right")
    for r in rows:
        table.add_row(str(r["order_id"]), str(r["strategy_id"]), str(r["client_order_id"]), str(r["symbol_id"]),
                      _name(Side, r["side"]), _num(r["price"]), _num(r["qty"]), _num(r["cum_qty"]),
                      _name(OrderState, r["state"]), _ts(r["updated_ts_ns"]))
    _console().print(table)


def _print_order_history(order: dict | None, events: list[dict], fills: list[dict]) -> None:
    from rich.table import Table

    from hftshm.codes import OrderEventKind, OrderState, Reason, Side

    console = _console()
    if order is not None:
        console.print(f"order {order['order_id']}: strategy {order['strategy_id']} client id "
                      f"{order['client_order_id']}, symbol {order['symbol_id']}, {_name(Side, order['side'])} "
                      f"{_num(order['qty'])} @ {_num(order['price'])}, filled {_num(order['cum_qty'])}, "
                      f"[bold]{_name(OrderState, order['state'])}[/bold]")
    table = Table(title="events (audit trail)")
    for column in ("event_id", "local time (UTC)", "exchange time (UTC)", "event", "from", "to", "reason",
                   "exec qty", "exec price", "cum qty", "leaves", "attempt"):
        table.add_column(column)
    for e in events:
        table.add_row(str(e["event_id"]), _ts(e["local_ts_ns"]), _ts(e["exch_ts_ns"]), _name(OrderEventKind, e["kind"]),
                      _name(OrderState, e["prev_state"]) if e["prev_state"] else "-", _name(OrderState, e["state"]),
                      _name(Reason, e["reason"]) if e["reason"] else "", _num(e["exec_qty"]),
                      _num(e["exec_price"]), _num(e["cum_qty"]), _num(e["leaves_qty"]), str(e["attempt"]))
    console.print(table)
    if fills:
        console.print(f"{len(fills)} fill(s), total fee {_num(sum(f['fee'] or 0.0 for f in fills))}")
