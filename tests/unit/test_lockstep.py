"""Deterministic replay's building blocks: settle detection, message framing, watermarks, the
exchange's held reports and closed market, the feed's one-message staging."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hftshm.codes import Action, EventFlag, EventKind, Reason, ReportEvent
from hftshm.exchange import lockstep as exchange_lockstep
from hftshm.feed.replay import Replayer
from hftshm.runtime import lockstep
from hftshm.symbols import DEFAULT_SYMBOLS
from hftshm.transport.layout import load
from hftshm.transport.ring import Ring

REAL_DAY = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"
REPORT = load("execution_report")
EVENT = load("market_event")
ORDER = load("order")


def _write(ring, n=1):
    view = ring.claim(n)
    view[:] = 0
    ring.commit(n)


def test_settled_only_when_every_ring_is_empty():
    a = Ring.private("market_event", 16, name="a")
    b = Ring.private("order_intent", 16, name="b")
    settle = lockstep.PipelineSettle({"a": (a, "feed", "strategies"), "b": (b, "strategies", "risk"),
                                      "risk.out": (Ring.private("order", 16, name="c"), "risk", "feed")})
    assert settle.settled()
    _write(a)
    assert not settle.settled()
    assert settle.busy() == ["a"]
    a.poll(1)
    _write(b)  # the stage published what the record caused before releasing it
    a.release(1)
    assert not settle.settled()
    b.poll(1)
    b.release(1)
    assert settle.settled()


def test_rings_into_a_sink_do_not_keep_the_pipeline_from_settling():
    events = Ring.private("order_event", 16, name="events")
    tee = Ring.private("order_event", 16, name="tee")
    intents = Ring.private("order_intent", 16, name="intents")
    orders = Ring.private("order", 16, name="orders")
    settle = lockstep.PipelineSettle({"oms.events": (events, "oms", "export"),  # a bridge export tee
                                      "export.events": (tee, "export", "oms_writer"),
                                      "intents": (intents, "strategies", "oms"),
                                      "oms.orders": (orders, "oms", "strategies")})
    # oms_writer produces into no ring (a database sink), and export's every output goes into it
    assert settle.names == ["intents", "oms.orders"]
    _write(events)
    _write(tee)
    assert settle.settled()
    _write(intents)
    assert not settle.settled()


def test_message_end_frames_one_exchange_message():
    events = EVENT.zeros(5)
    events["flags"][2] = EventFlag.LAST_IN_MESSAGE
    events["flags"][4] = EventFlag.LAST_IN_MESSAGE
    assert lockstep.message_end(events) == 3
    assert lockstep.message_end(events[3:4]) == 0  # the view ends before the message does


def test_end_of_data_marker_is_a_message_of_its_own():
    marker = EVENT.zeros(1)
    lockstep.end_of_data_record(marker, 123)
    assert lockstep.message_end(marker) == 1
    assert lockstep.is_end_of_data(marker)
    assert marker["exch_ts_ns"][0] == 123 and marker["kind"][0] == EventKind.END_OF_DATA
    assert not lockstep.is_end_of_data(EVENT.zeros(1))


def test_watermarks_are_found_skipped_and_tracked():
    reports = REPORT.zeros(4)
    reports["event"] = [ReportEvent.FILL, ReportEvent.WATERMARK, ReportEvent.ACK, ReportEvent.WATERMARK]
    reports["exch_ts_ns"] = [5, 10, 11, 20]
    assert lockstep.watermark_index(reports, 10) == 1
    assert lockstep.watermark_index(reports, 11) == 3
    assert lockstep.watermark_index(reports, 21) == -1
    kept = lockstep.without_watermarks(reports)
    assert list(kept["event"]) == [ReportEvent.FILL, ReportEvent.ACK]
    assert lockstep.last_watermark(reports, 0) == 20
    assert lockstep.last_watermark(reports[:1], 7) == 7


def test_held_reports_go_out_in_order_when_due_and_the_queue_grows():
    held = exchange_lockstep.HeldReports(capacity=4)
    for start in range(0, 12, 3):
        batch = REPORT.zeros(3)
        batch["local_ts_ns"] = np.arange(start, start + 3) * 10
        batch["client_order_id"] = np.arange(start, start + 3)
        held.push(batch)
    assert len(held) == 12
    due = held.take_due(45)
    assert list(due["client_order_id"]) == [0, 1, 2, 3, 4]
    assert len(held) == 7
    assert list(held.take_all()["client_order_id"]) == list(range(5, 12))
    assert len(held) == 0 and len(held.take_due(10**12)) == 0


def test_a_closed_market_rejects_new_orders_and_replaces_but_not_cancels():
    orders = ORDER.zeros(3)
    orders["action"] = [Action.NEW, Action.CANCEL, Action.REPLACE]
    orders["client_order_id"] = [1, 2, 3]
    orders["order_id"] = [10, 20, 30]
    rejects = exchange_lockstep.market_closed_rejects(orders, 99)
    assert list(rejects["client_order_id"]) == [1, 3]
    assert list(rejects["order_id"]) == [10, 30]
    assert set(rejects["event"]) == {ReportEvent.REJECT}
    assert set(rejects["reason"]) == {Reason.MARKET_CLOSED}
    assert set(rejects["exch_ts_ns"]) == {99}


def test_the_feed_stages_exactly_one_message_per_step_when_asked():
    replayer = Replayer.from_files([REAL_DAY], DEFAULT_SYMBOLS, speed=0.0)
    staged_total = 0
    try:
        for _ in range(300):
            n = replayer.step(max_events=replayer.next_message_events())
            assert n > 0
            last = replayer._staged[:n]
            assert int(last["flags"][-1]) & EventFlag.LAST_IN_MESSAGE
            assert not (last["flags"][:-1] & EventFlag.LAST_IN_MESSAGE).any()
            staged_total += n
    finally:
        replayer.close()
    assert staged_total > 300  # the first messages are a snapshot: many records each
