"""The risk worker in its own process under the supervisor: intents from another process are checked,
orders and rejects reach a third; ``hftshm kill-switch on --run-dir`` (found through the run manifest)
stops new orders and cancels every open one."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from hftshm.cli import app
from hftshm.platform import PlatformConfig
from hftshm.runtime import segments
from hftshm.runtime.supervisor import Supervisor

FIRST = 2000
SECOND = 300
BAD_EVERY = 10


def platform_config(run_dir: Path) -> PlatformConfig:
    raw = {
        "platform": {"run_dir": str(run_dir), "placement": "process-per-worker"},
        "supervisor": {"heartbeat_timeout_s": 30.0, "drain_timeout_s": 20.0},
        "symbols": {"BTCUSDT": {"id": 1, "tick_size": 0.1, "lot_size": 0.001}},
        "risk": {"max_position_per_symbol": 1000.0, "max_orders_burst": 1e6, "max_orders_burst_per_strategy": 1e6},
        "workers": {
            "source": {"class": "hftshm.risk.testing:IntentSource", "process": "p1", "wait": "spin-park",
                       "params": {"first": FIRST, "second": SECOND, "bad_every": BAD_EVERY}},
            "risk": {"class": "hftshm.risk.worker:RiskWorker", "process": "p2", "wait": "spin-park"},
            "sink": {"class": "hftshm.risk.testing:DecisionSink", "process": "p3", "wait": "spin-park"},
        },
        "rings": [
            {"name": "book.risk", "layout": "book_snapshot", "from": "source", "to": "risk", "capacity": 64},
            {"name": "intents", "layout": "order_intent", "from": "source", "to": "risk", "capacity": 512},
            {"name": "orders", "layout": "order", "from": "risk", "to": "sink", "capacity": 512},
            {"name": "risk.rejects", "layout": "execution_report", "from": "risk", "to": "sink", "capacity": 512},
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
        assert time.monotonic() < deadline, f"timed out; workers {sup.worker_states()}, sink {counters(sup, 'sink')}"
        time.sleep(0.02)


def test_kill_switch_from_the_cli_through_a_running_platform(run_dir):
    config = platform_config(run_dir)
    bad = FIRST // BAD_EVERY
    with Supervisor(config.topology, config) as sup:
        sup.start()
        wait_for(sup, lambda: counters(sup, "sink")["orders"] + counters(sup, "sink")["rejects"] == FIRST)
        sink = counters(sup, "sink")
        assert sink["orders"] == FIRST - bad and sink["reject_max_order_size"] == bad
        result = CliRunner().invoke(app, ["kill-switch", "on", "--run-dir", str(run_dir)])
        assert result.exit_code == 0, result.output
        # every open order is cancelled, every later intent is rejected for the kill switch
        wait_for(sup, lambda: counters(sup, "sink")["reject_kill_switch"] == SECOND
                 and counters(sup, "sink")["kill_cancels"] == FIRST - bad)
        result = CliRunner().invoke(app, ["risk", "status", "--json", "--run-dir", str(run_dir)])
        assert result.exit_code == 0 and '"kill_switch": true' in result.output
        assert sup.control.snapshot()["reject_counts"] == {"kill_switch": SECOND, "max_order_size": bad}
        sup.shutdown()
        prefix = sup.prefix
    assert segments.segments_of(prefix) == []
