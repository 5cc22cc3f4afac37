"""``RiskEngine``: pre-trade risk in one process, without rings (tests, benchmarks, backtests).

The worker (``hftshm.risk.worker``) drives the same kernels from rings; this class is the friendly
Python surface over them: validated arrays in, decisions and records out::

    engine = RiskEngine(config.risk, config.symbols)
    engine.on_marks(book_snapshots)                  # mark prices (needed by the price band)
    decisions = engine.check(intents, now_ns)        # 0 = approved, else a hftshm.codes.Reason
    orders, rejects = engine.process(intents, now_ns)  # the order / execution_report records
    engine.on_reports(execution_reports)             # fills, acks, cancels, rejects from the OMS
"""

from __future__ import annotations

import time

import numpy as np

from hftshm.codes import Action, OrderType, Side, TimeInForce
from hftshm.risk import accounting_nb, checks_nb, emit_nb
from hftshm.risk.config import RiskConfig
from hftshm.risk.control import ControlBlock
from hftshm.risk.state import RiskState
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load

INTENT = load("order_intent")
ORDER = load("order")
REPORT = load("execution_report")
SNAPSHOT = load("book_snapshot")


def _require(array: np.ndarray, layout, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != layout.dtype:
        found = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"{what} must be a numpy array of the {layout.describe()} layout, found {found}")
    return array


class RiskEngine:
    def __init__(self, config: RiskConfig, symbols: SymbolTable, control: ControlBlock | None = None):
        self.state = RiskState(config, symbols)
        self.control = control if control is not None else ControlBlock.private(config.initial_state)
        self._decisions = np.zeros(0, dtype=np.uint16)
        self._targets = np.zeros(0, dtype=np.int64)
        self._kill_cancel_ids = 0

    def _scratch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._decisions) < n:
            size = max(n, 1024)
            self._decisions = np.zeros(size, dtype=np.uint16)
            self._targets = np.zeros(size, dtype=np.int64)
        return self._decisions, self._targets

    def check(self, intents: np.ndarray, now_ns: int = 0) -> np.ndarray:
        """Decisions for ``intents`` (a copy): 0 approved, else the Reason. Approval reserves exposure."""
        _require(intents, INTENT, "intents")
        decisions, targets = self._scratch(len(intents))
        s = self.state
        checks_nb.check_intents(intents, 0, -1, len(intents), decisions, targets, np.int64(now_ns), s.symbols,
                                s.strategies, s.account, s.table, self.control.words)
        return decisions[: len(intents)].copy()

    def process(self, intents: np.ndarray, now_ns: int = 0, publish_ns: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Check ``intents`` and return ``(orders, rejects)``: order records for the OMS, REJECT reports."""
        _require(intents, INTENT, "intents")
        n = len(intents)
        decisions, targets = self._scratch(n)
        s = self.state
        approved = checks_nb.check_intents(intents, 0, -1, n, decisions, targets, np.int64(now_ns), s.symbols,
                                           s.strategies, s.account, s.table, self.control.words)
        orders = ORDER.zeros(approved)
        rejects = REPORT.zeros(n - approved)
        publish_ns = time.perf_counter_ns() if publish_ns is None else publish_ns
        emit_nb.emit_decisions(intents, 0, -1, n, decisions, targets, orders, np.int64(-1), np.int64(0), rejects,
                               np.int64(-1), np.int64(0), np.int64(publish_ns))
        return orders, rejects

    def on_reports(self, reports: np.ndarray) -> int:
        """Apply execution reports (fills move positions and PnL; acks/cancels/rejects move exposure)."""
        _require(reports, REPORT, "reports")
        s = self.state
        return accounting_nb.apply_reports(reports, 0, -1, len(reports), s.symbols, s.account, s.table,
                                           self.control.words)

    def on_marks(self, snapshots: np.ndarray) -> int:
        """Mark positions to the snapshots' mids (invalid books and NaN mids are skipped)."""
        _require(snapshots, SNAPSHOT, "snapshots")
        s = self.state
        return accounting_nb.apply_marks(snapshots, 0, -1, len(snapshots), s.symbols, s.account, self.control.words)

    def kill_cancels(self, publish_ns: int = 0, market_ts_ns: int = 0) -> np.ndarray:
        """Cancel orders for every open order not already being cancelled (what the kill switch emits)."""
        s = self.state
        out = ORDER.zeros(int(s.account[0]["open_orders"]))
        first_id = -(time.time_ns() + self._kill_cancel_ids)
        _, written = emit_nb.emit_kill_cancels(s.table, 0, out, np.int64(-1), np.int64(0), len(out),
                                               np.int64(publish_ns), np.int64(market_ts_ns), np.int64(first_id))
        self._kill_cancel_ids += written
        self.control.array[0]["kill_cancels"] += written
        return out[:written]

    def warm_up(self) -> None:
        """Compile every kernel on throwaway state (first start compiles; later starts load the cache)."""
        scratch = RiskEngine(self.state.config, self.state.symbol_table)
        sid = next(iter(self.state.symbol_table)).symbol_id
        snap = SNAPSHOT.zeros(1)
        snap[0]["symbol_id"], snap[0]["valid"], snap[0]["mid"] = sid, 1, 100.0
        scratch.on_marks(snap)
        intents = INTENT.zeros(1)
        intents[0] = make_intent(sid, Side.BUY, 100.0, 0.001)
        scratch.check(intents)
        scratch.process(intents)
        reports = REPORT.zeros(1)
        scratch.on_reports(reports)
        scratch.kill_cancels()


def make_intent(symbol_id: int, side: int, price: float, qty: float, *, client_order_id: int = 1,
                strategy_id: int = 1, action: int = Action.NEW, target_client_order_id: int = 0,
                order_type: int = OrderType.LIMIT, tif: int = TimeInForce.GTC, market_ts_ns: int = 0) -> np.void:
    """One ``order_intent`` record (tests, examples, warm-up)."""
    rec = INTENT.zeros(1)[0]
    rec["symbol_id"], rec["side"], rec["price"], rec["qty"] = symbol_id, side, price, qty
    rec["client_order_id"], rec["strategy_id"], rec["action"] = client_order_id, strategy_id, action
    rec["target_client_order_id"], rec["order_type"], rec["tif"] = target_client_order_id, order_type, tif
    rec["market_ts_ns"] = market_ts_ns
    return rec
