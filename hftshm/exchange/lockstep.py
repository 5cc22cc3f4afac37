"""The exchange worker's deterministic mode (``[platform] deterministic``; see hftshm.runtime.lockstep).

Reports wait here until their simulated arrival time (``local_ts_ns``: exchange time + response
latency, already non-decreasing: one connection), exactly as the backtest's report queue holds
them (``hftshm.backtest.venue_nb``). After each market message of time T the worker sends the ones
due by T and then a WATERMARK record. At the end of data the orders still in flight are applied
(for ``END_DRAIN_NS`` of market time) and the market closes: new orders and replaces are rejected
``market_closed`` (they would otherwise trade against a book that no longer moves), cancels are
answered at once.
"""

from __future__ import annotations

import numpy as np

from hftshm.codes import Action, Reason, ReportEvent
from hftshm.exchange.engine import REPORT_DTYPE
from hftshm.runtime.lockstep import END_DRAIN_NS, WATERMARK


class HeldReports:
    """FIFO of reports not yet due, in the order the simulator made them."""

    def __init__(self, capacity: int = 4096):
        self._buf = np.zeros(capacity, dtype=REPORT_DTYPE)
        self._head = 0
        self._tail = 0

    def __len__(self) -> int:
        return self._tail - self._head

    def push(self, reports: np.ndarray | None) -> None:
        if reports is None or not len(reports):
            return
        n = len(reports)
        if self._tail + n > len(self._buf):
            live = self._buf[self._head:self._tail]
            size = len(self._buf)
            while len(live) + n > size:
                size *= 2
            buf = np.zeros(size, dtype=REPORT_DTYPE)
            buf[:len(live)] = live
            self._buf, self._head, self._tail = buf, 0, len(live)
        self._buf[self._tail:self._tail + n] = reports
        self._tail += n

    def take_due(self, now_ns: int) -> np.ndarray:
        """The reports due by ``now_ns`` (a view, valid until the next push)."""
        times = self._buf["local_ts_ns"][self._head:self._tail]
        n = int(np.searchsorted(times, now_ns, side="right"))
        due = self._buf[self._head:self._head + n]
        self._head += n
        if self._head == self._tail:
            self._head = self._tail = 0
        return due

    def take_all(self) -> np.ndarray:
        return self.take_due(np.iinfo(np.int64).max)


def watermark(market_ts_ns: int) -> np.ndarray:
    """The record that says: every report due by ``market_ts_ns`` has been sent before me."""
    record = np.zeros(1, dtype=REPORT_DTYPE)
    record["event"] = WATERMARK
    record["exch_ts_ns"] = market_ts_ns
    return record


def market_closed_rejects(orders: np.ndarray, now_ns: int) -> np.ndarray:
    """REJECT(market_closed) for the new orders and replaces among ``orders``."""
    refused = orders[(orders["action"] == Action.NEW) | (orders["action"] == Action.REPLACE)]
    reports = np.zeros(len(refused), dtype=REPORT_DTYPE)
    for name in ("origin_ts_ns", "order_id", "client_order_id", "price", "qty", "strategy_id", "symbol_id", "side"):
        reports[name] = refused[name]
    reports["event"] = ReportEvent.REJECT
    reports["reason"] = Reason.MARKET_CLOSED
    reports["exch_ts_ns"] = now_ns
    return reports


def drain_until(last_market_ts_ns: int) -> int:
    return int(last_market_ts_ns) + END_DRAIN_NS
