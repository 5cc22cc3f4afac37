"""The ``PlatformView`` interface: one read-only snapshot of a running platform.

Everything the metrics collector and the dashboard show comes from a ``PlatformSnapshot``, taken
by whatever implements ``PlatformView.snapshot()``. The live implementation
(``hftshm.metrics.live.SharedMemoryView``) reads the supervisor's shared memory; tests build the
same view over shared-memory objects they create. A snapshot is plain data (numbers, strings,
copied arrays): taking one must not block a worker, and holding one holds no shared memory.

Conventions the collector relies on:

* ``WorkerSnapshot.counters`` is keyed by the worker class's ``COUNTER_NAMES``. A counter named
  ``reject_<reason>`` or ``rejects_<reason>`` (a ``hftshm.codes.Reason`` name in lower case) is exported as
  ``hftshm_rejects_total{worker, reason}``; a name ending ``_gauge`` is a level, not a count
  (``backlog_events_gauge`` -> ``hftshm_backlog_events{worker}``); any other name ``X`` is
  exported as ``hftshm_X_total{worker}``. Names ending ``_ms``/``_us``/``_ns`` are exported in
  seconds (``lag_ms_gauge`` -> ``hftshm_lag_seconds``), as Prometheus wants base units.
* ``histograms`` is keyed ``<worker>.<stage>`` (as in the metrics segment) and holds copies of the
  int64 histogram arrays (``hftshm.metrics.histogram_nb`` layout).
* Money is in quote currency, quantities in base units, times in seconds unless named ``_ns``; a
  position on an inverse (COIN-M) market is in contracts with its PnL in the coin, and says so
  (``PositionSnapshot.qty_unit``/``pnl_unit``); account totals convert it at its mark.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hftshm.metrics.histogram_nb import SLOTS


@dataclass(frozen=True)
class WorkerSnapshot:
    name: str
    process: str = ""
    pid: int = 0
    state: str = "stopped"  # hftshm.codes.WorkerState name, lower case
    up: bool = False  # running (or finished/draining) with a fresh heartbeat
    heartbeat_age_s: float = math.nan  # NaN before the first heartbeat
    restarts: int = 0
    work_count: int = 0
    idle_count: int = 0
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RingSnapshot:
    name: str
    layout: str = ""
    producer: str = ""
    consumer: str = ""
    capacity: int = 0
    backpressure: str = "block"
    occupancy: int = 0  # records written and not yet released by the consumer
    written_total: int = 0  # records committed by the producer since creation
    full_waits_total: int = 0  # times the producer found the ring full and waited (block mode)
    dropped_total: int = 0  # records the producer dropped because the ring was full (drop mode)


@dataclass(frozen=True)
class PositionSnapshot:
    strategy: str
    symbol: str
    quantity: float = 0.0  # signed, base units
    avg_price: float = math.nan
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    fees: float = 0.0
    mark_price: float = math.nan
    market: str = ""  # spot, linear, inverse ("" unknown: taken as linear)
    qty_unit: str = ""  # "BTC", "contracts (10 USD)" (hftshm.units)
    pnl_unit: str = ""  # PnL and fees: "USDT", or the coin on an inverse market

    @property
    def net_pnl(self) -> float:
        """Realized + unrealized - fees, in ``pnl_unit``."""
        return self.realized_pnl + self.unrealized_pnl - self.fees

    @property
    def account_rate(self) -> float:
        """Account units (quote currency) per unit of this position's PnL: 1, or its mark for an inverse
        position (0 before it has one)."""
        if self.market != "inverse":
            return 1.0
        return self.mark_price if self.mark_price > 0 else 0.0

    @property
    def net_pnl_account(self) -> float:
        """``net_pnl`` in the account's unit (quote currency): an inverse position's coin at its mark."""
        return self.net_pnl * self.account_rate


@dataclass(frozen=True)
class StrategySnapshot:
    name: str
    state: str = "running"  # hftshm.codes.StrategyState name, lower case
    symbol: str = ""
    strategy_id: int = 0
    worker: str = ""  # the strategy worker hosting it (its control ring is control.<worker>)
    signals: int = 0
    intents: int = 0
    fills: int = 0
    rejects: int = 0
    open_orders: int = 0


@dataclass(frozen=True)
class RiskSnapshot:
    kill_switch: bool = False
    trading_state: str = "active"  # hftshm.codes.TradingState name, lower case
    orders_checked: int = 0
    orders_approved: int = 0
    open_orders: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)  # Reason name -> count
    # the risk stage's own account, all strategies and symbols, quote currency
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    fees: float = 0.0
    daily_pnl: float = 0.0
    changed_unix_ns: int = 0  # last kill switch / trading state change


@dataclass
class PlatformSnapshot:
    running: bool = False
    run_id: str = ""
    taken_unix_ns: int = 0
    workers: list[WorkerSnapshot] = field(default_factory=list)
    rings: list[RingSnapshot] = field(default_factory=list)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    positions: list[PositionSnapshot] = field(default_factory=list)
    strategies: list[StrategySnapshot] = field(default_factory=list)
    risk: RiskSnapshot | None = None
    # platform-wide levels that belong to no worker, e.g. {"oms_writer_lag_records": 12}
    gauges: dict[str, float] = field(default_factory=dict)

    @property
    def total_pnl(self) -> float:
        """Realized + unrealized - fees in the quote currency: summed over positions (an inverse position's
    coin PnL at its mark), else the risk stage's account."""
        if not self.positions and self.risk is not None:
            return float(self.risk.realized_pnl + self.risk.unrealized_pnl - self.risk.fees)
        return float(sum(p.net_pnl_account for p in self.positions))

    @property
    def currencies(self) -> list[str]:
        """The settlement currencies of the positions (``pnl_unit``: USDT, or the coin of an inverse symbol)."""
        return sorted({p.pnl_unit for p in self.positions if p.pnl_unit})

    @property
    def several_currencies(self) -> bool:
        """True when the positions settle in more than one currency: there is then no one total PnL
        (``pnl_by_currency`` has one per currency; ``total_pnl`` is risk's conversion at the marks)."""
        return len(self.currencies) > 1

    def pnl_by_currency(self) -> dict[str, dict[str, Any]]:
        """Per settlement currency: realized, unrealized, fees and PnL of its symbols, added up in that
        currency and never across currencies (``hftshm.units.totals_by_currency``)."""
        from hftshm.units import totals_by_currency

        rows = {name: row for name, row in self.by_symbol().items() if row["currency"]}
        return totals_by_currency(rows, {name: row["currency"] for name, row in rows.items()},
                                  ("realized_pnl", "unrealized_pnl", "fees", "pnl"))

    def by_symbol(self) -> dict[str, dict[str, Any]]:
        """Positions and PnL per symbol, summed over the strategies trading it; a position is in its
        symbol's own units, so symbols are never added together."""
        out: dict[str, dict[str, Any]] = {}
        for p in self.positions:
            row = out.setdefault(p.symbol, {"strategies": [], "quantity": 0.0, "realized_pnl": 0.0,
                                            "unrealized_pnl": 0.0, "fees": 0.0, "pnl": 0.0,
                                            "mark_price": p.mark_price, "currency": p.pnl_unit,
                                            "qty_unit": p.qty_unit})
            row["strategies"].append(p.strategy)
            row["quantity"] += p.quantity
            row["realized_pnl"] += p.realized_pnl
            row["unrealized_pnl"] += p.unrealized_pnl
            row["fees"] += p.fees
            row["pnl"] += p.realized_pnl + p.unrealized_pnl - p.fees
        return dict(sorted(out.items()))

    def worker(self, name: str) -> WorkerSnapshot | None:
        return next((w for w in self.workers if w.name == name), None)

    def zeroed(self) -> "PlatformSnapshot":
        """The same workers, rings, histograms and names with every value zero: what is exported
        before a platform runs, so every series exists from the first scrape."""
        return PlatformSnapshot(
            running=False,
            run_id=self.run_id,
            taken_unix_ns=time.time_ns(),
            workers=[WorkerSnapshot(w.name, w.process, counters={k: 0 for k in w.counters}) for w in self.workers],
            rings=[RingSnapshot(r.name, r.layout, r.producer, r.consumer, r.capacity, r.backpressure)
                   for r in self.rings],
            histograms={k: np.zeros(SLOTS, dtype=np.int64) for k in self.histograms},
            positions=[PositionSnapshot(p.strategy, p.symbol, market=p.market, qty_unit=p.qty_unit, pnl_unit=p.pnl_unit)
                       for p in self.positions],
            strategies=[StrategySnapshot(s.name, "stopped", s.symbol) for s in self.strategies],
            risk=RiskSnapshot(rejects_by_reason={k: 0 for k in self.risk.rejects_by_reason}) if self.risk else None,
            gauges={k: 0.0 for k in self.gauges},
        )

    # -- JSON (the last run's values survive the run; /api/metrics/data) ------------------------

    def to_dict(self) -> dict[str, Any]:
        def nan_to_none(value):
            return None if isinstance(value, float) and not math.isfinite(value) else value

        def plain(obj) -> dict:
            return {k: nan_to_none(v) for k, v in asdict(obj).items()}

        return {
            "running": self.running,
            "run_id": self.run_id,
            "taken_unix_ns": self.taken_unix_ns,
            "workers": [plain(w) for w in self.workers],
            "rings": [plain(r) for r in self.rings],
            # sparse: [[slot, count], ...] of the non-zero slots
            "histograms": {k: [[int(i), int(v[i])] for i in np.flatnonzero(v)] for k, v in self.histograms.items()},
            "positions": [plain(p) for p in self.positions],
            "strategies": [plain(s) for s in self.strategies],
            "risk": plain(self.risk) if self.risk else None,
            "gauges": dict(self.gauges),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PlatformSnapshot":
        def build(kind, raw):
            known = {f.name for f in fields(kind)}
            values = {k: (math.nan if v is None and k in _NAN_FIELDS else v) for k, v in raw.items() if k in known}
            return kind(**values)

        histograms = {}
        for name, pairs in data.get("histograms", {}).items():
            counts = np.zeros(SLOTS, dtype=np.int64)
            for slot, count in pairs:
                if 0 <= int(slot) < SLOTS:
                    counts[int(slot)] = int(count)
            histograms[name] = counts
        risk = data.get("risk")
        return cls(
            running=bool(data.get("running", False)),
            run_id=str(data.get("run_id", "")),
            taken_unix_ns=int(data.get("taken_unix_ns", 0)),
            workers=[build(WorkerSnapshot, w) for w in data.get("workers", [])],
            rings=[build(RingSnapshot, r) for r in data.get("rings", [])],
            histograms=histograms,
            positions=[build(PositionSnapshot, p) for p in data.get("positions", [])],
            strategies=[build(StrategySnapshot, s) for s in data.get("strategies", [])],
            risk=build(RiskSnapshot, risk) if risk else None,
            gauges={str(k): float(v) for k, v in data.get("gauges", {}).items()},
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "PlatformSnapshot":
        return cls.from_dict(json.loads(text))


_NAN_FIELDS = {"heartbeat_age_s", "avg_price", "mark_price"}


@runtime_checkable
class PlatformView(Protocol):
    """What the collector and the web app read. ``snapshot()`` is called once per scrape or poll
    (about once a second), from a web-server thread; it must be thread-safe and never block on a
    worker. It returns ``PlatformSnapshot(running=False, ...)`` when no platform is attached."""

    def snapshot(self) -> PlatformSnapshot: ...
