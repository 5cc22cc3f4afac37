"""StrategyWorker on real shared-memory rings, in one process: data in, intents out, control ring."""

import json
import time
import logging
import uuid

import numpy as np
import pytest

from hftshm.codes import Action, ControlKind, ReportEvent, Side
from hftshm.runtime.worker import WorkerContext
from hftshm.strategies.runtime import STATUS_LAYOUT, status_rows
from hftshm.strategies.worker import StrategyWorker, requests_dir, status_segment_name
from hftshm.transport.ring import Ring
from hftshm.transport.segment import Segment, exists
from tests.unit.strategy_fixtures import bbo_events, report, snapshot

STRATEGIES = {
    "mm": {"class": "market_maker", "symbol": "BTCUSDT", "spread_bps": 4.0},
    "buyer": {"class": "tests.unit.strategy_fixtures:BuyOnce"},
    "off": {"class": "market_maker", "enabled": False},
}


@pytest.fixture
def rig(tmp_path):
    prefix = f"test_hftshm_{uuid.uuid4().hex[:8]}_"
    specs = {"md.strategies": "market_event", "book.strategies": "book_snapshot", "risk.rejects": "execution_report",
             "control.strategies": "control_message", "intents": "order_intent"}
    rings = {key: Ring.create(f"{prefix}ring.{key}", layout, 1024) for key, layout in specs.items()}
    counters = np.zeros(32, dtype=np.int64)
    ctx = WorkerContext(name="strategies", params={"strategies": STRATEGIES},
                        inputs={k: r for k, r in rings.items() if k != "intents"},
                        outputs={"intents": rings["intents"]}, config=None, counters=counters, histograms={},
                        run_dir=tmp_path, log=logging.getLogger("test.strategies"))
    worker = StrategyWorker(first_client_order_id=1)
    worker.on_start(ctx)
    yield worker, rings, prefix, counters
    worker.on_close()
    for ring in rings.values():
        ring.unlink()
        ring.close()


def write(ring, records):
    view = ring.claim(len(records))
    assert len(view) == len(records)
    view[:] = records
    ring.commit(len(records))


def read_all(ring):
    view = ring.poll(1024)
    out = view.copy()
    ring.release(len(view))
    return out


def control(rings, kind, target=-1, value=0):
    assert rings["control.strategies"].try_write({"kind": int(kind), "target_id": target, "value_i": value})


def test_market_data_in_intents_out_with_status_in_shared_memory(rig):
    worker, rings, prefix, counters = rig
    write(rings["md.strategies"], bbo_events([(60000.0, 60000.1)]))
    write(rings["book.strategies"], snapshot(60000.0, 60000.1))
    assert worker.do_work() > 0
    intents = read_all(rings["intents"])
    assert sorted(intents["strategy_id"]) == [1, 1, 2]  # two quotes from mm, one buy from buyer
    assert list(intents["seq"]) == [0, 1, 2] and np.all(intents["ts_ns"] > 0)
    mm_quotes = intents[intents["strategy_id"] == 1]
    assert set(mm_quotes["side"]) == {Side.BUY, Side.SELL}
    # a risk reject comes back through its ring into the strategy's portfolio
    coid = int(intents[intents["strategy_id"] == 2][0]["client_order_id"])
    write(rings["risk.rejects"], report(ReportEvent.REJECT, coid, strategy_id=2, reason=21))
    worker.do_work()
    # the status table is written off the order path: after reports, at the next idle step
    assert worker.do_work() == 0
    segment = Segment.attach(status_segment_name(prefix, "strategies"))
    table = np.ndarray((64,), dtype=STATUS_LAYOUT.dtype, buffer=segment.buf)
    rows = {r["name"]: r for r in status_rows(table.copy())}
    del table
    segment.close()
    assert set(rows) == {"mm", "buyer"}  # "off" is declared but not enabled
    assert rows["buyer"]["rejects"] == 1 and rows["mm"]["intents"] == 2
    assert counters[StrategyWorker.COUNTER_NAMES.index("intents")] == 3


def test_control_ring_pauses_resumes_and_hot_adds(rig, tmp_path):
    worker, rings, prefix, counters = rig
    write(rings["book.strategies"], snapshot(60000.0, 60000.1))
    worker.do_work()
    read_all(rings["intents"])
    control(rings, ControlKind.STRATEGY_PAUSE, target=1)
    worker.do_work()
    cancels = read_all(rings["intents"])
    assert list(cancels["action"]) == [Action.CANCEL, Action.CANCEL] and set(cancels["strategy_id"]) == {1}
    assert worker.host.slot("mm").state.name == "PAUSED"
    registry = json.loads((tmp_path / "strategies" / "strategies.json").read_text())
    assert {e["name"]: e["state"] for e in registry}["mm"] == "paused"
    control(rings, ControlKind.STRATEGY_RESUME, target=1)
    worker.do_work()
    assert worker.host.slot("mm").state.name == "RUNNING"

    folder = requests_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "7.json").write_text(json.dumps({"name": "mr", "class": "mean_reversion", "params": {"window": 10}}))
    (folder / "8.json").write_text(json.dumps({"name": "bad", "class": "market_maker", "params": {"spread_bps": -2}}))
    control(rings, ControlKind.STRATEGY_ADD, value=7)
    control(rings, ControlKind.STRATEGY_ADD, value=8)
    # mean_reversion is compiled: it compiles in another process while the running ones keep being
    # served (no duty cycle waits for the compiler), and is added once that process is done
    longest, deadline = 0.0, time.monotonic() + 600
    while not (folder / "7.result.json").exists():
        assert time.monotonic() < deadline, "the hot add never finished"
        started = time.monotonic()
        worker.do_work()
        longest = max(longest, time.monotonic() - started)
        time.sleep(0.01)
    assert longest < 5.0, f"a duty cycle took {longest:.1f} s during the hot add (compiling inside the worker?)"
    assert json.loads((folder / "7.result.json").read_text()) == {"ok": True, "strategy_id": 3}
    refused = json.loads((folder / "8.result.json").read_text())
    assert not refused["ok"] and "spread_bps" in refused["error"]
    assert worker.host.strategy("mr").params["window"] == 10
    control(rings, ControlKind.STRATEGY_REMOVE, target=3)
    worker.do_work()
    assert "mr" not in worker.host.names()


def test_close_unlinks_the_status_segment(rig):
    worker, rings, prefix, _ = rig
    name = status_segment_name(prefix, "strategies")
    assert exists(name)
    worker.on_close()
    assert not exists(name)


def test_a_restarted_worker_writes_into_the_status_segment_readers_already_hold(rig, tmp_path):
    """After a SIGKILL the supervisor starts a new worker while the summary, the dashboard and
    /metrics keep the mapping they attached at start: the new worker's rows must appear there."""
    worker, rings, prefix, _ = rig
    name = status_segment_name(prefix, "strategies")
    reader = Segment.attach(name)  # attached once, as hftshm.metrics.live does
    table = np.ndarray((64,), dtype=STATUS_LAYOUT.dtype, buffer=reader.buf)
    worker._segment = None  # the predecessor dies without closing (SIGKILL): its segment stays
    ctx = worker.ctx
    successor = StrategyWorker(first_client_order_id=1000)
    successor.on_start(ctx)
    try:
        successor.host.slot("mm").strategy.portfolio.pf[0] = 0.021  # a position booked after the restart
        successor.host.publish_status()
        rows = {r["name"]: r for r in status_rows(table.copy())}
        assert rows["mm"]["position"] == pytest.approx(0.021)
    finally:
        del table
        reader.close()
        successor.on_close()


def test_a_restart_counts_the_market_data_a_killed_predecessor_released_but_never_counted(rig):
    """The events and books counts are bumped just after each ring's release: a SIGKILL in between
    left them short of what the dead worker took (issue 13). The successor counts from the cursors."""
    worker, rings, _, counters = rig
    events, books = StrategyWorker._C["events"], StrategyWorker._C["books"]
    write(rings["md.strategies"], bbo_events([(60000.0, 60000.1)]))
    write(rings["book.strategies"], snapshot(60000.0, 60000.1))
    worker.do_work()
    assert counters[events] == 2 and counters[books] == 1
    # the next data as the killed worker left it: handed to the strategies and released, not counted
    write(rings["md.strategies"], bbo_events([(60000.0, 60000.2), (60000.1, 60000.2)]))
    write(rings["book.strategies"], snapshot(60000.0, 60000.2))
    for ring, hand_over in ((rings["md.strategies"], worker.host.on_events), (rings["book.strategies"], worker.host.on_books)):
        view = ring.poll(1024)
        hand_over(view)
        ring.release(len(view))
    assert counters[events] == 2 and counters[books] == 1
    worker._segment = None  # killed: its status segment stays for the successor
    successor = StrategyWorker(first_client_order_id=1000)
    successor.on_start(worker.ctx)
    try:
        assert counters[events] == 6 == rings["md.strategies"].consumer_position
        assert counters[books] == 2 == rings["book.strategies"].consumer_position
        write(rings["md.strategies"], bbo_events([(60000.0, 60000.1)]))
        successor.do_work()
        assert counters[events] == 8 == rings["md.strategies"].consumer_position
    finally:
        successor.on_close()


def test_a_restarted_worker_counts_orphan_reports_on_from_its_predecessors(rig):
    worker, rings, _, counters = rig
    orphans = StrategyWorker._C["orphan_reports"]
    write(rings["risk.rejects"], report(ReportEvent.REJECT, 1, strategy_id=99, reason=21))
    worker.do_work()
    worker._status()
    assert counters[orphans] == 1, "a report for a strategy id this worker does not run"
    worker._segment = None  # killed: its status segment stays for the successor
    successor = StrategyWorker(first_client_order_id=1000)
    successor.on_start(worker.ctx)
    try:
        write(rings["risk.rejects"], report(ReportEvent.REJECT, 2, strategy_id=99, reason=21))
        successor.do_work()
        successor._status()
        assert counters[orphans] == 2
    finally:
        successor.on_close()


def test_a_restart_counts_the_reports_and_intents_a_killed_predecessor_moved_but_never_counted(rig):
    """Reports are counted just after their ring's release and intents just after their ring's
    commit: a SIGKILL in between left the counts short. The successor counts from the cursors."""
    worker, rings, _, counters = rig
    reports, intents = StrategyWorker._C["reports"], StrategyWorker._C["intents"]
    write(rings["book.strategies"], snapshot(60000.0, 60000.1))
    worker.do_work()
    sent = read_all(rings["intents"])
    assert counters[intents] == len(sent) > 0
    # as the killed worker left them: a report handed over and released, an intent batch committed,
    # neither counted
    write(rings["risk.rejects"], report(ReportEvent.REJECT, int(sent[0]["client_order_id"]),
                                        strategy_id=int(sent[0]["strategy_id"]), reason=21))
    view = rings["risk.rejects"].poll(16)
    worker.host.on_reports(view)
    rings["risk.rejects"].release(len(view))
    counters[intents] -= 1
    worker._segment = None  # killed: its status segment stays for the successor
    successor = StrategyWorker(first_client_order_id=1000)
    successor.on_start(worker.ctx)
    try:
        assert counters[reports] == 1 == rings["risk.rejects"].consumer_position
        assert counters[intents] == len(sent) == rings["intents"].producer_position
    finally:
        successor.on_close()
