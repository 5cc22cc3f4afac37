"""``SharedMemoryView``: the live ``PlatformView``, read straight from a run's shared memory.

It reads, never writes: the worker status table (heartbeats, counters), each ring's header
(cursors and full/drop counters, ``hftshm.transport.descriptor``), the metrics segment
(histograms), the risk control block (kill switch, trading state, rejects, PnL) and, when given,
the strategy status rows (positions and PnL per strategy). A snapshot copies what it needs, so
it costs microseconds and no worker ever waits for it.

Two ways to build one:

* in the supervisor, over objects it already holds: ``SharedMemoryView(status_words=...,
  workers=[WorkerBinding(...)], rings=[RingBinding(..., ctrl=ring.ctrl)], metrics=segment,
  control=control_block)``;
* anywhere else, from the run manifest: ``SharedMemoryView.from_manifest(manifest)`` attaches
  everything by name (read-only use) and ``close()`` detaches.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hftshm.codes import Reason, StrategyState, TradingState, WorkerState
from hftshm.metrics.snapshot import (
    PlatformSnapshot,
    PositionSnapshot,
    RingSnapshot,
    RiskSnapshot,
    StrategySnapshot,
    WorkerSnapshot,
)
from hftshm.transport import descriptor as d

# states in which a worker with a fresh heartbeat counts as up
_UP_STATES = {int(WorkerState.RUNNING), int(WorkerState.DRAINING), int(WorkerState.FINISHED)}


@dataclass(frozen=True)
class WorkerBinding:
    name: str
    row: int  # row in the status table
    process: str = ""
    counter_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class RingBinding:
    name: str
    ctrl: np.ndarray  # the ring's int64 header words (``Ring.ctrl``)
    layout: str = ""
    producer: str = ""
    consumer: str = ""


def ring_snapshot(binding: RingBinding) -> RingSnapshot:
    ctrl = binding.ctrl
    capacity = int(ctrl[d.CAPACITY_WORD])
    # consumer first: then occupancy can only be overstated by a concurrent commit, never negative
    released = int(ctrl[d.CONSUMER_CURSOR])
    published = int(ctrl[d.PRODUCER_CURSOR])
    return RingSnapshot(
        name=binding.name,
        layout=binding.layout,
        producer=binding.producer,
        consumer=binding.consumer,
        capacity=capacity,
        backpressure="drop" if int(ctrl[d.BACKPRESSURE_WORD]) == 1 else "block",
        occupancy=max(0, min(capacity, published - released)),
        written_total=published,
        full_waits_total=int(ctrl[d.FULL_EVENTS]),
        dropped_total=int(ctrl[d.DROPS]),
    )


def _state_name(enum, value: int, default: str) -> str:
    try:
        return enum(int(value)).name.lower()
    except ValueError:
        return default


class SharedMemoryView:
    """A ``PlatformView`` over live shared memory; thread-safe for readers (it only copies)."""

    def __init__(
        self,
        *,
        status_words: np.ndarray | None = None,
        workers: list[WorkerBinding] | tuple[WorkerBinding, ...] = (),
        rings: list[RingBinding] | tuple[RingBinding, ...] = (),
        metrics=None,
        control=None,
        strategy_rows: np.ndarray | dict[str, np.ndarray] | None = None,
        symbol_names: dict[int, str] | None = None,
        symbol_units: dict[int, dict] | None = None,
        gauges: Callable[[], dict[str, float]] | None = None,
        run_id: str = "",
        stale_after_s: float = 5.0,
        running: Callable[[], bool] | None = None,
    ):
        self.status_words = status_words
        self.workers = tuple(workers)
        self.rings = tuple(rings)
        self.metrics = metrics  # hftshm.metrics.segment.MetricsSegment
        self.control = control  # hftshm.risk.control.ControlBlock
        # strategy_status records, by strategy worker name (one array: worker "strategies")
        self.strategy_rows = {"strategies": strategy_rows} if isinstance(strategy_rows, np.ndarray) else strategy_rows
        self.symbol_names = dict(symbol_names or {})
        self.symbol_units = dict(symbol_units or {})  # id -> market, qty_unit, pnl_unit (hftshm.units.units_by_id)
        self.gauges = gauges
        self.run_id = run_id
        self.stale_after_s = stale_after_s
        self._running = running
        self._owned: list = []  # attachments from_manifest made, closed by close()

    # -- snapshot --------------------------------------------------------------------------------

    def snapshot(self) -> PlatformSnapshot:
        running = self._running() if self._running is not None else self.status_words is not None
        return PlatformSnapshot(
            running=bool(running),
            run_id=self.run_id,
            taken_unix_ns=time.time_ns(),
            workers=self._workers(),
            rings=[ring_snapshot(r) for r in self.rings],
            histograms=self.metrics.snapshot() if self.metrics is not None else {},
            positions=self._positions(),
            strategies=self._strategies(),
            risk=self._risk(),
            gauges=dict(self.gauges()) if self.gauges is not None else {},
        )

    def _workers(self) -> list[WorkerSnapshot]:
        if self.status_words is None:
            return [WorkerSnapshot(w.name, w.process, counters={c: 0 for c in w.counter_names}) for w in self.workers]
        from hftshm.runtime import status as st

        words = self.status_words.copy()
        now_ns = time.monotonic_ns()  # CLOCK_MONOTONIC is system-wide: comparable across processes
        out = []
        for w in self.workers:
            row = words[w.row]
            heartbeat = int(row[st.HEARTBEAT_NS])
            age_s = (now_ns - heartbeat) / 1e9 if heartbeat > 0 else math.nan
            state = int(row[st.STATE])
            up = state in _UP_STATES and heartbeat > 0 and age_s <= self.stale_after_s
            counters = row[st.COUNTERS: st.COUNTERS + st.MAX_COUNTERS]
            out.append(WorkerSnapshot(
                name=w.name,
                process=w.process,
                pid=int(row[st.PID]),
                state=_state_name(WorkerState, state, "unknown"),
                up=bool(up),
                heartbeat_age_s=max(0.0, age_s) if heartbeat > 0 else math.nan,
                restarts=int(row[st.RESTARTS]),
                work_count=int(row[st.WORK_COUNT]),
                idle_count=int(row[st.IDLE_COUNT]),
                counters={n: int(counters[i]) for i, n in enumerate(w.counter_names[: st.MAX_COUNTERS])},
            ))
        return out

    def _risk(self) -> RiskSnapshot | None:
        if self.control is None:
            return None
        record = self.control.array[0].copy()
        return RiskSnapshot(
            kill_switch=bool(record["kill_switch"]),
            trading_state=_state_name(TradingState, int(record["trading_state"]), "unknown"),
            orders_checked=int(record["checks"]),
            orders_approved=int(record["approved"]),
            open_orders=int(record["open_orders"]),
            rejects_by_reason=_reject_counts(record["reject_counts"]),
            realized_pnl=float(record["realized_pnl"]),
            unrealized_pnl=float(record["unrealized_pnl"]),
            fees=float(record["fees"]),
            daily_pnl=float(record["daily_pnl"]),
            changed_unix_ns=int(record["changed_unix_ns"]),
        )

    def _live_strategy_rows(self) -> list[tuple[str, np.void]]:
        out = []
        for worker, rows in (self.strategy_rows or {}).items():
            copied = rows.copy()
            out.extend((worker, row) for row in copied[copied["strategy_id"] != 0])
        return out

    def _symbol(self, symbol_id: int) -> str:
        return self.symbol_names.get(symbol_id, str(symbol_id))

    def _positions(self) -> list[PositionSnapshot]:
        return [PositionSnapshot(
            strategy=_row_name(row),
            symbol=self._symbol(int(row["symbol_id"])),
            quantity=float(row["position"]),
            avg_price=float(row["avg_price"]),
            realized_pnl=float(row["realized_pnl"]),
            unrealized_pnl=float(row["unrealized_pnl"]),
            fees=float(row["fees"]),
            mark_price=float(row["mid"]),
            **self.symbol_units.get(int(row["symbol_id"]), {}),
        ) for _, row in self._live_strategy_rows() if int(row["state"]) != int(StrategyState.REMOVED)]

    def _strategies(self) -> list[StrategySnapshot]:
        return [StrategySnapshot(
            name=_row_name(row),
            state=_state_name(StrategyState, int(row["state"]), "unknown"),
            symbol=self._symbol(int(row["symbol_id"])),
            strategy_id=int(row["strategy_id"]),
            worker=worker,
            signals=int(row["signals"]),
            intents=int(row["intents"]),
            fills=int(row["fills"]),
            rejects=int(row["rejects"]),
            open_orders=int(row["open_orders"]),
        ) for worker, row in self._live_strategy_rows()]

    # -- from a run manifest ---------------------------------------------------------------------

    @classmethod
    def from_manifest(cls, manifest, *, stale_after_s: float = 5.0, symbol_names: dict[int, str] | None = None,
                      symbol_units: dict[int, dict] | None = None) -> "SharedMemoryView":
        """Attach (read-only use) to every segment a ``hftshm.runtime.manifest.RunManifest`` names.
        A segment that cannot be attached is left out, not fatal: the view shows what it can."""
        from hftshm.runtime import segments
        from hftshm.runtime import status as st

        view = cls(run_id=manifest.prefix, stale_after_s=stale_after_s, symbol_names=symbol_names,
                   symbol_units=symbol_units)
        status = st.StatusTable.attach(manifest.status_segment, len(manifest.workers))
        view._owned.append(status)
        view.status_words = status.words
        view.workers = tuple(WorkerBinding(w.name, w.row, w.process, tuple(w.counter_names)) for w in manifest.workers)
        rings = []
        for entry in manifest.rings:
            try:
                shm = segments.attach(entry.segment)
            except FileNotFoundError:
                continue
            view._owned.append(shm)
            ctrl = np.ndarray((d.HEADER_WORDS,), dtype=np.int64, buffer=shm.buf)
            rings.append(RingBinding(entry.name, ctrl, entry.layout, entry.producer, entry.consumer))
        view.rings = tuple(rings)
        if manifest.metrics_segment:
            from hftshm.metrics.segment import MetricsSegment, MetricsSegmentError

            try:
                view.metrics = MetricsSegment.attach(manifest.metrics_segment)
                view._owned.append(view.metrics)
            except MetricsSegmentError:
                pass
        if manifest.control_segment:
            try:
                from hftshm.risk.control import ControlBlock, ControlBlockError

                view.control = ControlBlock.attach(manifest.control_segment)
                view._owned.append(view.control)
            except (ImportError, ControlBlockError):
                pass
        # strategy workers publish <prefix>strategy_status.<worker> (hftshm.strategies.worker)
        from hftshm.transport import layout as layouts

        dtype = layouts.load("strategy_status").dtype
        view.strategy_rows = {}
        for entry in manifest.workers:
            try:
                shm = segments.attach(f"{manifest.prefix}strategy_status.{entry.name}")
            except FileNotFoundError:
                continue
            view._owned.append(shm)
            view.strategy_rows[entry.name] = np.ndarray((shm.size // dtype.itemsize,), dtype=dtype, buffer=shm.buf)
        return view

    def close(self) -> None:
        """Detach what ``from_manifest`` attached (views from before become invalid)."""
        self.status_words = None
        self.rings = ()
        self.metrics = self.control = self.strategy_rows = None
        for owned in reversed(self._owned):
            try:
                owned.close()
            except Exception:
                pass
        self._owned.clear()


def _reject_counts(counts: np.ndarray) -> dict[str, int]:
    out = {}
    for reason in Reason:
        if 0 <= reason.value < len(counts) and counts[reason.value]:
            out[reason.name.lower()] = int(counts[reason.value])
    return out


def _row_name(row) -> str:
    raw = bytes(np.asarray(row["name"], dtype=np.uint8)).rstrip(b"\0")
    return raw.decode("ascii", "replace") or f"strategy-{int(row['strategy_id'])}"
