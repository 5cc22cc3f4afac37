"""The Prometheus collector over a real shared-memory view (status table, rings, metrics segment,
risk control block, strategy rows): every family carries the values that are in shared memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hftshm.codes import Reason
from hftshm.metrics.collector import PlatformCollector, base_units, metric_suffix, split_histogram_name
from hftshm.metrics.histogram_nb import COUNT
from hftshm.metrics.rig import MonitoringRig
from hftshm.metrics.snapshot import PlatformSnapshot
from hftshm.runtime import status as st


@pytest.fixture
def rig():
    with MonitoringRig(seed=11) as rig:
        for _ in range(4):
            rig.step(events=400)
        yield rig


def scrape(view, fallback=None) -> dict[str, dict[tuple, float]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(view, fallback))
    text = generate_latest(registry).decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(samples, name, **labels):
    return samples[name][tuple(sorted(labels.items()))]


def test_worker_families_read_the_status_table(rig):
    words = rig.status.words
    words[2, st.RESTARTS] = 3
    metrics = scrape(rig.view())
    assert value(metrics, "hftshm_platform_running") == 1
    assert value(metrics, "hftshm_worker_up", worker="feed", process="pipeline") == 1
    assert value(metrics, "hftshm_worker_state", worker="feed", state="running") == 1
    assert value(metrics, "hftshm_worker_state", worker="feed", state="failed") == 0
    assert value(metrics, "hftshm_worker_restarts_total", worker="risk") == 3
    assert value(metrics, "hftshm_worker_work_total", worker="oms") == words[3, st.WORK_COUNT] == 1600
    # COUNTER_NAMES conventions: plain counters, rejects_<reason>, *_gauge
    feed_counters = rig.status.counters(0)
    assert value(metrics, "hftshm_events_published_total", worker="feed") == feed_counters[0]
    assert value(metrics, "hftshm_orders_total", worker="exchange") == rig.status.counters(4)[0]
    assert value(metrics, "hftshm_rejects_total", worker="risk", reason="max_position") == rig.status.counters(2)[2]
    assert value(metrics, "hftshm_rejects_total", worker="exchange", reason="post_only_would_cross") == 0
    # lag_ms_gauge: a level, in base units
    assert value(metrics, "hftshm_lag_seconds", worker="oms") == pytest.approx(rig.status.counters(3)[2] / 1e3)
    assert "hftshm_lag_seconds_total" not in metrics


def test_a_stale_heartbeat_is_down(rig):
    rig.status.words[1, st.HEARTBEAT_NS] -= int(60e9)
    metrics = scrape(rig.view())
    assert value(metrics, "hftshm_worker_up", worker="strategies", process="pipeline") == 0
    assert value(metrics, "hftshm_worker_heartbeat_age_seconds", worker="strategies") >= 59


def test_ring_families_read_the_ring_headers(rig):
    ring = rig.rings["md.strategies"]
    view = ring.claim(100)
    ring.commit(len(view))
    metrics = scrape(rig.view())
    labels = dict(ring="md.strategies", producer="feed", consumer="strategies")
    assert value(metrics, "hftshm_ring_occupancy_records", **labels) == ring.occupancy() >= 100
    assert value(metrics, "hftshm_ring_capacity_records", **labels) == 4096
    assert value(metrics, "hftshm_ring_written_records_total", **labels) == ring.producer_position
    assert math.isclose(value(metrics, "hftshm_ring_occupancy_ratio", **labels), ring.occupancy() / 4096)


def test_a_full_ring_shows_its_full_waits(rig):
    ring = rig.rings["intents"]
    while len(view := ring.claim(ring.capacity)):
        ring.commit(len(view))
    assert ring.try_write(np.zeros(1, dtype=ring.dtype)[0]) is False
    metrics = scrape(rig.view())
    labels = dict(ring="intents", producer="strategies", consumer="risk")
    assert value(metrics, "hftshm_ring_occupancy_ratio", **labels) == 1.0
    assert value(metrics, "hftshm_ring_full_waits_total", **labels) == ring.full_events >= 1
    assert value(metrics, "hftshm_ring_dropped_records_total", **labels) == ring.drops == 0


def test_histograms_are_exported_in_seconds_with_exact_buckets(rig):
    hist = rig.metrics.histogram("risk.hop")
    metrics = scrape(rig.view())
    labels = dict(worker="risk", stage="hop")
    assert value(metrics, "hftshm_latency_seconds_count", **labels) == hist[COUNT] == 1600
    buckets = {dict(k)["le"]: v for k, v in metrics["hftshm_latency_seconds_bucket"].items()
               if dict(k)["worker"] == "risk" and dict(k)["stage"] == "hop"}
    assert buckets["+Inf"] == 1600
    # ~180 ns median: the 256 ns bucket holds most, the 64 ns one few; counts are cumulative
    assert buckets["2.56e-07"] > 800 and buckets["6.4e-08"] < 100
    les = sorted((float(k), v) for k, v in buckets.items())
    assert all(a[1] <= b[1] for a, b in zip(les, les[1:]))
    assert 0 < value(metrics, "hftshm_latency_seconds_sum", **labels) < 1600 * 2e-6
    assert value(metrics, "hftshm_latency_negative_total", **labels) == 0


def test_positions_pnl_and_risk_state(rig):
    rig.control.set_kill_switch(True)
    rig.control.array[0]["reject_counts"][int(Reason.PRICE_BAND)] = 9
    snap = rig.view().snapshot()
    metrics = scrape(rig.view())
    row = rig.strategy_rows[0]
    assert value(metrics, "hftshm_position_quantity", strategy="mm-btc", symbol="BTCUSDT") == pytest.approx(row["position"])
    assert value(metrics, "hftshm_realized_pnl", strategy="mm-btc", symbol="BTCUSDT") == pytest.approx(row["realized_pnl"])
    assert value(metrics, "hftshm_pnl") == pytest.approx(snap.total_pnl)
    btc = [p for p in snap.positions if p.symbol == "BTCUSDT"]
    assert value(metrics, "hftshm_symbol_position_quantity", symbol="BTCUSDT") == pytest.approx(
        sum(p.quantity for p in btc))
    currency = snap.by_symbol()["BTCUSDT"]["currency"]  # the label says which currency the figure is in
    assert value(metrics, "hftshm_symbol_pnl", symbol="BTCUSDT", currency=currency) == pytest.approx(
        sum(p.realized_pnl + p.unrealized_pnl - p.fees for p in btc))
    assert value(metrics, "hftshm_kill_switch_active") == 1
    assert value(metrics, "hftshm_trading_state", state="active") == 1
    assert value(metrics, "hftshm_risk_rejects_total", reason="price_band") == 9
    assert value(metrics, "hftshm_strategy_intents_total", strategy="momo-btc") == rig.strategy_rows[1]["intents"]
    assert value(metrics, "hftshm_oms_writer_lag_seconds") == pytest.approx(rig.status.counters(3)[2] / 1e3)


def test_without_a_platform_the_fallback_keeps_every_series(rig):
    last_run = rig.view().snapshot()
    idle = PlatformSnapshot()  # what a view attached to nothing returns

    class Detached:
        def snapshot(self):
            return idle

    zeros = scrape(Detached(), fallback=last_run.zeroed)
    assert value(zeros, "hftshm_platform_running") == 0
    assert value(zeros, "hftshm_events_published_total", worker="feed") == 0
    assert value(zeros, "hftshm_latency_seconds_count", worker="risk", stage="hop") == 0
    assert value(zeros, "hftshm_worker_up", worker="feed", process="pipeline") == 0
    last = scrape(Detached(), fallback=lambda: last_run)
    assert value(last, "hftshm_events_published_total", worker="feed") == rig.status.counters(0)[0]


def test_a_failing_view_exports_the_fallback_not_an_error(rig):
    class Broken:
        def snapshot(self):
            raise RuntimeError("segment vanished")

    metrics = scrape(Broken(), fallback=rig.view().snapshot().zeroed)
    assert value(metrics, "hftshm_platform_running") == 0
    assert ("hftshm_worker_up") in metrics


def test_snapshot_json_round_trip(rig):
    snap = rig.view().snapshot()
    back = PlatformSnapshot.from_json(snap.to_json())
    assert back.workers == snap.workers
    assert back.rings == snap.rings
    assert back.risk == snap.risk
    assert back.positions == snap.positions
    for name, counts in snap.histograms.items():
        assert np.array_equal(back.histograms[name], counts)


def test_names():
    assert metric_suffix("Orders Sent") == "orders_sent"
    assert metric_suffix("fills_total") == "fills"
    assert metric_suffix("9lives") == "n9lives"
    assert base_units("lag_ms") == ("lag_seconds", 1e-3) and base_units("wait_ns") == ("wait_seconds", 1e-9)
    assert base_units("orders") == ("orders", 1.0)
    assert split_histogram_name("risk.check") == ("risk", "check")
    assert split_histogram_name("pipeline.tick.to") == ("pipeline", "tick.to")
    assert split_histogram_name("solo") == ("", "solo")
