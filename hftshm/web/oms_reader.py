"""Read-only paging over the OMS database (``orders`` and ``fills`` tables) for the API.

The OMS writes these tables behind the hot path (``hftshm.oms.store``); the API only reads, with
parameterised SQL, a LIMIT/OFFSET page and a COUNT for the total. Codes become names here
(state 4 -> ``filled``, strategy id -> its name) so API clients never see internal numbers.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from hftshm.codes import OrderState, OrderType, Side, TimeInForce
from hftshm.web.provider import Unavailable


def _name(enum, value) -> str:
    try:
        return enum(int(value)).name.lower()
    except (ValueError, TypeError):
        return str(value)


class OmsReader:
    """``orders`` / ``trades`` pages from the OMS database at ``url``."""

    def __init__(self, url: str, *, schema: str = "", strategy_names: Callable[[], dict[int, str]] = dict,
                 symbol_names: dict[int, str] | None = None, connect_timeout_s: float = 2.0):
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        args: dict = {}
        if self.dialect == "postgresql":
            args["connect_timeout"] = max(1, int(connect_timeout_s))
            if schema:
                args["options"] = f"-csearch_path={schema}"
        self.url = parsed.render_as_string(hide_password=True)
        self.engine: Engine = create_engine(parsed, connect_args=args, pool_pre_ping=True)
        self.strategy_names = strategy_names
        self.symbol_names = symbol_names or {}

    def close(self) -> None:
        self.engine.dispose()

    def _ids(self, strategy: str | None, symbol: str | None) -> tuple[int | None, int | None, bool]:
        """Names -> ids; the bool is False when a name matches nothing (an empty page, not an error)."""
        strategy_id = symbol_id = None
        if strategy is not None:
            ids = [i for i, n in self.strategy_names().items() if n == strategy]
            if not ids:
                if not strategy.isdigit():
                    return None, None, False
                ids = [int(strategy)]
            strategy_id = ids[0]
        if symbol is not None:
            ids = [i for i, n in self.symbol_names.items() if n == symbol.upper()]
            if not ids:
                return None, None, False
            symbol_id = ids[0]
        return strategy_id, symbol_id, True

    def _page(self, table: str, columns: str, where: list[str], params: dict, order: str, limit: int, offset: int):
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        try:
            with self.engine.connect() as conn:
                total = int(conn.execute(text(f"SELECT COUNT(*) FROM {table}{clause}"), params).scalar_one())
                rows = conn.execute(text(f"SELECT {columns} FROM {table}{clause} ORDER BY {order} DESC "
                                         f"LIMIT :limit OFFSET :offset"), {**params, "limit": limit, "offset": offset})
                return [dict(r._mapping) for r in rows], total
        except SQLAlchemyError as exc:
            message = str(exc.orig if getattr(exc, "orig", None) is not None else exc).splitlines()[0]
            if "no such table" in message or "does not exist" in message:
                return [], 0  # the OMS has not created its tables yet: nothing to show
            raise Unavailable(f"OMS database {self.url} is unavailable: {message}") from None

    def orders(self, *, state=None, strategy=None, symbol=None, limit=100, offset=0):
        strategy_id, symbol_id, ok = self._ids(strategy, symbol)
        if not ok:
            return [], 0
        where, params = [], {}
        if state is not None:
            where.append("state = :state")
            params["state"] = int(OrderState[state.upper()])
        if strategy_id is not None:
            where.append("strategy_id = :strategy_id")
            params["strategy_id"] = strategy_id
        if symbol_id is not None:
            where.append("symbol_id = :symbol_id")
            params["symbol_id"] = symbol_id
        rows, total = self._page("orders", "order_id, client_order_id, strategy_id, symbol_id, side, order_type, tif, "
                                 "price, qty, cum_qty, leaves_qty, state, created_ts_ns, updated_ts_ns",
                                 where, params, "order_id", limit, offset)
        names = self.strategy_names()
        return [{
            "order_id": r["order_id"], "client_order_id": r["client_order_id"],
            "strategy": names.get(r["strategy_id"], str(r["strategy_id"])),
            "symbol": self.symbol_names.get(r["symbol_id"], str(r["symbol_id"])),
            "side": _name(Side, r["side"]), "type": _name(OrderType, r["order_type"]),
            "tif": _name(TimeInForce, r["tif"]),
            "price": r["price"], "qty": r["qty"], "filled_qty": r["cum_qty"], "leaves_qty": r["leaves_qty"],
            "state": _name(OrderState, r["state"]), "reason": "",
            "created_unix_ns": r["created_ts_ns"], "updated_unix_ns": r["updated_ts_ns"],
        } for r in rows], total

    def trades(self, *, strategy=None, symbol=None, limit=100, offset=0):
        strategy_id, symbol_id, ok = self._ids(strategy, symbol)
        if not ok:
            return [], 0
        where, params = [], {}
        if strategy_id is not None:
            where.append("strategy_id = :strategy_id")
            params["strategy_id"] = strategy_id
        if symbol_id is not None:
            where.append("symbol_id = :symbol_id")
            params["symbol_id"] = symbol_id
        rows, total = self._page("fills", "event_id, order_id, strategy_id, symbol_id, side, price, qty, fee, "
                                 "exch_ts_ns, local_ts_ns", where, params, "event_id", limit, offset)
        names = self.strategy_names()
        return [{
            "trade_id": r["event_id"], "order_id": r["order_id"],
            "strategy": names.get(r["strategy_id"], str(r["strategy_id"])),
            "symbol": self.symbol_names.get(r["symbol_id"], str(r["symbol_id"])),
            "side": _name(Side, r["side"]), "price": r["price"], "qty": r["qty"], "fee": r["fee"],
            "exch_ts_ns": r["exch_ts_ns"], "ts_unix_ns": r["local_ts_ns"],
        } for r in rows], total
