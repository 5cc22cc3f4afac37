"""The ``TradingProvider`` interface: orders, trades and the two operator actions the API needs.

The web app reads workers, rings, latencies, positions, strategies and risk state from a
``PlatformView`` snapshot (``hftshm.metrics.snapshot``); everything else comes through this small
interface, which the platform wires to the OMS database, the fill log, the risk control block and
the strategy control channel. ``MemoryTradingProvider`` is a complete in-process implementation:
the app uses it when no platform is running, tests use it as the real thing.

Rows are plain JSON-able dicts. Order rows carry at least ``client_order_id``, ``strategy``,
``symbol``, ``side`` (buy/sell), ``price``, ``qty``, ``filled_qty``, ``state`` (a
``hftshm.codes.OrderState`` name in lower case), ``reason`` and ``updated_unix_ns``; trade rows
``trade_id``, ``client_order_id``, ``strategy``, ``symbol``, ``side``, ``price``, ``qty``, ``fee``
and ``ts_unix_ns``. Newest first.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


class UnknownStrategy(KeyError):
    """No strategy of that name is running (answered 404)."""


class Unavailable(RuntimeError):
    """The data source is down (no platform, database unreachable); answered 503 with the message."""


@runtime_checkable
class TradingProvider(Protocol):
    def orders(self, *, state: str | None = None, strategy: str | None = None, symbol: str | None = None,
               limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
        """A page of orders, newest first, and the total matching the filters."""

    def trades(self, *, strategy: str | None = None, symbol: str | None = None,
               limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
        """A page of trades (fills), newest first, and the total matching the filters."""

    def set_kill_switch(self, active: bool, *, actor: str) -> None:
        """Turn the kill switch on or off; the next risk check sees it."""

    def set_strategy_paused(self, name: str, paused: bool, *, actor: str) -> None:
        """Pause or resume strategy ``name``; ``UnknownStrategy`` if there is none."""


def _page(rows: list[dict], limit: int, offset: int) -> tuple[list[dict], int]:
    return rows[offset: offset + limit], len(rows)


class MemoryTradingProvider:
    """Orders and trades kept in memory (newest first), kill switch and strategy states.

    With ``control`` (a ``hftshm.risk.control.ControlBlock``), the kill switch is the real one in
    shared memory; without, a flag. ``strategies`` names the strategies that may be paused.
    """

    def __init__(self, control=None, strategies: list[str] | tuple[str, ...] = (), max_rows: int = 100_000):
        self.control = control
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._orders: list[dict] = []
        self._trades: list[dict] = []
        self._kill_switch = False
        self.paused: dict[str, bool] = {name: False for name in strategies}
        self.actions: list[dict] = []  # who did what, newest last (an audit trail for tests and the UI)

    # -- writes (the platform or a test feeds these) ---------------------------------------------

    def upsert_order(self, order: dict) -> None:
        """Add an order, or replace the row with the same ``client_order_id``."""
        row = dict(order)
        row.setdefault("updated_unix_ns", time.time_ns())
        with self._lock:
            key = row.get("client_order_id")
            for i, existing in enumerate(self._orders):
                if key is not None and existing.get("client_order_id") == key:
                    del self._orders[i]
                    break
            self._orders.insert(0, row)
            del self._orders[self.max_rows:]

    def add_trade(self, trade: dict) -> None:
        row = dict(trade)
        row.setdefault("ts_unix_ns", time.time_ns())
        with self._lock:
            self._trades.insert(0, row)
            del self._trades[self.max_rows:]

    # -- TradingProvider -------------------------------------------------------------------------

    def orders(self, *, state=None, strategy=None, symbol=None, limit=100, offset=0):
        with self._lock:
            rows = [o for o in self._orders
                    if (state is None or o.get("state") == state)
                    and (strategy is None or o.get("strategy") == strategy)
                    and (symbol is None or o.get("symbol") == symbol)]
        return _page(rows, limit, offset)

    def trades(self, *, strategy=None, symbol=None, limit=100, offset=0):
        with self._lock:
            rows = [t for t in self._trades
                    if (strategy is None or t.get("strategy") == strategy)
                    and (symbol is None or t.get("symbol") == symbol)]
        return _page(rows, limit, offset)

    def set_kill_switch(self, active: bool, *, actor: str) -> None:
        if self.control is not None:
            self.control.set_kill_switch(bool(active))
        with self._lock:
            self._kill_switch = bool(active)
            self.actions.append({"action": "kill_switch", "active": bool(active), "actor": actor,
                                 "unix_ns": time.time_ns()})

    def set_trading_state(self, state: str, *, actor: str) -> None:
        """``active``, ``reducing`` or ``halted`` (needs a control block: the state lives there)."""
        from hftshm.codes import TradingState, parse_code

        if self.control is None:
            raise Unavailable("no risk control block: the platform is not running")
        self.control.set_trading_state(parse_code(TradingState, state, "trading state"))
        with self._lock:
            self.actions.append({"action": "trading_state", "state": state, "actor": actor, "unix_ns": time.time_ns()})

    @property
    def kill_switch(self) -> bool:
        return self.control.kill_switch if self.control is not None else self._kill_switch

    def set_strategy_paused(self, name: str, paused: bool, *, actor: str) -> None:
        with self._lock:
            if name not in self.paused:
                raise UnknownStrategy(name)
            self.paused[name] = bool(paused)
            self.actions.append({"action": "pause" if paused else "resume", "strategy": name, "actor": actor,
                                 "unix_ns": time.time_ns()})
