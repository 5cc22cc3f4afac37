"""What the dashboard page shows, as one JSON document, and the short history behind its charts.

Totals are read from the snapshot: ticks are what the feed worker processed, orders what risk
approved (else the strategies' intents), fills what the strategies received. Rates are differences
between history samples, so every client sees the same numbers however often it polls.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import asdict

from hftshm.metrics.collector import split_histogram_name
from hftshm.metrics.histogram import summarize
from hftshm.metrics.snapshot import PlatformSnapshot
from hftshm.units import ACCOUNT_UNIT

HISTORY_POINTS = 900  # 15 minutes at one sample a second
MIN_SAMPLE_INTERVAL_S = 0.5
TICK_COUNTERS = ("events_published", "ticks", "events", "market_events")
ORDER_COUNTERS = ("orders_created", "orders", "orders_sent", "approved", "orders_approved")
FILL_COUNTERS = ("fills", "fills_received")


def _finite(value: float) -> float | None:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _sum_counters(snap: PlatformSnapshot, names: tuple[str, ...], worker_hint: str) -> int | None:
    """Sum over workers of the first of ``names`` each has (workers named like the hint first)."""
    def first(counters: dict) -> int | None:
        return next((counters[n] for n in names if n in counters), None)

    for hint in (worker_hint, ""):
        found = [v for v in (first(w.counters) for w in snap.workers if hint in w.name) if v is not None]
        if found:
            return int(sum(found))
    return None


def totals(snap: PlatformSnapshot) -> dict[str, int]:
    ticks = _sum_counters(snap, TICK_COUNTERS, "feed")
    if ticks is None:
        feed = next((w for w in snap.workers if "feed" in w.name), None)
        ticks = feed.work_count if feed else 0
    orders = snap.risk.orders_approved if snap.risk is not None and snap.risk.orders_checked else None
    if orders is None:
        orders = _sum_counters(snap, ORDER_COUNTERS, "risk")
    if orders is None:
        orders = sum(s.intents for s in snap.strategies)
    fills = sum(s.fills for s in snap.strategies) if snap.strategies else (_sum_counters(snap, FILL_COUNTERS, "") or 0)
    rejects = sum(snap.risk.rejects_by_reason.values()) if snap.risk is not None else 0
    return {"ticks": int(ticks), "orders": int(orders), "fills": int(fills), "rejects": int(rejects)}


def feed_clock(workers) -> dict:
    """The feed's estimated clock offset (local receive - exchange time, ms; the live feed's and the
    replay's ``clock_offset_ms`` gauge) and whether the feed takes live streams (``frames`` counter)."""
    feed = next((w for w in workers if "feed" in w.name and "clock_offset_ms_gauge" in w.counters), None)
    if feed is None:
        return {"clock_offset_ms": None, "live": False}
    offset = feed.counters["clock_offset_ms_gauge"]
    # 0 until the first depth or trade event: unknown, not "in sync"
    return {"clock_offset_ms": int(offset) if offset or feed.counters.get("events_published") else None,
            "live": "frames" in feed.counters}


def pnl_line(snap: PlatformSnapshot) -> dict:
    """The PnL line: ``by_currency`` (each settlement currency's own total, never added across
    currencies) and, when the positions settle in one currency, the total and its parts as before
    (``unit``); with several currencies those are null: a USDT figure plus an ETH one is no number."""
    by_currency = snap.pnl_by_currency()
    if snap.several_currencies:
        return {"total": None, "realized": None, "unrealized": None, "fees": None, "unit": None,
                "by_currency": by_currency}
    return {"total": snap.total_pnl, **_pnl_parts(snap), "unit": ACCOUNT_UNIT, "by_currency": by_currency}


def _pnl_parts(snap: PlatformSnapshot) -> dict[str, float]:
    """Realized, unrealized, fees in the quote currency: summed over positions (an inverse position's
    coin at its mark), else the risk stage's account."""
    if snap.positions:
        return {"realized": sum(p.realized_pnl * p.account_rate for p in snap.positions),
                "unrealized": sum(p.unrealized_pnl * p.account_rate for p in snap.positions),
                "fees": sum(p.fees * p.account_rate for p in snap.positions)}
    risk = snap.risk
    if risk is None:
        return {"realized": 0.0, "unrealized": 0.0, "fees": 0.0}
    return {"realized": risk.realized_pnl, "unrealized": risk.unrealized_pnl, "fees": risk.fees}


class DashboardModel:
    """Samples snapshots into a bounded history and renders the page's JSON."""

    def __init__(self, history_points: int = HISTORY_POINTS):
        self._lock = threading.Lock()
        self._history: deque[dict] = deque(maxlen=history_points)
        self._run_id: str | None = None

    def sample(self, snap: PlatformSnapshot) -> None:
        if not snap.running and self._history:
            return  # the last run's curve stays as it ended
        now = time.time()
        several = snap.several_currencies
        point = {"t": now, "pnl": None if several else snap.total_pnl, **totals(snap),
                 "pnl_by_currency": {c: row["pnl"] for c, row in snap.pnl_by_currency().items()} if several else {}}
        with self._lock:
            if snap.run_id != self._run_id:  # a new run: its curve starts afresh
                self._history.clear()
                self._run_id = snap.run_id
            if self._history and now - self._history[-1]["t"] < MIN_SAMPLE_INTERVAL_S:
                return
            self._history.append(point)

    def rates(self) -> dict[str, float]:
        with self._lock:
            points = list(self._history)
        if len(points) < 2:
            return {"ticks_per_s": 0.0, "orders_per_s": 0.0, "fills_per_s": 0.0}
        # over the last ~3 s: steadier than one interval, still live
        last = points[-1]
        first = next((p for p in points if last["t"] - p["t"] <= 3.0), points[-2])
        if first is last:
            first = points[-2]
        dt = max(1e-6, last["t"] - first["t"])
        return {f"{k}_per_s": max(0.0, (last[k] - first[k]) / dt) for k in ("ticks", "orders", "fills")}

    def history(self) -> list[dict]:
        with self._lock:
            points = list(self._history)
        out = []
        for prev, cur in zip(points, points[1:]):
            dt = max(1e-6, cur["t"] - prev["t"])
            out.append({"t": round(cur["t"], 3), "pnl": _finite(cur["pnl"]),
                        "pnl_by_currency": cur.get("pnl_by_currency") or {},
                        "ticks_per_s": max(0.0, (cur["ticks"] - prev["ticks"]) / dt),
                        "orders_per_s": max(0.0, (cur["orders"] - prev["orders"]) / dt)})
        if len(points) == 1:
            out.append({"t": round(points[0]["t"], 3), "pnl": _finite(points[0]["pnl"]),
                        "pnl_by_currency": points[0].get("pnl_by_currency") or {}, "ticks_per_s": 0.0,
                        "orders_per_s": 0.0})
        return out

    def render(self, snap: PlatformSnapshot, orders: list[dict], trades: list[dict]) -> dict:
        latency = []
        for name, counts in sorted(snap.histograms.items()):
            worker, stage = split_histogram_name(name)
            summary = summarize(counts)
            latency.append({"name": name, "worker": worker, "stage": stage, "count": summary.count,
                            "p50_ns": _finite(summary.p50_ns), "p99_ns": _finite(summary.p99_ns),
                            "p999_ns": _finite(summary.p999_ns), "max_ns": summary.max_ns,
                            "negative": summary.negative})
        risk = snap.risk
        return {
            "t": time.time(),
            "running": snap.running,
            "run_id": snap.run_id,
            "totals": totals(snap),
            "rates": self.rates(),
            "history": self.history(),
            "pnl": pnl_line(snap),
            "latency": latency,
            "rings": [{"name": r.name, "producer": r.producer, "consumer": r.consumer, "capacity": r.capacity,
                       "occupancy": r.occupancy, "ratio": r.occupancy / r.capacity if r.capacity else 0.0,
                       "written": r.written_total, "full_waits": r.full_waits_total, "drops": r.dropped_total,
                       "backpressure": r.backpressure} for r in snap.rings],
            "workers": [{"name": w.name, "process": w.process, "pid": w.pid, "state": w.state, "up": w.up,
                         "heartbeat_age_s": _finite(w.heartbeat_age_s), "restarts": w.restarts,
                         "work": w.work_count} for w in snap.workers],
            "positions": [{"strategy": p.strategy, "symbol": p.symbol, "quantity": p.quantity,
                           "avg_price": _finite(p.avg_price), "mark_price": _finite(p.mark_price),
                           "realized_pnl": p.realized_pnl, "unrealized_pnl": p.unrealized_pnl, "fees": p.fees,
                           "market": p.market, "qty_unit": p.qty_unit, "pnl_unit": p.pnl_unit}
                          for p in snap.positions],
            "symbols": [{"symbol": name, **{k: _finite(v) if isinstance(v, float) else v for k, v in row.items()}}
                        for name, row in snap.by_symbol().items()],
            "strategies": [asdict(s) for s in snap.strategies],
            "risk": None if risk is None else {
                "kill_switch": risk.kill_switch, "trading_state": risk.trading_state,
                "orders_checked": risk.orders_checked, "orders_approved": risk.orders_approved,
                "open_orders": risk.open_orders, "rejects_by_reason": risk.rejects_by_reason,
                "daily_pnl": risk.daily_pnl, "changed_unix_ns": risk.changed_unix_ns},
            "orders": orders,
            "trades": trades,
            "feed": feed_clock(snap.workers),
        }
