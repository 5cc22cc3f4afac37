"""``SimpleFillVenue``: a deliberately small stand-in venue for unit tests of the backtest loop.

Not the platform's exchange (that is ``hftshm.exchange``, with queue position, a real matching
engine and a seeded latency model); this exists so the strategy runtime and the backtest driver
can be tested on their own, with rules simple enough to check by hand:

* an intent reaches the venue ``latency_ns`` after its market time; its reports come back
  ``latency_ns`` later;
* a limit order that crosses the best opposite price on arrival fills at once at that price
  (taker fee), up to the quantity shown there; IOC/market remainders are cancelled; post-only
  orders that would cross are rejected;
* a resting order fills (maker fee) when a trade prints strictly through its price, or the
  opposite best moves through it;
* no risk checks, no OMS: order id = client order id.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from hftshm.codes import Action, EventKind, OrderType, Reason, ReportEvent, Side, TimeInForce
from hftshm.transport.layout import load

REPORT_LAYOUT = load("execution_report")


@dataclass
class _Resting:
    strategy_id: int
    symbol_id: int
    client_order_id: int
    side: int
    price: float
    leaves: float
    cum: float


class SimpleFillVenue:
    fill_model = "simple (unit tests only)"

    def __init__(self, latency_ns: int = 1_000_000, maker_fee_bps: float = 0.0, taker_fee_bps: float = 5.0):
        self.latency_ns = int(latency_ns)
        self.maker_fee_bps = maker_fee_bps
        self.taker_fee_bps = taker_fee_bps
        self.latency_model = {"model": "constant", "entry_ns": self.latency_ns, "response_ns": self.latency_ns}
        self.best = {Side.BUY: (math.nan, 0.0), Side.SELL: (math.nan, 0.0)}
        self.resting: dict[int, _Resting] = {}
        self._arrivals: list[tuple[int, int, np.void]] = []  # (arrival ns, seq, intent)
        self._outgoing: list[tuple[int, int, tuple]] = []  # (delivery ns, seq, report fields)
        self._seq = 0
        self.now_ns = 0

    # -- input -----------------------------------------------------------------------------------
    def on_intents(self, intents: np.ndarray) -> None:
        for intent in intents:
            self._seq += 1
            heapq.heappush(self._arrivals, (int(intent["market_ts_ns"]) + self.latency_ns, self._seq, intent.copy()))

    def on_market(self, events: np.ndarray) -> None:
        for event in events:
            ts = int(event["exch_ts_ns"])
            self._arrive_until(ts)
            self.now_ns = ts
            kind = int(event["kind"])
            if kind == EventKind.BBO:
                self.best[Side(int(event["side"]))] = (float(event["price"]), float(event["qty"]))
                self._cross_resting(ts)
            elif kind == EventKind.TRADE:
                self._trade(ts, float(event["price"]), float(event["qty"]))

    def advance(self, now_ns: int) -> None:
        self._arrive_until(now_ns)
        self.now_ns = max(self.now_ns, now_ns)

    def take_reports(self, now_ns: int) -> np.ndarray:
        """Reports whose delivery time is <= ``now_ns``, in delivery order."""
        due = []
        while self._outgoing and self._outgoing[0][0] <= now_ns:
            due.append(heapq.heappop(self._outgoing)[2])
        out = REPORT_LAYOUT.zeros(len(due))
        for k, fields in enumerate(due):
            for name, value in fields.items():
                out[k][name] = value
        return out

    def pending(self) -> int:
        return len(self._arrivals) + len(self._outgoing)

    # -- matching --------------------------------------------------------------------------------
    def _arrive_until(self, ts: int) -> None:
        while self._arrivals and self._arrivals[0][0] <= ts:
            arrival, _, intent = heapq.heappop(self._arrivals)
            self._order(arrival, intent)

    def _report(self, ts: int, o, event: ReportEvent, price: float, qty: float, leaves: float, cum: float,
                fee: float = 0.0, reason: Reason = Reason.NONE) -> None:
        self._seq += 1
        fields = {"exch_ts_ns": ts, "order_id": o.client_order_id, "client_order_id": o.client_order_id,
                  "price": price, "qty": qty, "leaves_qty": leaves, "cum_qty": cum, "fee": fee,
                  "strategy_id": o.strategy_id, "symbol_id": o.symbol_id, "event": int(event), "side": o.side,
                  "reason": int(reason)}
        heapq.heappush(self._outgoing, (ts + self.latency_ns, self._seq, fields))

    def _order(self, ts: int, intent) -> None:
        action = int(intent["action"])
        o = _Resting(int(intent["strategy_id"]), int(intent["symbol_id"]), int(intent["client_order_id"]),
                     int(intent["side"]), float(intent["price"]), float(intent["qty"]), 0.0)
        if action == Action.CANCEL:
            target = self.resting.pop(int(intent["target_client_order_id"]), None)
            if target is None:
                self._report(ts, o, ReportEvent.REJECT, o.price, 0.0, 0.0, 0.0, reason=Reason.UNKNOWN_ORDER)
            else:
                self._report(ts, target, ReportEvent.CANCEL, target.price, target.leaves, 0.0, target.cum,
                             reason=Reason.USER_CANCEL)
            return
        if action != Action.NEW:
            self._report(ts, o, ReportEvent.REJECT, o.price, 0.0, 0.0, 0.0, reason=Reason.MALFORMED_ORDER)
            return
        tif = int(intent["tif"])
        market = int(intent["order_type"]) == OrderType.MARKET
        opposite = Side.SELL if o.side == Side.BUY else Side.BUY
        best_px, best_qty = self.best[opposite]
        crosses = best_px == best_px and (market or (best_px <= o.price if o.side == Side.BUY else best_px >= o.price))
        if crosses and tif == TimeInForce.POST_ONLY:
            self._report(ts, o, ReportEvent.REJECT, o.price, 0.0, 0.0, 0.0, reason=Reason.POST_ONLY_WOULD_CROSS)
            return
        self._report(ts, o, ReportEvent.ACK, o.price, o.leaves, o.leaves, 0.0)
        if crosses:
            qty = min(o.leaves, best_qty)
            if qty > 0:
                o.leaves = round(o.leaves - qty, 9)
                o.cum += qty
                self._report(ts, o, ReportEvent.FILL if o.leaves <= 0 else ReportEvent.PARTIAL, best_px, qty,
                             o.leaves, o.cum, best_px * qty * self.taker_fee_bps * 1e-4)
        if o.leaves <= 0:
            return
        if market or tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._report(ts, o, ReportEvent.CANCEL, o.price, o.leaves, 0.0, o.cum, reason=Reason.IOC_REMAINDER)
            return
        self.resting[o.client_order_id] = o

    def _fill_resting(self, ts: int, o: _Resting, qty: float) -> None:
        o.leaves = round(o.leaves - qty, 9)
        o.cum += qty
        done = o.leaves <= 0
        self._report(ts, o, ReportEvent.FILL if done else ReportEvent.PARTIAL, o.price, qty, max(o.leaves, 0.0),
                     o.cum, o.price * qty * self.maker_fee_bps * 1e-4)
        if done:
            del self.resting[o.client_order_id]

    def _cross_resting(self, ts: int) -> None:
        bid, ask = self.best[Side.BUY][0], self.best[Side.SELL][0]
        for o in list(self.resting.values()):
            if (o.side == Side.BUY and ask < o.price) or (o.side == Side.SELL and bid > o.price):
                self._fill_resting(ts, o, o.leaves)

    def _trade(self, ts: int, price: float, qty: float) -> None:
        for o in list(self.resting.values()):
            if qty <= 0:
                break
            if (o.side == Side.BUY and price < o.price) or (o.side == Side.SELL and price > o.price):
                take = min(o.leaves, qty)
                qty -= take
                self._fill_resting(ts, o, take)
