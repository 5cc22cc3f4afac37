"""A strategy's position, open orders and PnL, for Python code.

A thin object over the arrays the kernels in ``portfolio_nb`` keep (see there for the accounting
rules), so a Python strategy, the strategy runtime and the compiled backtest read identical
numbers. The runtime applies every execution report here *before* the strategy's
``on_execution_report`` runs, so the strategy always sees its post-report position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hftshm.codes import OrderState, Side
from hftshm.strategies import portfolio_nb as nb
from hftshm.symbols import Market


@dataclass(frozen=True)
class OpenOrder:
    client_order_id: int
    side: Side
    price: float
    qty: float
    leaves_qty: float
    state: OrderState
    sent_ts_ns: int

    @property
    def pending_cancel(self) -> bool:
        return self.state == OrderState.PENDING_CANCEL


class Portfolio:
    """Position, average price, realized/unrealized PnL, fees and open orders of one strategy."""

    def __init__(self, order_capacity: int = 64, first_client_order_id: int = 1, market: int = Market.LINEAR,
                 contract_size: float = 1.0):
        """``market`` (``hftshm.symbols.Market``) and ``contract_size`` are the instrument's: an inverse
        portfolio counts contracts and books PnL and fees in the coin."""
        self.pf = nb.new_state(first_client_order_id, int(market), contract_size)
        self.orders = nb.new_orders(order_capacity)

    # -- updates (called by the runtime) -------------------------------------------------------
    def apply_report(self, report) -> int:
        """Apply one ``execution_report`` record; returns a ``portfolio_nb.APPLIED_*`` code."""
        return nb.apply_report(
            self.pf, self.orders, int(report["event"]), int(report["client_order_id"]), int(report["side"]),
            float(report["price"]), float(report["qty"]), float(report["leaves_qty"]), float(report["fee"]),
            int(report["exch_ts_ns"]), False,
        )

    def mark(self, mid: float) -> None:
        """Remember the mid the open position is marked at."""
        if mid == mid:
            self.pf[nb.PF_MID] = mid

    # -- reads ---------------------------------------------------------------------------------
    @property
    def position(self) -> float:
        return float(self.pf[nb.PF_POSITION])

    @property
    def avg_price(self) -> float:
        return float(self.pf[nb.PF_AVG_PRICE])

    @property
    def realized_pnl(self) -> float:
        return float(self.pf[nb.PF_REALIZED])

    @property
    def fees(self) -> float:
        return float(self.pf[nb.PF_FEES])

    @property
    def mid(self) -> float:
        return float(self.pf[nb.PF_MID])

    @property
    def unrealized_pnl(self) -> float:
        return float(nb.unrealized(self.pf, self.pf[nb.PF_MID]))

    @property
    def net_pnl(self) -> float:
        """Realized + unrealized at the last mid - fees."""
        return self.realized_pnl + self.unrealized_pnl - self.fees

    @property
    def market(self) -> Market:
        return Market(int(self.pf[nb.PF_MARKET]))

    @property
    def traded_qty(self) -> float:
        return float(self.pf[nb.PF_TRADED_QTY])

    @property
    def traded_notional(self) -> float:
        return float(self.pf[nb.PF_TRADED_NOTIONAL])

    def count(self, what: str) -> int:
        """Counters: fills, rejects, cancels, acks, intents, new orders ("orders"), signals, open_orders."""
        index = {"orders": nb.PF_NEW_ORDERS, "fills": nb.PF_FILLS, "rejects": nb.PF_REJECTS, "cancels": nb.PF_CANCELS, "acks": nb.PF_ACKS,
                 "intents": nb.PF_INTENTS, "signals": nb.PF_SIGNALS, "open_orders": nb.PF_OPEN_ORDERS}[what]
        return int(self.pf[index])

    def open_orders(self, side: Side | None = None) -> list[OpenOrder]:
        """Orders sent and not known to be done (pending, live, partially filled, pending cancel)."""
        live = self.orders[self.orders["state"] != 0]
        return [
            OpenOrder(int(o["client_order_id"]), Side(int(o["side"])), float(o["price"]), float(o["qty"]),
                      float(o["leaves_qty"]), OrderState(int(o["state"])), int(o["sent_ts_ns"]))
            for o in live if side is None or int(o["side"]) == side
        ]

    def open_qty(self, side: Side) -> float:
        """Quantity that could still fill on ``side`` (pending cancels included)."""
        return float(nb.open_qty(self.orders, int(side)))

    def summary(self) -> dict:
        return {
            "position": self.position,
            "avg_price": None if math.isnan(self.avg_price) else self.avg_price,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl,
            "fees": self.fees,
            "net_pnl": self.net_pnl,
            "traded_qty": self.traded_qty,
            "traded_notional": self.traded_notional,
            "fills": self.count("fills"),
            "rejects": self.count("rejects"),
            "cancels": self.count("cancels"),
            "open_orders": self.count("open_orders"),
        }

