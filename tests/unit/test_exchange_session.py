"""A restarted ExchangeWorker is a new exchange session: it announces itself to the OMS before any
other report, ignores the orders sent into the dead session until the OMS's LOGON, and keeps the
run's totals in its status row. The first start of a run announces nothing and takes orders at once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from hftshm.codes import Action, EventFlag, EventKind, OrderType, Reason, ReportEvent, Side, TimeInForce
from hftshm.exchange.session import VenueSession
from hftshm.exchange.worker import COUNTERS, ExchangeWorker
from hftshm.oms.engine import ORDER
from hftshm.runtime.worker import WorkerContext
from hftshm.transport.testing import temporary_rings

T0 = 1_700_000_000_000_000_000
US = 1000
C = {name: i for i, name in enumerate(COUNTERS)}


@pytest.fixture
def rings():
    specs = {"orders": ("order", 64), "md": ("market_event", 64), "reports": ("execution_report", 64)}
    with temporary_rings(specs) as made:
        yield made


def start(rings, tmp_path: Path, counters: np.ndarray) -> ExchangeWorker:
    """An exchange worker on ``rings`` whose status row holds ``counters`` (a predecessor's, after a restart)."""
    ctx = WorkerContext(name="exchange", params={}, inputs={"exchange.orders": rings["orders"], "md.exchange": rings["md"]},
                        outputs={"exchange.reports": rings["reports"]}, config=None, counters=counters, histograms={},
                        run_dir=tmp_path)
    worker = ExchangeWorker(batch=16)
    worker.on_start(ctx)
    return worker


def send(ring, order_id, ts_us, action=Action.NEW, client_order_id=0, price=100.0, qty=0.1):
    view = ring.claim(1)
    view[0] = 0
    rec = view[0]
    rec["order_id"], rec["client_order_id"], rec["action"], rec["price"], rec["qty"] = (
        order_id, client_order_id, action, price, qty)
    rec["side"], rec["order_type"], rec["tif"], rec["symbol_id"] = Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 1
    rec["target_order_id"] = order_id if action == Action.CANCEL else 0
    rec["market_ts_ns"], rec["ts_ns"] = T0 + ts_us * US, 1
    ring.commit(1)


def logon(ring, session: int) -> None:
    send(ring, 0, 0, action=Action.LOGON, client_order_id=session, price=float("nan"), qty=0.0)


def tick(ring, ts_us, price=99.0):
    view = ring.claim(1)
    view[0] = 0
    rec = view[0]
    rec["exch_ts_ns"], rec["kind"], rec["side"], rec["price"], rec["qty"] = T0 + ts_us * US, EventKind.DEPTH, \
        Side.BUY, price, 1.0
    rec["update_id"], rec["symbol_id"], rec["flags"] = ts_us + 1, 1, EventFlag.LAST_IN_MESSAGE
    ring.commit(1)


def read(ring) -> np.ndarray:
    view = ring.poll(1024)
    out = view.copy()
    ring.release(len(view))
    return out


def test_first_session_announces_nothing_and_takes_orders_at_once(rings, tmp_path):
    counters = np.zeros(32, np.int64)
    worker = start(rings, tmp_path, counters)
    assert counters[C["session_gauge"]] == 1 and rings["reports"].occupancy() == 0
    send(rings["orders"], 1, 0)
    tick(rings["md"], 1000)
    worker.do_work()
    assert read(rings["reports"])["event"].tolist() == [ReportEvent.ACK]


def test_restarted_exchange_announces_then_ignores_the_dead_sessions_orders_until_logon(rings, tmp_path):
    counters = np.zeros(32, np.int64)
    first = start(rings, tmp_path, counters)
    send(rings["orders"], 1, 0)  # rests in the first session
    tick(rings["md"], 1000)
    first.do_work()
    assert read(rings["reports"])["event"].tolist() == [ReportEvent.ACK]
    assert counters[C["open_orders_gauge"]] == 1
    # killed; what the OMS sent meanwhile sits in the order ring (a resend of 1, a cancel, a new order)
    send(rings["orders"], 1, 2000)
    send(rings["orders"], 1, 2000, action=Action.CANCEL, client_order_id=7)
    send(rings["orders"], 2, 2000)
    before_ns = time.time_ns()
    worker = start(rings, tmp_path, counters)
    assert counters[C["session_gauge"]] == 2
    (announcement,) = read(rings["reports"])
    assert before_ns <= announcement["exch_ts_ns"] <= time.time_ns(), "when the session started"
    assert announcement["event"] == ReportEvent.SESSION and announcement["client_order_id"] == 2
    assert announcement["order_id"] == 0 and announcement["reason"] == Reason.VENUE_RESTART
    assert announcement["seq"] == 1, "seq stays dense across the restart"
    tick(rings["md"], 3000)
    logon(rings["orders"], 1)  # an answer to an older session is not ours
    send(rings["orders"], 3, 3000)
    worker.do_work()
    tick(rings["md"], 4000)
    worker.do_work()
    assert rings["reports"].occupancy() == 0, "nothing sent into the dead session is applied"
    assert counters[C["orders_ignored"]] == 4 and counters[C["orders_in"]] == 1
    assert counters[C["open_orders_gauge"]] == 0 and counters[C["pending_orders_gauge"]] == 0
    logon(rings["orders"], 2)
    send(rings["orders"], 4, 5000)
    logon(rings["orders"], 2)  # the OMS re-read the announcement after a crash of its own: no effect
    send(rings["orders"], 5, 5000)
    tick(rings["md"], 6000)
    worker.do_work()
    got = read(rings["reports"])
    assert [(int(r["order_id"]), int(r["event"])) for r in got] == [(4, ReportEvent.ACK), (5, ReportEvent.ACK)]
    assert counters[C["orders_in"]] == 3 and counters[C["orders_ignored"]] == 4


def test_run_totals_survive_the_restart(rings, tmp_path):
    counters = np.zeros(32, np.int64)
    first = start(rings, tmp_path, counters)
    send(rings["orders"], 1, 0, qty=0.0)  # rejected: bad quantity
    tick(rings["md"], 1000)
    first.do_work()
    assert counters[C["rejects"]] == 1
    worker = start(rings, tmp_path, counters)
    read(rings["reports"])
    logon(rings["orders"], 2)
    send(rings["orders"], 2, 2000, qty=0.0)
    tick(rings["md"], 3000)
    worker.do_work()
    assert counters[C["rejects"]] == 2 and counters[C["session_gauge"]] == 2


def test_admit_cuts_the_order_stream_at_this_sessions_logon():
    session = VenueSession(3)
    orders = ORDER.zeros(6)
    orders["action"] = [Action.NEW, Action.LOGON, Action.CANCEL, Action.LOGON, Action.NEW, Action.LOGON]
    orders["client_order_id"] = [1, 2, 3, 3, 5, 3]
    assert len(session.admit(orders[:3])) == 0 and session.ignored == 2 and not session.logged_on
    kept = session.admit(orders[3:])
    assert session.logged_on and kept["client_order_id"].tolist() == [5] and session.ignored == 2
    assert VenueSession(1).logged_on and not VenueSession(1).announces
    with pytest.raises(ValueError, match="starts at 1"):
        VenueSession(0)
