"""Tiny strategies and synthetic market data for the strategy and backtest tests.

Loaded by the tests as ``tests.unit.strategy_fixtures:Class`` (the module:Class path a user's own
strategy would take).
"""

from __future__ import annotations

import numpy as np

from hftshm.codes import EventFlag, EventKind, Side
from hftshm.strategies import Param, Strategy
from hftshm.transport.layout import load

EVENT = load("market_event")
SNAPSHOT = load("book_snapshot")
REPORT = load("execution_report")
T0 = 1_723_161_256_000_000_000


class BuyOnce(Strategy):
    """Buys one lot at the best bid on the first book it sees, then counts what it is told."""

    PARAMS = {"qty": Param(0.001, "order size", positive=True)}

    def initialize(self, params):
        super().initialize(params)
        self.books = 0
        self.ticks = 0
        self.reports = []

    def on_tick(self, events):
        self.ticks += len(events)

    def on_book(self, snapshot):
        self.books += 1
        if self.books == 1:
            self.buy(self.round_bid(float(snapshot["bid_px"][0])), self.params["qty"])

    def on_execution_report(self, report):
        self.reports.append(int(report["event"]))


class Raiser(Strategy):
    """Rests an order on its first book, raises on its third."""

    def initialize(self, params):
        super().initialize(params)
        self.books = 0

    def on_book(self, snapshot):
        self.books += 1
        if self.books == 1:
            self.buy(self.round_bid(float(snapshot["bid_px"][0]) - 10.0), 0.001)
        if self.books == 3:
            self.sell(self.round_ask(float(snapshot["ask_px"][0])), 0.001)  # queued, then dropped: it raises
            raise RuntimeError("boom on the third book")


class Unconstructible(Strategy):
    def __init__(self, needed):
        self.needed = needed


def bbo_events(quotes: list[tuple[float, float]], start_ns: int = T0, step_ns: int = 100_000_000,
               symbol_id: int = 1, bid_qty: float = 1.0, ask_qty: float = 1.0) -> np.ndarray:
    """Two BBO records (bid, then ask) per (bid, ask) quote, one message every ``step_ns``."""
    events = EVENT.zeros(2 * len(quotes))
    for k, (bid, ask) in enumerate(quotes):
        for j, (side, px, qty) in enumerate(((Side.BUY, bid, bid_qty), (Side.SELL, ask, ask_qty))):
            e = events[2 * k + j]
            e["seq"] = 2 * k + j
            e["exch_ts_ns"] = e["local_ts_ns"] = start_ns + k * step_ns
            e["price"], e["qty"], e["side"] = px, qty, side
            e["kind"] = EventKind.BBO
            e["symbol_id"] = symbol_id
            e["update_id"] = k + 1
            e["flags"] = EventFlag.LAST_IN_MESSAGE if j == 1 else 0
    return events


def book_events(quotes: list[tuple[float, float]], start_ns: int = T0, step_ns: int = 100_000_000,
                symbol_id: int = 1, qty: float = 1.0) -> np.ndarray:
    """An L2 book moving through ``quotes``: a snapshot of the first (bid, ask), then one depth message
    per quote that deletes the old best levels and adds the new ones, each followed by its BBO."""
    rows = []

    def row(ts, kind, side, px, q, uid, last):
        rows.append((ts, kind, side, px, q, uid, EventFlag.LAST_IN_MESSAGE if last else 0))

    bid0, ask0 = quotes[0]
    row(start_ns, EventKind.CLEAR, Side.NONE, 0.0, 0.0, 1, False)
    row(start_ns, EventKind.SNAPSHOT, Side.BUY, bid0, qty, 1, False)
    row(start_ns, EventKind.SNAPSHOT, Side.SELL, ask0, qty, 1, True)
    prev = (bid0, ask0)
    for k, (bid, ask) in enumerate(quotes):
        ts, uid = start_ns + k * step_ns, k + 2
        changes = []
        if bid != prev[0]:
            changes += [(Side.BUY, prev[0], 0.0), (Side.BUY, bid, qty)]
        if ask != prev[1]:
            changes += [(Side.SELL, prev[1], 0.0), (Side.SELL, ask, qty)]
        for j, (side, px, q) in enumerate(changes):
            row(ts, EventKind.DEPTH, side, px, q, uid, j == len(changes) - 1)
        row(ts, EventKind.BBO, Side.BUY, bid, qty, uid, False)
        row(ts, EventKind.BBO, Side.SELL, ask, qty, uid, True)
        prev = (bid, ask)
    events = EVENT.zeros(len(rows))
    for name, values in zip(("exch_ts_ns", "kind", "side", "price", "qty", "update_id", "flags"), zip(*rows)):
        events[name] = values
    events["local_ts_ns"] = events["exch_ts_ns"]
    events["symbol_id"] = symbol_id
    events["seq"] = np.arange(len(events))
    return events


def trade_event(price: float, qty: float, ts_ns: int, aggressor: Side = Side.SELL, symbol_id: int = 1) -> np.ndarray:
    e = EVENT.zeros(1)
    e["exch_ts_ns"] = e["local_ts_ns"] = ts_ns
    e["price"], e["qty"], e["side"], e["kind"] = price, qty, aggressor, EventKind.TRADE
    e["symbol_id"] = symbol_id
    e["flags"] = EventFlag.LAST_IN_MESSAGE
    return e


def snapshot(bid: float, ask: float, ts_ns: int = T0, symbol_id: int = 1) -> np.ndarray:
    s = SNAPSHOT.zeros(1)
    s["exch_ts_ns"] = ts_ns
    s["bid_px"][0, :] = np.nan
    s["ask_px"][0, :] = np.nan
    s["bid_px"][0, 0], s["ask_px"][0, 0] = bid, ask
    s["bid_qty"][0, 0], s["ask_qty"][0, 0] = 1.0, 1.0
    s["mid"] = 0.5 * (bid + ask)
    s["symbol_id"] = symbol_id
    s["valid"] = 1
    return s


def report(event: int, client_order_id: int, side: Side = Side.BUY, price: float = 0.0, qty: float = 0.0,
           leaves: float = 0.0, fee: float = 0.0, strategy_id: int = 1, ts_ns: int = T0, reason: int = 0) -> np.ndarray:
    r = REPORT.zeros(1)
    r["event"], r["client_order_id"], r["side"] = event, client_order_id, side
    r["price"], r["qty"], r["leaves_qty"], r["fee"] = price, qty, leaves, fee
    r["strategy_id"], r["symbol_id"], r["exch_ts_ns"], r["reason"] = strategy_id, 1, ts_ns, reason
    return r
