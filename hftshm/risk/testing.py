"""Record builders for risk tests, examples and benchmarks (no test framework needed), and two tiny
workers (an intent source and a decision sink) for process-level tests of the risk worker."""

from __future__ import annotations

import numpy as np

from hftshm.codes import Action, OrderType, ReportEvent, Side, TimeInForce
from hftshm.config import Section
from hftshm.risk.config import RiskConfig
from hftshm.risk.engine import INTENT, REPORT, SNAPSHOT, RiskEngine
from hftshm.runtime.worker import Worker, WorkerContext
from hftshm.symbols import Symbol, SymbolTable

BTC = 1
ETH = 2
SYMBOLS = SymbolTable([Symbol("BTCUSDT", BTC, 0.1, 0.001), Symbol("ETHUSDT", ETH, 0.01, 0.001)])


def risk_config(**overrides) -> RiskConfig:
    """``[risk]`` with the shipped defaults and ``overrides`` (key = value as in the TOML)."""
    return RiskConfig.from_section(Section("risk", dict(overrides)), SYMBOLS)


def engine(mid: float | None = 61_000.0, control=None, **overrides) -> RiskEngine:
    """An engine over BTCUSDT/ETHUSDT, BTCUSDT marked at ``mid`` (None: no mark yet)."""
    eng = RiskEngine(risk_config(**overrides), SYMBOLS, control)
    if mid is not None:
        eng.on_marks(snapshots((BTC, mid)))
    return eng


def intents(*rows: dict) -> np.ndarray:
    """order_intent records from dicts; defaults: NEW LIMIT GTC BUY 0.1 BTCUSDT @ 61,000, strategy 1,
    client ids 1, 2, 3, ... in order."""
    out = INTENT.zeros(len(rows))
    for i, row in enumerate(rows):
        rec = out[i]
        rec["symbol_id"] = BTC
        rec["action"] = Action.NEW
        rec["side"] = Side.BUY
        rec["order_type"] = OrderType.LIMIT
        rec["tif"] = TimeInForce.GTC
        rec["price"] = 61_000.0
        rec["qty"] = 0.1
        rec["strategy_id"] = 1
        rec["client_order_id"] = i + 1
        for key, value in row.items():
            rec[key] = value
    return out


def reports(*rows: dict) -> np.ndarray:
    """execution_report records from dicts (defaults: FILL, BUY, BTCUSDT, strategy 1)."""
    out = REPORT.zeros(len(rows))
    for i, row in enumerate(rows):
        rec = out[i]
        rec["symbol_id"] = BTC
        rec["event"] = ReportEvent.FILL
        rec["side"] = Side.BUY
        rec["strategy_id"] = 1
        for key, value in row.items():
            rec[key] = value
    return out


def fill(client_order_id: int, side: int, qty: float, price: float, *, leaves: float = 0.0, fee: float = 0.0,
         symbol_id: int = BTC, strategy_id: int = 1) -> dict:
    event = ReportEvent.PARTIAL if leaves > 0 else ReportEvent.FILL
    return {"client_order_id": client_order_id, "side": side, "qty": qty, "price": price, "leaves_qty": leaves,
            "fee": fee, "symbol_id": symbol_id, "strategy_id": strategy_id, "event": event}


def snapshots(*marks: tuple[int, float], valid: int = 1) -> np.ndarray:
    """book_snapshot records carrying only (symbol_id, mid)."""
    out = SNAPSHOT.zeros(len(marks))
    for i, (symbol_id, mid) in enumerate(marks):
        out[i]["symbol_id"] = symbol_id
        out[i]["mid"] = mid
        out[i]["valid"] = valid
    return out


# -- workers for process-level tests (importable by "module:Class" from a topology) ---------------


class IntentSource(Worker):
    """Marks BTCUSDT at ``mid``, sends ``first`` intents (every ``bad_every``-th oversize), then waits
    for the kill switch and sends ``second`` more: what a strategy would keep doing."""

    COUNTER_NAMES = ("sent",)

    def __init__(self, first: int = 1000, second: int = 100, mid: float = 61_000.0, bad_every: int = 10):
        self.first, self.second, self.mid, self.bad_every = first, second, mid, bad_every

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        self.book = next(r for r in ctx.outputs.values() if r.layout.name == "book_snapshot")
        self.out = next(r for r in ctx.outputs.values() if r.layout.name == "order_intent")
        self.sent = 0
        self.marked = False

    def do_work(self) -> int:
        if not self.marked:
            self.marked = self.book.try_write(snapshots((BTC, self.mid))[0])
            return 1
        phase_end = self.first
        if self.sent >= self.first:
            if not self.ctx.control.kill_switch:
                return 0
            phase_end = self.first + self.second
        if self.sent >= phase_end:
            return 0
        view = self.out.claim(min(256, phase_end - self.sent))
        n = len(view)
        if n:
            ids = np.arange(self.sent + 1, self.sent + n + 1)
            rows = intents(*({"client_order_id": int(i), "qty": 5.0 if i % self.bad_every == 0 else 0.001,
                              "side": Side.BUY if i % 2 else Side.SELL} for i in ids))
            rows["seq"] = ids - 1
            view[:] = rows
            self.out.commit(n)
            self.sent += n
            self.ctx.counters[0] = self.sent
        return n

    def is_done(self) -> bool:
        return self.sent >= self.first + self.second


class DecisionSink(Worker):
    """Counts what risk published: orders by kind and rejects by reason."""

    COUNTER_NAMES = ("orders", "kill_cancels", "rejects", "reject_kill_switch", "reject_max_order_size")

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        self.rings = list(ctx.inputs.values())

    def do_work(self) -> int:
        from hftshm.codes import Reason
        from hftshm.risk.emit_nb import ORDER_FLAG_KILL_SWITCH

        c = self.ctx.counters
        work = 0
        for ring in self.rings:
            view = ring.poll(1024)
            if not len(view):
                continue
            if ring.layout.name == "order":
                kill = int(np.count_nonzero(view["flags"] == ORDER_FLAG_KILL_SWITCH))
                c[0] += len(view) - kill
                c[1] += kill
            else:
                c[2] += len(view)
                c[3] += int(np.count_nonzero(view["reason"] == Reason.KILL_SWITCH))
                c[4] += int(np.count_nonzero(view["reason"] == Reason.MAX_ORDER_SIZE))
            work += len(view)
            ring.release(len(view))
        return work
