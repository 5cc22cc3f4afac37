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

import numpy as np

from hftshm.backtest import simple_fill_nb as nb
from hftshm.codes import Action
from hftshm.transport.layout import load

REPORT_LAYOUT = load("execution_report")
ORDER_LAYOUT = load("order")


def orders_from_intents(intents: np.ndarray) -> np.ndarray:
    """``order`` records for intents with no OMS in between: order id = client order id."""
    orders = ORDER_LAYOUT.zeros(len(intents))
    for name in ("origin_ts_ns", "market_ts_ns", "client_order_id", "target_client_order_id", "price", "qty",
                 "strategy_id", "symbol_id", "action", "side", "order_type", "tif"):
        orders[name] = intents[name]
    orders["ts_ns"] = intents["market_ts_ns"]
    orders["order_id"] = intents["client_order_id"]
    orders["target_order_id"] = np.where(intents["action"] == Action.NEW, 0, intents["target_client_order_id"])
    orders["owner"] = intents["strategy_id"]
    return orders


class SimpleFillVenue:
    fill_model = "simple (unit tests only)"

    def __init__(self, latency_ns: int = 1_000_000, maker_fee_bps: float = 0.0, taker_fee_bps: float = 5.0):
        self.latency_ns = int(latency_ns)
        self.maker_fee_bps = maker_fee_bps
        self.taker_fee_bps = taker_fee_bps
        self.latency_model = {"model": "constant", "entry_ns": self.latency_ns, "response_ns": self.latency_ns}
        self.top, self.resting = nb.new_state()
        self._out = REPORT_LAYOUT.zeros(256)
        self._arrivals: list[tuple[int, int, np.void]] = []  # (arrival ns, seq, order)
        self._outgoing: list[tuple[int, int, np.void]] = []  # (delivery ns, seq, report)
        self._seq = 0

    def on_intents(self, intents: np.ndarray) -> None:
        for order in orders_from_intents(intents):
            self._seq += 1
            heapq.heappush(self._arrivals, (int(order["market_ts_ns"]) + self.latency_ns, self._seq, order))

    def on_market(self, events: np.ndarray) -> None:
        for event in events:
            ts = int(event["exch_ts_ns"])
            self.advance(ts)
            self._emit(nb.on_event(self.top, self.resting, event, self.maker_fee_bps, self._out, 0))

    def advance(self, now_ns: int) -> None:
        while self._arrivals and self._arrivals[0][0] <= now_ns:
            arrival, _, order = heapq.heappop(self._arrivals)
            self._emit(nb.on_order(self.top, self.resting, order, arrival, self.maker_fee_bps, self.taker_fee_bps,
                                   self._out, 0))

    def _emit(self, n: int) -> None:
        for report in self._out[:n]:
            self._seq += 1
            heapq.heappush(self._outgoing, (int(report["exch_ts_ns"]) + self.latency_ns, self._seq, report.copy()))

    def take_reports(self, now_ns: int) -> np.ndarray:
        """Reports whose delivery time is <= ``now_ns``, in delivery order."""
        due = []
        while self._outgoing and self._outgoing[0][0] <= now_ns:
            due.append(heapq.heappop(self._outgoing)[2])
        return np.array(due, dtype=REPORT_LAYOUT.dtype) if due else REPORT_LAYOUT.zeros(0)

    def pending(self) -> int:
        return len(self._arrivals) + len(self._outgoing)
