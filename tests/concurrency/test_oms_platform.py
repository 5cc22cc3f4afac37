"""The OMS and its writer as separate processes under the supervisor, between a risk stand-in, an
exchange stand-in and a strategies stand-in; the OMS process is SIGKILLed mid-run and restarted by
the supervisor. Every order ends up exactly once in the database, consistent with its events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hftshm.codes import OrderState as S
from hftshm.oms.store import Store
from hftshm.platform import PlatformConfig
from hftshm.runtime import segments
from hftshm.runtime.supervisor import Supervisor

ORDERS = 1500


def platform_config(run_dir: Path) -> PlatformConfig:
    raw = {
        "platform": {"run_dir": str(run_dir), "placement": "process-per-worker"},
        "supervisor": {"heartbeat_timeout_s": 60.0, "drain_timeout_s": 30.0, "restart_backoff_s": 0.2},
        "symbols": {"BTCUSDT": {"id": 1, "tick_size": 0.1, "lot_size": 0.001}},
        "oms": {"ack_timeout_ms": 1000, "batch_size": 64},
        "workers": {
            "risk": {"class": "hftshm.oms.testing:OrderSource", "process": "risk", "wait": "spin-park",
                     "params": {"count": ORDERS, "batch": 10, "interval_ms": 10}},
            "oms": {"class": "hftshm.oms.worker:OmsWorker", "process": "oms", "wait": "spin-park"},
            "oms_writer": {"class": "hftshm.oms.writer:OrderEventWriter", "process": "oms_writer",
                           "wait": "spin-park"},
            "exchange": {"class": "hftshm.oms.testing:EchoExchange", "process": "exchange", "wait": "spin-park"},
            "strategies": {"class": "hftshm.oms.testing:ReportSink", "process": "strategies", "wait": "spin-park"},
        },
        "rings": [
            {"name": "orders", "layout": "order", "from": "risk", "to": "oms", "capacity": 1024},
            {"name": "exchange.orders", "layout": "order", "from": "oms", "to": "exchange", "capacity": 1024},
            {"name": "exchange.reports", "layout": "execution_report", "from": "exchange", "to": "oms",
             "capacity": 1024},
            {"name": "oms.reports.strategies", "layout": "execution_report", "from": "oms", "to": "strategies",
             "capacity": 1024},
            {"name": "oms.reports.risk", "layout": "execution_report", "from": "oms", "to": "risk", "capacity": 1024},
            {"name": "oms.events", "layout": "order_event", "from": "oms", "to": "oms_writer", "capacity": 4096},
        ],
    }
    return PlatformConfig.from_raw(raw, base_dir=run_dir)


def counters(sup: Supervisor, worker: str) -> dict[str, int]:
    entry = sup.manifest.worker(worker)
    values = sup.status.counters(entry.row)
    return {name: int(values[i]) for i, name in enumerate(entry.counter_names)}


def wait_for(sup: Supervisor, condition, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        sup.poll()
        assert time.monotonic() < deadline, (f"timed out; workers {sup.worker_states()}, "
                                             f"exchange {counters(sup, 'exchange')}, oms {counters(sup, 'oms')}")
        time.sleep(0.02)


@pytest.mark.slow
def test_oms_process_killed_and_restarted_by_the_supervisor_loses_nothing(run_dir):
    config = platform_config(run_dir)
    with Supervisor(config.topology, config) as sup:
        sup.start()
        wait_for(sup, lambda: counters(sup, "exchange")["distinct_orders"] >= ORDERS // 3)
        sup.kill("oms")  # SIGKILL mid-run; the supervisor starts it again
        wait_for(sup, lambda: sup.handles["oms"].restarts >= 1)
        wait_for(sup, lambda: counters(sup, "exchange")["distinct_orders"] == ORDERS)
        # quiet: every report has reached strategies and risk
        filled = ORDERS // 3
        wait_for(sup, lambda: counters(sup, "oms")["open_orders_gauge"] == ORDERS - filled
                 and counters(sup, "strategies")["fills"] >= ORDERS - ORDERS // 3 - 100)
        oms = counters(sup, "oms")
        assert oms["epoch_gauge"] == 2, "the restarted OMS runs under a new epoch"
        assert 0 < oms["recovered_orders"] < ORDERS and oms["orders_created"] > 0, "killed mid-run"
        sup.shutdown()
        prefix = sup.prefix
    assert segments.segments_of(prefix) == []
    store = Store(f"sqlite:///{run_dir / 'oms.sqlite'}")
    try:
        rows = store.list_orders(limit=10 * ORDERS)
        assert sorted(r["client_order_id"] for r in rows) == list(range(1, ORDERS + 1)), "one order per intent"
        expected = {0: S.FILLED, 1: S.PARTIALLY_FILLED, 2: S.ACKNOWLEDGED}
        assert all(r["state"] == expected[r["client_order_id"] % 3] for r in rows)
        assert store.check_consistency() == []
        assert store.count("fills") == sum(1 for cid in range(1, ORDERS + 1) if cid % 3 != 2)
    finally:
        store.close()
