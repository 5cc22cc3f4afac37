"""Prometheus export: one custom collector that reads a ``PlatformView`` at scrape time.

No prometheus_client multiprocess mode and nothing per event: workers keep plain int64 counters
and histograms in shared memory, and a scrape turns one ``PlatformSnapshot`` into metric families.
Families (base units, ``_total`` counters, ``_seconds`` histograms)::

    hftshm_platform_running                           1 while a platform is attached
    hftshm_worker_up{worker,process}                  1 running with a fresh heartbeat
    hftshm_worker_state{worker,state}                 1 for the current WorkerState
    hftshm_worker_restarts_total{worker}
    hftshm_worker_heartbeat_age_seconds{worker}
    hftshm_worker_work_total{worker}                  units of work (events, records) done
    hftshm_worker_idle_cycles_total{worker}
    hftshm_<counter>_total{worker}                    each COUNTER_NAMES entry (events, ticks, signals,
                                                      orders, fills, ...)
    hftshm_<name>{worker}                             COUNTER_NAMES entries ending in _gauge
                                                      (_ms/_us/_ns names are exported in _seconds)
    hftshm_rejects_total{worker,reason}               COUNTER_NAMES reject_<reason> / rejects_<reason>
    hftshm_worker_<counter>_total{worker}             a counter whose name a family above already takes,
                                                      or a gauge of a name another worker counts with
                                                      (the exchange's plain ``rejects``)
    hftshm_latency_seconds{worker,stage}              histogram per metrics-segment histogram
    hftshm_latency_negative_total{worker,stage}       samples with a negative latency (clock skew)
    hftshm_ring_capacity_records{ring,producer,consumer}
    hftshm_ring_occupancy_records{ring,...}           and hftshm_ring_occupancy_ratio
    hftshm_ring_written_records_total{ring,...}
    hftshm_ring_full_waits_total{ring,...}
    hftshm_ring_dropped_records_total{ring,...}
    hftshm_position_quantity{strategy,symbol}         signed, base units (contracts on an inverse market)
    hftshm_realized_pnl{strategy,symbol}              quote currency, the coin on an inverse market (also
                                                      unrealized, fees)
    hftshm_position_units{strategy,symbol,market,qty_unit,pnl_unit}   1: the units of the two above
    hftshm_pnl{}                                      total realized + unrealized - fees, quote currency
                                                      (an inverse position's coin PnL at its mark)
    hftshm_symbol_position_quantity{symbol}           strategies on a symbol added up (hftshm_symbol_pnl too)
    hftshm_kill_switch_active, hftshm_trading_state{state}, hftshm_risk_orders_checked_total,
    hftshm_risk_rejects_total{reason}                 the risk control block's reject counts
    hftshm_strategy_{signals,intents,fills,rejects}_total{strategy}, hftshm_strategy_open_orders
    hftshm_<gauge>                                    PlatformSnapshot.gauges (oms_writer_lag_records)
"""

from __future__ import annotations

import logging
import math
import re
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from hftshm.codes import TradingState, WorkerState
from hftshm.metrics.histogram import cumulative_buckets
from hftshm.metrics.histogram_nb import NEGATIVE
from hftshm.metrics.snapshot import PlatformSnapshot, PlatformView

log = logging.getLogger("hftshm.metrics")

PREFIX = "hftshm_"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_RESERVED = {
    "worker_up", "worker_state", "worker_restarts", "worker_heartbeat_age_seconds", "worker_work",
    "worker_idle_cycles", "rejects", "latency_seconds", "latency_negative", "platform_running", "pnl",
    "kill_switch_active", "trading_state", "position_quantity", "position_units", "realized_pnl", "unrealized_pnl",
    "fees", "symbol_position_quantity", "symbol_pnl",
    "risk_orders_checked", "risk_rejects", "auth_failures", "auth_tokens_issued",
}


def metric_suffix(name: str) -> str:
    """A COUNTER_NAMES entry as a metric name part: lower case, [a-z0-9_] only, no ``_total``."""
    cleaned = _INVALID.sub("_", name.strip().lower()).strip("_") or "unnamed"
    if cleaned[0].isdigit():
        cleaned = "n" + cleaned
    if cleaned.endswith("_total"):
        cleaned = cleaned[: -len("_total")]
    return cleaned


def reserved_alias(suffix: str) -> str:
    """A worker counter whose name is taken by a platform family (the exchange's ``rejects``): it goes
    out as ``hftshm_worker_<name>_total{worker}``. Never "counter" in the name: promtool refuses a
    metric name that includes its type."""
    alias = "worker_" + suffix
    return alias if alias not in _RESERVED else alias + "_events"


_UNIT_SCALES = (("_ns", 1e-9), ("_us", 1e-6), ("_ms", 1e-3))


def base_units(suffix: str) -> tuple[str, float]:
    """Prometheus wants base units: ``lag_ms`` -> (``lag_seconds``, 1e-3); other names unchanged."""
    for unit, scale in _UNIT_SCALES:
        if suffix.endswith(unit):
            return suffix[: -len(unit)] + "_seconds", scale
    return suffix, 1.0


def split_histogram_name(name: str) -> tuple[str, str]:
    """``risk.check`` -> (``risk``, ``check``); a name with no dot is its own stage of ``""``."""
    worker, dot, stage = name.partition(".")
    return (worker, stage) if dot else ("", name)


class PlatformCollector(Collector):
    """Reads ``view.snapshot()`` at every scrape. ``fallback()`` supplies what to export when the
    view fails or no platform runs (zeros, or the last run's values): every family always exists."""

    def __init__(self, view: PlatformView, fallback: Callable[[], PlatformSnapshot | None] | None = None):
        self.view = view
        self.fallback = fallback
        # called with every snapshot taken (scrapes included): the dashboard's history samples here
        self.listeners: list[Callable[[PlatformSnapshot], None]] = []

    def describe(self) -> Iterable[Metric]:
        # families depend on what is running; registering must not take a snapshot
        return []

    def current_snapshot(self) -> PlatformSnapshot:
        try:
            snapshot = self.view.snapshot()
        except Exception:
            log.exception("platform snapshot failed; exporting the fallback values")
            snapshot = None
        if (snapshot is None or not snapshot.workers) and self.fallback is not None:
            # nothing attached (or the view failed): the last run's values, or the declared zeros
            fallback = self.fallback()
            if fallback is not None:
                snapshot = fallback
        snapshot = snapshot if snapshot is not None else PlatformSnapshot()
        for listener in self.listeners:
            listener(snapshot)
        return snapshot

    def collect(self) -> Iterable[Metric]:
        yield from families(self.current_snapshot())


def families(snap: PlatformSnapshot) -> list[Metric]:
    """Every metric family of one snapshot."""
    out: list[Metric] = []
    running = _gauge("platform_running", "1 while a platform is running and attached")
    running.add_metric([], 1.0 if snap.running else 0.0)
    out.append(running)
    out.extend(_worker_families(snap))
    out.extend(_histogram_families(snap))
    out.extend(_ring_families(snap))
    out.extend(_trading_families(snap))
    for key, value in sorted(snap.gauges.items()):
        suffix, scale = base_units(metric_suffix(key))
        gauge = _gauge(suffix, f"platform gauge {key}")
        gauge.add_metric([], float(value) * scale)
        out.append(gauge)
    return out


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels or [])


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, labels=labels or [])


def _worker_families(snap: PlatformSnapshot) -> list[Metric]:
    up = _gauge("worker_up", "1 if the worker runs with a fresh heartbeat", ["worker", "process"])
    state = _gauge("worker_state", "1 for the worker's current state", ["worker", "state"])
    restarts = _counter("worker_restarts", "times the supervisor restarted the worker", ["worker"])
    age = _gauge("worker_heartbeat_age_seconds", "seconds since the worker's last duty cycle", ["worker"])
    work = _counter("worker_work", "units of work (events, records) the worker did", ["worker"])
    idle = _counter("worker_idle_cycles", "duty cycles that found no work", ["worker"])
    rejects = _counter("rejects", "orders rejected, by the stage that decided and why", ["worker", "reason"])
    counters: dict[str, Metric] = {}
    for w in snap.workers:
        up.add_metric([w.name, w.process], 1.0 if w.up else 0.0)
        for member in WorkerState:
            state.add_metric([w.name, member.name.lower()], 1.0 if member.name.lower() == w.state else 0.0)
        restarts.add_metric([w.name], w.restarts)
        age.add_metric([w.name], w.heartbeat_age_s if math.isfinite(w.heartbeat_age_s) else math.nan)
        work.add_metric([w.name], w.work_count)
        idle.add_metric([w.name], w.idle_count)
        for counter_name, value in w.counters.items():
            suffix = metric_suffix(counter_name)
            prefix = next((p for p in ("rejects_", "reject_") if suffix.startswith(p) and len(suffix) > len(p)), None)
            if prefix is not None:
                rejects.add_metric([w.name, suffix[len(prefix):]], value)
                continue
            is_gauge = suffix.endswith("_gauge")
            if is_gauge:
                suffix = suffix[: -len("_gauge")]
            suffix, scale = base_units(suffix)
            if suffix in _RESERVED:
                suffix = reserved_alias(suffix)
            family = counters.get(suffix)
            if family is not None and (family.type == "gauge") != is_gauge:
                # the same name is a counter in one worker and a gauge in another (risk's open_orders
                # counter, the OMS's open_orders_gauge): the later kind goes out under the alias
                suffix = reserved_alias(suffix)
                family = counters.get(suffix)
            if family is None:
                if is_gauge:
                    family = _gauge(suffix, f"worker gauge {counter_name}", ["worker"])
                else:
                    family = _counter(suffix, f"worker counter {counter_name}", ["worker"])
                counters[suffix] = family
            elif (family.type == "gauge") != is_gauge:
                log.warning("counter %r of worker %s is a %s elsewhere; skipped", counter_name, w.name, family.type)
                continue
            family.add_metric([w.name], value * scale if scale != 1.0 else value)
    return [up, state, restarts, age, work, idle, rejects, *counters.values()]


def _histogram_families(snap: PlatformSnapshot) -> list[Metric]:
    latency = HistogramMetricFamily(PREFIX + "latency_seconds", "latency of one stage or hop, seconds",
                                    labels=["worker", "stage"])
    negative = _counter("latency_negative", "latency samples below zero (clocks disagree), counted in the "
                        "lowest bucket", ["worker", "stage"])
    for name, counts in sorted(snap.histograms.items()):
        labels = list(split_histogram_name(name))
        buckets, _, sum_s = cumulative_buckets(counts)
        latency.add_metric(labels, [(_le(le), count) for le, count in buckets], sum_s)
        negative.add_metric(labels, int(counts[NEGATIVE]))
    return [latency, negative]


def _le(bound_s: float) -> str:
    return "+Inf" if math.isinf(bound_s) else repr(bound_s)


def _ring_families(snap: PlatformSnapshot) -> list[Metric]:
    labels = ["ring", "producer", "consumer"]
    capacity = _gauge("ring_capacity_records", "ring capacity, records", labels)
    occupancy = _gauge("ring_occupancy_records", "records written and not yet consumed", labels)
    ratio = _gauge("ring_occupancy_ratio", "occupancy / capacity", labels)
    written = _counter("ring_written_records", "records the producer committed", labels)
    waits = _counter("ring_full_waits", "times the producer found the ring full and waited", labels)
    drops = _counter("ring_dropped_records", "records dropped because the ring was full", labels)
    for r in snap.rings:
        values = [r.name, r.producer, r.consumer]
        capacity.add_metric(values, r.capacity)
        occupancy.add_metric(values, r.occupancy)
        ratio.add_metric(values, r.occupancy / r.capacity if r.capacity else 0.0)
        written.add_metric(values, r.written_total)
        waits.add_metric(values, r.full_waits_total)
        drops.add_metric(values, r.dropped_total)
    return [capacity, occupancy, ratio, written, waits, drops]


def _trading_families(snap: PlatformSnapshot) -> list[Metric]:
    out: list[Metric] = []
    labels = ["strategy", "symbol"]
    position = _gauge("position_quantity", "signed position, base units (contracts on an inverse market)", labels)
    realized = _gauge("realized_pnl", "realized PnL before fees, quote currency (the coin on an inverse market)",
                      labels)
    unrealized = _gauge("unrealized_pnl", "open position marked to market, quote currency (the coin on an inverse "
                        "market)", labels)
    fees = _gauge("fees", "fees paid (negative: rebates), quote currency (the coin on an inverse market)", labels)
    # the units as labels of a constant series (an info metric), so the value series keep their labels
    units = _gauge("position_units", "1 per position: its market and the units of its quantity and PnL",
                   labels + ["market", "qty_unit", "pnl_unit"])
    for p in snap.positions:
        values = [p.strategy, p.symbol]
        position.add_metric(values, p.quantity)
        realized.add_metric(values, p.realized_pnl)
        unrealized.add_metric(values, p.unrealized_pnl)
        fees.add_metric(values, p.fees)
        if p.pnl_unit:
            units.add_metric(values + [p.market, p.qty_unit, p.pnl_unit], 1.0)
    out += [position, realized, unrealized, fees, units]
    if not snap.several_currencies:  # several: no one total (a USDT figure plus an ETH one is no number)
        total = _gauge("pnl", "total PnL: realized + unrealized - fees, quote currency")
        total.add_metric([], snap.total_pnl)
        out.append(total)
    by_currency = _gauge("currency_pnl", "realized + unrealized - fees of the symbols settling in the currency, "
                         "in that currency (never added across currencies)", ["currency"])
    for currency, row in snap.pnl_by_currency().items():
        by_currency.add_metric([currency], row["pnl"])
    out.append(by_currency)
    # per symbol, every strategy on it: a position only adds up within its symbol's units
    symbol_position = _gauge("symbol_position_quantity", "signed position of all strategies on the symbol", ["symbol"])
    symbol_pnl = _gauge("symbol_pnl", "realized + unrealized - fees of all strategies on the symbol, in its "
                        "settlement currency (label currency)", ["symbol", "currency"])
    for name, row in snap.by_symbol().items():
        symbol_position.add_metric([name], row["quantity"])
        symbol_pnl.add_metric([name, row["currency"]], row["pnl"])
    out += [symbol_position, symbol_pnl]

    risk = snap.risk
    kill = _gauge("kill_switch_active", "1 while the kill switch blocks new orders")
    kill.add_metric([], 1.0 if risk is not None and risk.kill_switch else 0.0)
    trading = _gauge("trading_state", "1 for the current trading state", ["state"])
    current = risk.trading_state if risk is not None else TradingState.ACTIVE.name.lower()
    for member in TradingState:
        trading.add_metric([member.name.lower()], 1.0 if member.name.lower() == current else 0.0)
    checked = _counter("risk_orders_checked", "orders the risk stage checked")
    checked.add_metric([], risk.orders_checked if risk is not None else 0)
    risk_rejects = _counter("risk_rejects", "rejects the risk control block counted, by reason", ["reason"])
    for reason, value in sorted((risk.rejects_by_reason if risk is not None else {}).items()):
        risk_rejects.add_metric([metric_suffix(reason)], value)
    out += [kill, trading, checked, risk_rejects]

    per_strategy = {
        "signals": _counter("strategy_signals", "decisions a strategy reported", ["strategy"]),
        "intents": _counter("strategy_intents", "order intents a strategy emitted", ["strategy"]),
        "fills": _counter("strategy_fills", "executions a strategy received", ["strategy"]),
        "rejects": _counter("strategy_rejects", "rejects a strategy received", ["strategy"]),
    }
    open_orders = _gauge("strategy_open_orders", "orders sent and not yet done", ["strategy"])
    for s in snap.strategies:
        for key, family in per_strategy.items():
            family.add_metric([s.name], getattr(s, key))
        open_orders.add_metric([s.name], s.open_orders)
    out += [*per_strategy.values(), open_orders]
    return out
