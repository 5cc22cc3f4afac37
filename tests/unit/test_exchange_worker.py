"""ExchangeWorker on real shared-memory rings, driven in this process: orders and market data in,
reports out with dense seq and publish stamps; parity mode holds market data behind the watermark;
a full output ring holds reports back without losing any; drain applies orders still in flight."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hftshm.codes import Action, EventFlag, EventKind, OrderType, ReportEvent, Side, TimeInForce
from hftshm.exchange.worker import COUNTERS, WATERMARK_ACTION, ExchangeWorker
from hftshm.metrics.histogram_nb import COUNT, SLOTS
from hftshm.runtime.worker import WorkerContext
from hftshm.transport.ring import Ring
from hftshm.transport.testing import no_segment_leaks, temporary_rings, unique_name

T0 = 1_700_000_000_000_000_000
US = 1000


@pytest.fixture
def rings():
    specs = {"orders": ("order", 64), "md": ("market_event", 64), "reports": ("execution_report", 8)}
    with temporary_rings(specs) as made:
        yield made


def start(rings, tmp_path: Path, counters: np.ndarray | None = None, **params) -> tuple[ExchangeWorker, WorkerContext]:
    """A started worker; ``counters``: the status row a predecessor left (a restart), else a fresh one."""
    counters = np.zeros(32, dtype=np.int64) if counters is None else counters
    ctx = WorkerContext(name="exchange", params=params, inputs={"exchange.orders": rings["orders"],
                                                                "md.exchange": rings["md"]},
                        outputs={"exchange.reports": rings["reports"]}, config=None,
                        counters=counters, histograms={"hop": np.zeros(SLOTS, np.int64)},
                        run_dir=tmp_path)
    worker = ExchangeWorker(batch=16, **params)
    worker.on_start(ctx)
    return worker, ctx


def send_order(ring, order_id, side, price, qty, ts_us, action=Action.NEW, tif=TimeInForce.GTC):
    view = ring.claim(1)
    view[0] = 0
    rec = view[0]
    rec["order_id"], rec["action"], rec["side"], rec["price"], rec["qty"] = order_id, action, side, price, qty
    rec["order_type"], rec["tif"], rec["symbol_id"], rec["owner"] = OrderType.LIMIT, tif, 1, 1
    rec["market_ts_ns"], rec["ts_ns"] = T0 + ts_us * US, 1
    ring.commit(1)


def send_event(ring, ts_us, kind, side, price, qty, uid=1):
    view = ring.claim(1)
    view[0] = 0
    rec = view[0]
    rec["exch_ts_ns"], rec["kind"], rec["side"], rec["price"], rec["qty"] = T0 + ts_us * US, kind, side, price, qty
    rec["update_id"], rec["symbol_id"], rec["flags"] = uid, 1, EventFlag.LAST_IN_MESSAGE
    ring.commit(1)


def drain_reports(ring) -> np.ndarray:
    view = ring.poll(1024)
    out = view.copy()
    ring.release(len(view))
    return out


def test_orders_and_market_data_in_reports_out(rings, tmp_path):
    worker, ctx = start(rings, tmp_path)
    send_event(rings["md"], 0, EventKind.DEPTH, Side.SELL, 100.1, 1.0)
    send_event(rings["md"], 0, EventKind.DEPTH, Side.BUY, 100.0, 1.0)
    assert worker.do_work() == 2
    send_order(rings["orders"], 1, Side.BUY, 100.1, 0.4, 10)
    send_order(rings["orders"], 2, Side.BUY, math.nan, 0.4, 10)
    worker.do_work()
    send_event(rings["md"], 5000, EventKind.DEPTH, Side.BUY, 99.9, 1.0)  # market time passes the arrival
    worker.do_work()
    reports = drain_reports(rings["reports"])
    assert [(int(r["order_id"]), int(r["event"])) for r in reports] == [
        (1, ReportEvent.ACK), (1, ReportEvent.FILL), (2, ReportEvent.REJECT)]
    assert list(reports["seq"]) == [0, 1, 2] and (reports["local_ts_ns"] > 0).all()
    assert reports[0]["exch_ts_ns"] > T0 + 10 * US
    counters = dict(zip(COUNTERS, ctx.counters))
    assert counters["orders_in"] == 2 and counters["events_in"] == 3 and counters["fills"] == 1
    assert counters["rejects"] == 1 and ctx.histograms["hop"][COUNT] == 2


def test_parity_holds_market_data_behind_the_upstream_watermark(rings, tmp_path):
    worker, ctx = start(rings, tmp_path, parity=True)
    send_event(rings["md"], 0, EventKind.DEPTH, Side.SELL, 100.1, 1.0)
    send_event(rings["md"], 1000, EventKind.DEPTH, Side.SELL, 100.2, 1.0)
    assert worker.do_work() == 0 and ctx.counters[COUNTERS.index("horizon_waits")] == 1  # no watermark yet
    send_order(rings["orders"], 0, 0, 0.0, 0.0, 0, action=WATERMARK_ACTION)  # upstream: done up to t=0
    worker.do_work()
    assert worker.sim.clock_ns == T0  # t=0 applied; t=1000us is beyond 0 + 50us min latency
    send_order(rings["orders"], 0, 0, 0.0, 0.0, 2000, action=WATERMARK_ACTION)
    worker.do_work()
    assert worker.sim.clock_ns == T0 + 1000 * US and ctx.counters[COUNTERS.index("watermarks")] == 2
    assert len(drain_reports(rings["reports"])) == 0  # watermark records are not orders


def test_full_output_ring_holds_reports_back_and_drain_applies_orders_in_flight(rings, tmp_path):
    worker, ctx = start(rings, tmp_path)
    send_event(rings["md"], 0, EventKind.DEPTH, Side.BUY, 100.0, 1.0)
    worker.do_work()
    for k in range(1, 8):  # 7 rejects (bad qty) + 7 acks: more than the 8-slot report ring
        send_order(rings["orders"], k, Side.SELL, 101.0, 0.0, 0)
        send_order(rings["orders"], 100 + k, Side.SELL, 101.0, 0.1, 0)
    worker.do_work()
    assert rings["reports"].occupancy() == 0  # not arrived: market time has not moved
    assert worker.on_drain() == 14  # upstream stopped: the 14 orders in flight arrive at their own times
    assert worker.on_drain() == 0  # the report ring is full: the rest waits, nothing is lost
    got = drain_reports(rings["reports"])
    assert len(got) == 8 and ctx.counters[COUNTERS.index("backlog_gauge")] == 6
    worker.do_work()
    got = np.concatenate([got, drain_reports(rings["reports"])])
    assert len(got) == 14 and list(got["seq"]) == list(range(14))
    assert (got["event"] == ReportEvent.ACK).sum() == 7 and (got["event"] == ReportEvent.REJECT).sum() == 7


def test_worker_needs_its_rings(tmp_path):
    with no_segment_leaks():
        ring = Ring.create(unique_name("xo"), "order", 16)
        try:
            ctx = WorkerContext(name="exchange", params={}, inputs={"o": ring}, outputs={}, config=None,
                                counters=np.zeros(32, np.int64), histograms={}, run_dir=tmp_path)
            with pytest.raises(ValueError, match="market_event"):
                ExchangeWorker().on_start(ctx)
        finally:
            ring.close()
            ring.unlink()


def _exchange_script(rings, step):
    """The script of test_orders_and_market_data_in_reports_out, stepping with ``step()``."""
    send_event(rings["md"], 0, EventKind.DEPTH, Side.SELL, 100.1, 1.0)
    send_event(rings["md"], 0, EventKind.DEPTH, Side.BUY, 100.0, 1.0)
    step()
    send_order(rings["orders"], 1, Side.BUY, 100.1, 0.4, 10)
    send_order(rings["orders"], 2, Side.BUY, math.nan, 0.4, 10)
    send_order(rings["orders"], 0, 0, 0.0, 0.0, 10, action=WATERMARK_ACTION)  # a watermark: not an order
    step()
    send_event(rings["md"], 5000, EventKind.DEPTH, Side.BUY, 99.9, 1.0)
    step()
    return drain_reports(rings["reports"])


def test_compiled_stage_reports_what_the_python_step_reports(tmp_path):
    """exchange.stage_nb.step over the worker's bundle == ExchangeWorker.do_work: the same reports
    (every field but the publish stamp), dense seq, the same counters."""
    from hftshm.exchange import stage_nb

    got = {}
    for mode in ("python", "compiled"):
        specs = {"orders": ("order", 64), "md": ("market_event", 64), "reports": ("execution_report", 8)}
        with temporary_rings(specs) as rings:
            worker, ctx = start(rings, tmp_path)
            stage = worker.compiled_stage()
            assert stage is not None
            step = worker.do_work if mode == "python" else (lambda: stage_nb.step(stage))
            reports = _exchange_script(rings, step)
            if mode == "compiled":
                worker.compiled_housekeeping(0)
            got[mode] = (reports, dict(zip(COUNTERS, ctx.counters)), worker.watermark_ns)
    py, nb = got["python"], got["compiled"]
    fields = [f for f in py[0].dtype.names if f != "local_ts_ns"]
    assert len(nb[0]) == 3 and (nb[0]["local_ts_ns"] > 0).all()
    for field in fields:  # NaN prices (the rejected order) compare equal here
        np.testing.assert_array_equal(nb[0][field], py[0][field], err_msg=field)
    for name in ("orders_in", "events_in", "reports_out", "fills", "rejects", "watermarks"):
        assert nb[1][name] == py[1][name], name
    assert nb[2] == py[2] == T0 + 10 * US


def test_compiled_stage_holds_reports_a_full_ring_cannot_take(rings, tmp_path):
    from hftshm.exchange import stage_nb

    worker, ctx = start(rings, tmp_path)
    stage = worker.compiled_stage()
    send_event(rings["md"], 0, EventKind.DEPTH, Side.BUY, 100.0, 1.0)
    stage_nb.step(stage)
    for k in range(1, 8):  # 7 rejects (bad qty) + 7 acks: more than the 8-slot report ring
        send_order(rings["orders"], k, Side.SELL, 101.0, 0.0, 0)
        send_order(rings["orders"], 100 + k, Side.SELL, 101.0, 0.1, 0)
    stage_nb.step(stage)
    send_event(rings["md"], 5000, EventKind.DEPTH, Side.BUY, 99.9, 1.0)  # the orders arrive
    stage_nb.step(stage)
    assert rings["reports"].occupancy() == 8 and rings["md"].occupancy() == 0
    send_event(rings["md"], 6000, EventKind.DEPTH, Side.BUY, 99.8, 1.0)
    assert stage_nb.step(stage) == 0 and rings["md"].occupancy() == 1  # staged reports first: no input
    got = drain_reports(rings["reports"])
    worker.do_work()  # the Python path takes over the staged rest first, in order
    got = np.concatenate([got, drain_reports(rings["reports"])])
    assert len(got) == 14 and list(got["seq"]) == list(range(14))
    assert (got["event"] == ReportEvent.ACK).sum() == 7 and (got["event"] == ReportEvent.REJECT).sum() == 7


def test_a_restart_counts_the_market_events_a_killed_predecessor_released_but_never_counted(rings, tmp_path):
    """events_in is bumped just after the market ring's release; a SIGKILL in between left the count
    a batch short of the released cursor (issue 13: 594,658 of 598,754 after a kill, 4,096 = one
    batch). The status row outlives the process: the successor counts from the released cursor."""
    from hftshm.exchange import stage_nb

    events_in = COUNTERS.index("events_in")
    worker, ctx = start(rings, tmp_path)
    for ts in range(3):
        send_event(rings["md"], ts, EventKind.DEPTH, Side.BUY, 100.0, 1.0)
    assert worker.do_work() == 3 and ctx.counters[events_in] == 3
    # the next batch as the killed process left it: applied and released, the count not yet bumped
    for ts in range(3, 5):
        send_event(rings["md"], ts, EventKind.DEPTH, Side.BUY, 100.0, 1.0)
    view = rings["md"].poll(16)
    worker.sim.on_market(view)
    rings["md"].release(len(view))
    assert ctx.counters[events_in] == 3 and rings["md"].consumer_position == 5
    successor, _ = start(rings, tmp_path, counters=ctx.counters)
    assert ctx.counters[events_in] == 5  # every released event counted, none twice
    assert successor.do_work() == 0  # nothing applied again: the ring resumes at the released cursor
    send_event(rings["md"], 5, EventKind.DEPTH, Side.BUY, 100.0, 1.0)
    assert successor.do_work() == 1 and ctx.counters[events_in] == 6 == rings["md"].consumer_position
    drain_reports(rings["reports"])  # the successor's session announcement
    successor.session.logged_on = True  # as after the OMS's answer: the compiled stage counts on
    send_event(rings["md"], 6, EventKind.DEPTH, Side.BUY, 100.0, 1.0)
    stage_nb.step(successor.compiled_stage())
    assert ctx.counters[events_in] == 7 == rings["md"].consumer_position


def test_a_restart_counts_the_reports_a_killed_predecessor_wrote_but_never_counted(rings, tmp_path):
    """reports_out is bumped just after a report ring's commit (stage_nb.flush): a SIGKILL in between
    left it short of what the ring holds. The successor counts from the ring's producer cursor."""
    reports_out = COUNTERS.index("reports_out")
    worker, ctx = start(rings, tmp_path)
    send_event(rings["md"], 0, EventKind.DEPTH, Side.SELL, 100.1, 1.0)
    send_order(rings["orders"], 1, Side.BUY, math.nan, 0.4, 10)  # rejected at once
    send_order(rings["orders"], 2, Side.BUY, math.nan, 0.4, 10)
    worker.do_work()
    send_event(rings["md"], 5000, EventKind.DEPTH, Side.BUY, 99.9, 1.0)
    worker.do_work()
    assert ctx.counters[reports_out] == 2 == rings["reports"].producer_position
    ctx.counters[reports_out] -= 1  # the last report written, the count not yet bumped: killed
    successor, _ = start(rings, tmp_path, counters=ctx.counters)
    # the successor announces its session: one report more, counted
    assert ctx.counters[reports_out] == 3 == rings["reports"].producer_position
