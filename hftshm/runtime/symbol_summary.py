"""The run summary per symbol: each symbol's position, PnL, orders and fills as three parts of the
platform see them, side by side, so a disagreement shows.

* ``strategies``: the strategies' portfolios (status rows), summed over the strategies on the symbol;
* ``risk``: the risk stage's own book of the symbol (what its limits were checked against), from
  ``<run_dir>/risk/<worker>.positions.json``, written when the risk worker closes;
* ``oms``: the OMS database: orders created and fills of the symbol, and the position those fills add
  up to. Read after the workers closed, so the write-behind writer has flushed.

Positions are in the symbol's own units (base units, or contracts of an inverse symbol), so there is
no total position; PnL is in the symbol's settlement currency (``currency``) and adds up over symbols
per currency only (the summary's ``pnl.by_currency``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hftshm.codes import Side
from hftshm.oms.emit_nb import ID_SHIFT


def risk_positions_path(run_dir, worker: str) -> Path:
    return Path(run_dir) / "risk" / f"{worker}.positions.json"


def write_risk_positions(run_dir, worker: str, state) -> None:
    """Risk's per-symbol book and account at close (``RiskState``), for the summary."""
    path = risk_positions_path(run_dir, worker)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"symbols": state.positions(), "account": state.summary()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, default=_plain) + "\n")
    tmp.replace(path)


def read_risk_positions(run_dir) -> dict[str, dict]:
    """symbol -> risk's row, merged over risk workers (one per platform as shipped)."""
    out: dict[str, dict] = {}
    for path in sorted((Path(run_dir) / "risk").glob("*.positions.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for row in body.get("symbols", []):
            out[row["symbol"]] = row
    return out


def oms_by_symbol(database_url: str, symbol_names: dict[int, str], schema: str = "",
                  since_unix_ns: int = 0) -> dict[str, dict]:
    """symbol -> orders created, fills, filled quantity and the signed position of those fills, from the
    OMS database, counting the orders of OMS epochs started at or after ``since_unix_ns`` (this run's:
    the database keeps earlier runs). An unreachable database gives {} (the summary then has no
    ``oms`` part rather than failing the run)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    if database_url.startswith("sqlite:///") and not Path(database_url[len("sqlite:///"):]).is_file():
        return {}  # no OMS ran here (a market-data host): do not create an empty database file
    args = {"options": f"-csearch_path={schema}"} if schema and database_url.startswith("postgresql") else {}
    engine = create_engine(database_url, connect_args=args)
    out: dict[str, dict] = {}
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT MIN(epoch) FROM oms_epochs WHERE started_unix_ns >= :since"),
                                 {"since": int(since_unix_ns)}).scalar()
            if first is None:
                return {}
            low = {"low": int(first) << ID_SHIFT}  # an order id's high bits are the epoch that created it
            for symbol_id, orders in conn.execute(text(
                    "SELECT symbol_id, COUNT(*) FROM orders WHERE order_id >= :low GROUP BY symbol_id"), low):
                out.setdefault(symbol_names.get(int(symbol_id), str(symbol_id)), _oms_row())["orders"] = int(orders)
            fills = conn.execute(text(
                "SELECT symbol_id, COUNT(*), SUM(qty), SUM(CASE WHEN side = :buy THEN qty ELSE -qty END), SUM(fee) "
                "FROM fills WHERE order_id >= :low GROUP BY symbol_id"), {"buy": int(Side.BUY), **low})
            for symbol_id, count, qty, signed, fee in fills:
                row = out.setdefault(symbol_names.get(int(symbol_id), str(symbol_id)), _oms_row())
                row.update(fills=int(count), filled_qty=float(qty or 0.0), position=float(signed or 0.0),
                           fees=float(fee or 0.0))
    except SQLAlchemyError:
        return {}
    finally:
        engine.dispose()
    return out


def _oms_row() -> dict:
    return {"orders": 0, "fills": 0, "filled_qty": 0.0, "position": 0.0, "fees": 0.0}


def by_symbol(snapshot, risk_rows: dict[str, dict], oms_rows: dict[str, dict]) -> dict[str, dict]:
    """The summary's ``symbols`` section (see the module docstring)."""
    out: dict[str, dict] = {}

    def row(symbol: str) -> dict:
        return out.setdefault(symbol, {"strategies": {"names": [], "position": 0.0, "realized_pnl": 0.0,
                                                      "unrealized_pnl": 0.0, "fees": 0.0, "net_pnl": 0.0,
                                                      "intents": 0, "fills": 0, "rejects": 0, "open_orders": 0}})

    for symbol, agg in snapshot.by_symbol().items():  # the strategies' positions, summed per symbol
        row(symbol)["currency"] = agg["currency"]
        row(symbol)["qty_unit"] = agg["qty_unit"]
        row(symbol)["strategies"].update(names=agg["strategies"], position=agg["quantity"],
                                         realized_pnl=agg["realized_pnl"], unrealized_pnl=agg["unrealized_pnl"],
                                         fees=agg["fees"], net_pnl=agg["pnl"])
    for st in snapshot.strategies:
        if st.symbol:
            s = row(st.symbol)["strategies"]
            for key in ("intents", "fills", "rejects", "open_orders"):
                s[key] += getattr(st, key)
    for symbol, r in risk_rows.items():
        if symbol in out or r.get("position") or r.get("realized") or r.get("fees"):
            row(symbol)["risk"] = {"position": r["position"], "avg_cost": r["avg_cost"], "realized_pnl": r["realized"],
                                   "fees": r["fees"], "mid": None if _nan(r["mid"]) else r["mid"],
                                   "pnl": r["pnl"], "open_buy": r["open_buy"], "open_sell": r["open_sell"]}
    for symbol, r in oms_rows.items():
        row(symbol)["oms"] = dict(r)
    return dict(sorted(out.items()))


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return float(value)


def print_symbols(symbols: dict[str, dict], console) -> None:
    """One row per symbol: position as strategies, risk and the OMS's fills have it; PnL; orders and fills."""
    if not symbols:
        return
    from rich.table import Table

    table = Table(title="per symbol")
    for column in ("symbol", "position", "risk position", "oms position", "qty in", "net PnL", "fees", "PnL in",
                   "orders", "fills", "rejects"):
        table.add_column(column, justify="right")
    for name, r in symbols.items():
        s, risk, oms = r["strategies"], r.get("risk") or {}, r.get("oms") or {}
        table.add_row(name, f"{s['position']:.6g}", _fmt(risk.get("position")), _fmt(oms.get("position")),
                      r.get("qty_unit", ""), f"{s['net_pnl']:+,.8g}", f"{s['fees']:,.8g}", r.get("currency", ""),
                      str(oms.get("orders", "-")),
                      str(oms.get("fills", s["fills"])), str(s["rejects"]))
    console.print(table)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.6g}"
