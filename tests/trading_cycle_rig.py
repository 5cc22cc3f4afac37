"""The composite trading process's four workers in this process, on their own rings, for tests of
the compiled trading cycle: the test plays the feed (market events, book snapshots) and reads what
comes out (orders to the exchange, the OMS's events)."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import numpy as np

from hftshm.exchange.worker import ExchangeWorker
from hftshm.metrics.histogram import new_histogram
from hftshm.oms.worker import OmsWorker
from hftshm.risk.control import ControlBlock
from hftshm.risk.worker import RiskWorker
from hftshm.runtime.worker import WorkerContext
from hftshm.strategies.worker import StrategyWorker
from hftshm.transport.layout import load
from hftshm.transport.ring import Ring

BTC = 1
RINGS = {  # name: (layout, producer, consumer); "feed"/"writer" are the test
    "md.strategies": ("market_event", "feed", "strategies"),
    "book.strategies": ("book_snapshot", "feed", "strategies"),
    "book.risk": ("book_snapshot", "feed", "risk"),
    "md.exchange": ("market_event", "feed", "exchange"),
    "intents": ("order_intent", "strategies", "risk"),
    "risk.rejects": ("execution_report", "risk", "strategies"),
    "orders": ("order", "risk", "oms"),
    "exchange.orders": ("order", "oms", "exchange"),
    "exchange.reports": ("execution_report", "exchange", "oms"),
    "oms.reports.strategies": ("execution_report", "oms", "strategies"),
    "oms.reports.risk": ("execution_report", "oms", "risk"),
    "oms.events": ("order_event", "oms", "writer"),
}
MARKET_MAKER = {"market_maker": {"class": "market_maker", "symbol": "BTCUSDT", "spread_bps": 2.0, "quantity": 0.01,
                                 "max_inventory": 0.1, "min_requote_interval_ms": 0.0}}


class TradingRig:
    def __init__(self, run_dir: Path, strategies: dict | None = None, capacity: int = 4096):
        self.prefix = f"hftshm_{os.getpid()}_{uuid.uuid4().hex[:6]}_tc_"
        self.rings = {name: Ring.create(self.prefix + "ring." + name, layout, capacity)
                      for name, (layout, _p, _c) in RINGS.items()}
        self.control = ControlBlock.create(self.prefix + "control")
        self.run_dir = Path(run_dir)

        def ctx(name, worker_class, params):
            return WorkerContext(
                name=name, params=params,
                inputs={k: self.rings[k] for k, (_l, _p, c) in RINGS.items() if c == name},
                outputs={k: self.rings[k] for k, (_l, p, _c) in RINGS.items() if p == name}, config=None,
                counters=np.zeros(64, dtype=np.int64),
                histograms={h: new_histogram() for h in getattr(worker_class, "HISTOGRAMS", ())},
                run_dir=self.run_dir, log=logging.getLogger(f"test.{name}"), control=self.control)

        self.oms = OmsWorker(oms={"database_url": f"sqlite:///{self.run_dir / 'oms.sqlite'}"})
        self.exchange = ExchangeWorker()
        self.risk = RiskWorker(batch=256)
        self.strategies = StrategyWorker(first_client_order_id=1)
        self.workers = [self.strategies, self.risk, self.oms, self.exchange]
        for name, worker, params in (("oms", self.oms, {}), ("exchange", self.exchange, {}),
                                     ("risk", self.risk, {"risk": {"max_order_size": 1.0}}),
                                     ("strategies", self.strategies,
                                      {"strategies": strategies if strategies is not None else MARKET_MAKER})):
            worker.on_start(ctx(name, type(worker), params))
        while self.oms.recovering:  # the OMS recovers (an empty database) in its first step
            self.oms.do_work()

    # -- the feed -------------------------------------------------------------------------------
    def book(self, bid: float, ask: float, exch_ts_ns: int, publish_ts_ns: int = 0) -> None:
        snap = load("book_snapshot").zeros(1)
        snap["symbol_id"] = BTC
        snap["bid_px"][0, 0], snap["ask_px"][0, 0] = bid, ask
        snap["bid_qty"][0, 0], snap["ask_qty"][0, 0] = 1.0, 1.0
        snap["mid"] = 0.5 * (bid + ask)
        snap["valid"] = 1
        snap["exch_ts_ns"] = exch_ts_ns
        snap["publish_ts_ns"] = publish_ts_ns
        for name in ("book.strategies", "book.risk"):
            _write(self.rings[name], snap)

    def events(self, records: np.ndarray) -> None:
        for name in ("md.strategies", "md.exchange"):
            _write(self.rings[name], records)

    # -- what comes out -------------------------------------------------------------------------
    def drain_events(self) -> np.ndarray:
        return _drain(self.rings["oms.events"])

    def peek_exchange_orders(self) -> int:
        return self.rings["exchange.orders"].producer_position

    def close(self) -> None:
        for worker in reversed(self.workers):
            try:
                worker.on_close()
            except Exception:
                pass
        for ring in self.rings.values():
            ring.unlink()
            ring.close()
        self.control.close()
        self.control.unlink()


def _write(ring: Ring, records: np.ndarray) -> None:
    view = ring.claim(len(records))
    assert len(view) == len(records)
    view[:] = records
    ring.commit(len(records))


def _drain(ring: Ring) -> np.ndarray:
    parts = []
    while True:
        view = ring.poll(4096)
        if not len(view):
            return np.concatenate(parts) if parts else view.copy()
        parts.append(view.copy())
        ring.release(len(view))
