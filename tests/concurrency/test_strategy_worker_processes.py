"""The strategy worker in its own process under the supervisor, fed the real day by the feed worker:
intents flow out, rejects flow back, a raising strategy is paused while the market maker carries
on, and the control ring pauses and hot-adds strategies mid-run. No shared memory is left behind."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from hftshm.platform import PlatformConfig
from hftshm.runtime import segments
from hftshm.runtime.supervisor import Supervisor
from hftshm.strategies.runtime import STATUS_LAYOUT, status_rows
from hftshm.strategies.worker import requests_dir, status_segment_name
from hftshm.transport.segment import Segment

DATA = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"


def config(run_dir: Path) -> PlatformConfig:
    raw = {
        "platform": {"run_dir": str(run_dir), "placement": "process-per-worker"},
        "supervisor": {"heartbeat_timeout_s": 10.0, "drain_timeout_s": 20.0},
        "symbols": {"BTCUSDT": {"id": 1, "tick_size": 0.1, "lot_size": 0.001}},
        "feed": {"data": [str(DATA)], "speed": 0.0},
        "strategies": {
            "mm": {"class": "market_maker", "spread_bps": 2.0},
            "bad": {"class": "tests.unit.strategy_fixtures:Raiser"},
        },
        "workers": {
            "feed": {"class": "hftshm.feed.worker:FeedWorker", "process": "p1", "wait": "spin-yield"},
            "strategies": {"class": "hftshm.strategies.worker:StrategyWorker", "process": "p2", "wait": "spin-park"},
            "sink": {"class": "tests.concurrency.strategy_helpers:IntentSink", "process": "p3", "wait": "spin-park",
                     "params": {"pause_after": 20, "add_request": 7}},
        },
        "rings": [
            {"name": "md.strategies", "layout": "market_event", "from": "feed", "to": "strategies"},
            {"name": "book.strategies", "layout": "book_snapshot", "from": "feed", "to": "strategies"},
            {"name": "intents", "layout": "order_intent", "from": "strategies", "to": "sink"},
            {"name": "rejects", "layout": "execution_report", "from": "sink", "to": "strategies"},
            {"name": "control.strategies", "layout": "control_message", "from": "sink", "to": "strategies",
             "capacity": 64},
        ],
    }
    return PlatformConfig.from_raw(raw, base_dir=run_dir)


def read_status(prefix: str) -> dict[str, dict]:
    segment = Segment.attach(status_segment_name(prefix, "strategies"))
    table = np.ndarray((segment.size // STATUS_LAYOUT.itemsize,), dtype=STATUS_LAYOUT.dtype, buffer=segment.buf)
    rows = {r["name"]: r for r in status_rows(table.copy())}
    del table
    segment.close()
    return rows


def test_strategies_in_their_own_process_on_the_real_day(run_dir):
    cfg = config(run_dir)
    folder = requests_dir(run_dir)
    folder.mkdir(parents=True)
    (folder / "7.json").write_text(json.dumps({"name": "late_mm", "class": "market_maker",
                                               "params": {"spread_bps": 5.0}}))
    with Supervisor(cfg.topology, cfg, create_control=False) as sup:
        sup.start()
        deadline = time.monotonic() + 300
        while not sup.finished():
            sup.poll()
            assert time.monotonic() < deadline, f"not finished: {sup.worker_states()}"
            time.sleep(0.02)
        time.sleep(0.2)  # the status table refreshes every 50 ms
        status = read_status(sup.prefix)
        # copies: the status segment is unmapped when the supervisor closes
        sink = sup.status.counters(sup.manifest.worker("sink").row).copy()
        strategies = sup.status.counters(sup.manifest.worker("strategies").row).copy()
        sup.shutdown()
        prefix = sup.prefix
    assert status["bad"]["state"] == "failed" and status["bad"]["errors"] == 1
    assert status["mm"]["state"] == "paused"  # paused through the control ring by the sink
    assert status["mm"]["intents"] >= 20 and status["mm"]["rejects"] >= 2
    assert status["late_mm"]["state"] == "running" and status["late_mm"]["intents"] > 0
    assert json.loads((folder / "7.result.json").read_text())["ok"]
    assert int(sink[0]) == sum(int(r["intents"]) for r in status.values())
    assert int(strategies[0]) == 598_754  # every market event reached the strategy worker
    assert segments.segments_of(prefix) == []


def test_operator_commands_drive_a_running_worker(run_dir):
    from hftshm.strategies import control

    cfg = config(run_dir)
    raw = cfg.raw
    raw["workers"]["sink"]["params"] = {"pause_after": 10**9}  # the operator drives the control ring here
    raw["rings"][-1]["from"] = "operator"
    raw["strategies"].pop("bad")
    cfg = PlatformConfig.from_raw(raw, base_dir=run_dir)
    with Supervisor(cfg.topology, cfg, create_control=False) as sup:
        sup.start()
        manifest = sup.manifest
        deadline = time.monotonic() + 120
        while not control.status(manifest):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert control.pause_strategy(manifest, "mm") == "paused"
        assert control.resume_strategy(manifest, 1) == "running"
        new_id = control.add_strategy(manifest, "mr", "mean_reversion", "BTCUSDT", {"window": "20"})
        assert {r["name"]: r["state"] for r in control.status(manifest)}["mr"] == "running"
        try:
            control.add_strategy(manifest, "broken", "market_maker", "BTCUSDT", {"spread_bps": -1})
            raise AssertionError("a bad parameter must be refused")
        except control.ControlError as exc:
            assert "spread_bps" in str(exc)
        assert control.remove_strategy(manifest, "mr") == "removed"
        try:
            control.pause_strategy(manifest, "nope")
            raise AssertionError("an unknown strategy must be refused")
        except control.ControlError as exc:
            assert "no strategy 'nope'" in str(exc)
        sup.shutdown()
        prefix = sup.prefix
    assert new_id == 2
    assert segments.segments_of(prefix) == []
