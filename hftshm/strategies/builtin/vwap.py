"""VWAP execution: work ``target_qty`` on one side over ``horizon_s``, following traded volume.

From the first event it sees (the start), it counts the market's traded volume and keeps its own
executed quantity near ``participation`` of it. So that the target is done within the horizon
whatever the volume, a time floor takes over when volume-following falls behind a straight-line
schedule that ends at ``finish_fraction`` of the horizon; after that point, whatever remains is sent
as a market order. Child orders are IOC limits at the opposite touch, one in flight at a time,
each at most ``max_slice`` (a small slice does not walk the book).

``summary()`` reports the average fill price against the market VWAP (trades) of the same
interval, start to completion: slippage in bps, positive = worse than the market (paid more on a
buy, received less on a sell).
"""

from __future__ import annotations

import math

import numpy as np

from hftshm.codes import EventKind, ReportEvent, Side, TimeInForce
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.base import Param, Strategy


class VwapExecution(Strategy):
    """Executes target_qty on one side within horizon_s, slicing by market volume under a participation cap."""

    PARAMS = {
        "side": Param("buy", "buy or sell", choices=("buy", "sell")),
        "target_qty": Param(0.5, "quantity to execute, base units", positive=True),
        "horizon_s": Param(300.0, "market time from the first event by which the target is done", positive=True),
        "participation": Param(0.1, "fraction of market traded volume to follow", positive=True, max=1.0),
        "max_slice": Param(0.05, "largest child order, base units", positive=True),
        "finish_fraction": Param(0.9, "the time floor completes the target by this fraction of the horizon",
                                 positive=True, max=1.0),
    }
    TIMER_INTERVAL_NS = 250_000_000

    def initialize(self, params):
        super().initialize(params)
        lot = self.symbol.lot_size
        if params["target_qty"] < lot:
            raise ValueError(f"target_qty {params['target_qty']} is below the lot size {lot}")
        self.side = Side.BUY if params["side"] == "buy" else Side.SELL
        self.target = self.round_qty(params["target_qty"])
        self.horizon_ns = int(params["horizon_s"] * 1e9)
        self.start_ns = 0
        self.done_ns = 0
        self.market_qty = 0.0
        self.market_notional = 0.0
        self.fill_qty = 0.0
        self.fill_notional = 0.0

    # -- market ----------------------------------------------------------------------------------
    def on_tick(self, events):
        if self.start_ns == 0:
            self.start_ns = int(events[0]["exch_ts_ns"])
        if self.done_ns:
            return
        trades = events[events["kind"] == EventKind.TRADE]
        if len(trades):
            qty = trades["qty"]
            self.market_qty += float(qty.sum())
            self.market_notional += float(np.dot(qty, trades["price"]))
        self._work()

    def on_timer(self, now_ns):
        self._work()

    def on_execution_report(self, report):
        if report["qty"] > 0 and int(report["event"]) in (ReportEvent.PARTIAL, ReportEvent.FILL):
            self.fill_qty += float(report["qty"])
            self.fill_notional += float(report["qty"]) * float(report["price"])
            if self.remaining() < self.symbol.lot_size and not self.done_ns:
                self.done_ns = self.now_ns

    def on_restart(self):
        # what this side executed before the restart is in the rebuilt portfolio: do not work it again
        pf = self.portfolio.pf
        self.fill_qty = float(pf[pnb.PF_BUY_QTY] if self.side == Side.BUY else pf[pnb.PF_SELL_QTY])
        self.fill_notional = float(pf[pnb.PF_TRADED_NOTIONAL]) if self.fill_qty else 0.0
        if self.fill_qty and self.remaining() < self.symbol.lot_size:
            self.done_ns = int(pf[pnb.PF_LAST_FILL_TS]) or 1

    # -- decisions -------------------------------------------------------------------------------
    def remaining(self) -> float:
        return self.round_qty(self.target - self.fill_qty + 1e-12)

    def _work(self) -> None:
        if self.done_ns or self.start_ns == 0 or self.portfolio.count("open_orders"):
            return
        remaining = self.remaining()
        if remaining < self.symbol.lot_size:
            return
        p = self.params
        elapsed = self.now_ns - self.start_ns
        finish_ns = p["finish_fraction"] * self.horizon_ns
        if elapsed >= finish_ns:
            self._send(remaining, market=True)
            return
        by_volume = p["participation"] * self.market_qty
        by_time = self.target * elapsed / finish_ns
        wanted = min(self.target, max(by_volume, by_time))
        child = self.round_qty(min(wanted - self.fill_qty, p["max_slice"], remaining))
        if child >= self.symbol.lot_size:
            self._send(child, market=False)

    def _send(self, qty: float, market: bool) -> None:
        self.signal()
        if market:
            (self.buy_market if self.side == Side.BUY else self.sell_market)(qty)
        elif self.side == Side.BUY and self.best_ask == self.best_ask:
            self.buy(self.best_ask, qty, TimeInForce.IOC)
        elif self.side == Side.SELL and self.best_bid == self.best_bid:
            self.sell(self.best_bid, qty, TimeInForce.IOC)

    # -- results ---------------------------------------------------------------------------------
    def summary(self):
        avg = self.fill_notional / self.fill_qty if self.fill_qty else math.nan
        market_vwap = self.market_notional / self.market_qty if self.market_qty else math.nan
        sign = 1.0 if self.side == Side.BUY else -1.0
        known = avg == avg and market_vwap == market_vwap
        slippage = sign * (avg - market_vwap) / market_vwap * 1e4 if known else math.nan
        end_ns = self.done_ns or self.now_ns
        return {
            "side": self.params["side"],
            "target_qty": self.target,
            "filled_qty": round(self.fill_qty, 9),
            "completed": bool(self.done_ns),
            "start_ns": self.start_ns,
            "end_ns": end_ns,
            "elapsed_s": (end_ns - self.start_ns) / 1e9 if self.start_ns else 0.0,
            "horizon_s": self.params["horizon_s"],
            "avg_fill_price": None if avg != avg else avg,
            "market_vwap": None if market_vwap != market_vwap else market_vwap,
            "slippage_bps": None if slippage != slippage else slippage,
            "market_qty": self.market_qty,
            "participation_realized": self.fill_qty / self.market_qty if self.market_qty else None,
        }
