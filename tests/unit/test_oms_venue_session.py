"""The OMS kernels when the exchange restarts: a refused cancel that rejects the order itself, and a
new exchange session (ReportEvent.SESSION) cancelling every open order before the OMS logs on."""

from __future__ import annotations

import numpy as np

from hftshm.codes import Action, OrderEventKind as E, OrderState as S, Reason, ReportEvent
from hftshm.oms import states
from hftshm.oms.engine import OmsEngine
from hftshm.oms.testing import new_orders, reports

MS = 1_000_000


def engine(max_orders: int = 64, staging: int = 4096) -> OmsEngine:
    return OmsEngine(max_orders=max_orders, timeouts_ns=np.array([10, 20, 40], np.int64) * MS, epoch=1,
                     staging=staging)


def place(eng: OmsEngine, now: int = 0, **fields) -> int:
    eng.on_orders(new_orders(fields), now, 1)
    order_id = int(eng.staged().orders[-1]["order_id"])
    eng.clear()
    return order_id


def cancel(eng: OmsEngine, client_order_id: int, target_client_order_id: int, strategy_id: int = 1) -> None:
    eng.on_orders(new_orders({"action": Action.CANCEL, "client_order_id": client_order_id, "strategy_id": strategy_id,
                              "target_client_order_id": target_client_order_id}), 1, 1)
    eng.clear()


def announced(number: int) -> dict:
    return {"event": ReportEvent.SESSION, "order_id": 0, "client_order_id": number, "reason": Reason.VENUE_RESTART,
            "strategy_id": 0, "symbol_id": 0, "side": 0}


def session(number: int) -> np.ndarray:
    return reports(announced(number))


# -- a refused cancel of an unacknowledged order ----------------------------------------------------------


def test_unknown_order_reject_of_a_cancel_rejects_the_order_under_its_own_client_id():
    """An exchange that lost the order (it restarted before acking it) refuses our cancel with
    UNKNOWN_ORDER; the report names the cancel's client id. The OMS takes it as the order's reject,
    so risk and the strategies must hear of the order (client id 21), not of the cancel (22):
    both find orders by (strategy, client order id), and a reject under the cancel's id reads
    "cancel refused, the order still works" to them."""
    eng = engine()
    order_id = place(eng, client_order_id=21, strategy_id=3)
    cancel(eng, 22, 21, strategy_id=3)
    assert eng.state_of(order_id) == S.PENDING_CANCEL
    eng.on_reports(reports({"order_id": order_id, "client_order_id": 22, "strategy_id": 3, "event": ReportEvent.REJECT,
                            "reason": Reason.UNKNOWN_ORDER, "price": 61_000.0, "qty": 0.1}), 2, 1)
    assert eng.state_of(order_id) == S.REJECTED and eng.open_count == 0
    (forwarded,) = eng.staged().reports
    assert forwarded["event"] == ReportEvent.REJECT and forwarded["reason"] == Reason.UNKNOWN_ORDER
    assert forwarded["order_id"] == order_id and forwarded["strategy_id"] == 3
    assert forwarded["client_order_id"] == 21, "the reject ends the order: it must name the order, not the cancel"
    assert forwarded["leaves_qty"] == 0.0


def test_a_refused_cancel_of_an_acknowledged_order_still_names_the_cancel():
    eng = engine()
    order_id = place(eng, client_order_id=21)
    eng.on_reports(reports({"order_id": order_id, "client_order_id": 21}), 1, 1)
    eng.clear()
    cancel(eng, 22, 21)
    eng.on_reports(reports({"order_id": order_id, "client_order_id": 22, "event": ReportEvent.REJECT,
                            "reason": Reason.UNKNOWN_ORDER}), 2, 1)
    assert eng.state_of(order_id) == S.ACKNOWLEDGED, "the order still works"
    (forwarded,) = eng.staged().reports
    assert forwarded["client_order_id"] == 22


# -- a new exchange session -------------------------------------------------------------------------------


def test_every_open_state_can_be_cancelled_by_a_new_session():
    for state in states.OPEN_STATES:
        assert states.next_state(state, E.CANCELLED) == S.CANCELLED, state.name


def test_new_session_cancels_every_open_order_then_logs_on():
    eng = engine()
    acked = place(eng, client_order_id=1)
    unacked = place(eng, client_order_id=2, strategy_id=2)
    filling = place(eng, client_order_id=3, qty=1.0)
    cancelling = place(eng, client_order_id=4)
    filled = place(eng, client_order_id=5)
    eng.on_reports(reports({"order_id": acked}, {"order_id": filling},
                           {"order_id": filling, "event": ReportEvent.PARTIAL, "qty": 0.25, "cum_qty": 0.25,
                            "leaves_qty": 0.75, "price": 61_000.0},
                           {"order_id": cancelling},
                           {"order_id": filled, "event": ReportEvent.FILL, "qty": 0.1, "cum_qty": 0.1,
                            "price": 61_000.0}), 1, 1)
    eng.clear()
    cancel(eng, 40, 4)
    assert eng.open_count == 4
    # a batch of four inputs may produce four cancels and the LOGON; the records after the
    # announcement are left for the next batch
    assert eng.on_reports(reports(announced(2), *({"order_id": 0} for _ in range(3))), 2, 7) == 1
    staged = eng.staged()
    for order_id in (acked, unacked, filling, cancelling):
        assert eng.state_of(order_id) == S.CANCELLED
    assert eng.state_of(filled) == S.FILLED and eng.open_count == 0
    by_order = {int(r["order_id"]): r for r in staged.reports}
    assert set(by_order) == {acked, unacked, filling, cancelling}
    for report in staged.reports:
        assert report["event"] == ReportEvent.CANCEL and report["reason"] == Reason.VENUE_RESTART
        assert report["leaves_qty"] == 0.0
    # under each order's own ids, with what was left open: risk and the strategies close them
    assert by_order[unacked]["client_order_id"] == 2 and by_order[unacked]["strategy_id"] == 2
    assert by_order[cancelling]["client_order_id"] == 4, "not the pending cancel's id"
    assert by_order[filling]["qty"] == 0.75 and by_order[filling]["cum_qty"] == 0.25
    events = {int(e["order_id"]): e for e in staged.events}
    assert all(e["kind"] == E.CANCELLED and e["reason"] == Reason.VENUE_RESTART for e in events.values())
    assert events[filling]["exec_qty"] == 0.75 and events[filling]["local_ts_ns"] == 7
    (logon,) = staged.orders
    assert logon["action"] == Action.LOGON and logon["client_order_id"] == 2 and logon["order_id"] == 0
    counters = eng.counters()
    assert counters["venue_sessions"] == 1 and counters["venue_cancels"] == 4 and counters["reports_in"] == 6
    assert counters["unknown_order_reports"] == 0


def test_cancelled_orders_stop_their_ack_timers_and_late_news_is_stale():
    eng = engine()
    order_id = place(eng, client_order_id=1)  # unacked: its ack timer runs
    eng.on_reports(session(2), 1, 1)
    eng.clear()
    assert eng.on_timers(100 * MS, 1) == 0
    assert len(eng.staged().orders) == 0, "no resend of an order the new session does not hold"
    # the dead session's last words, re-delivered: refused, nothing forwarded, the order stays cancelled
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.FILL, "qty": 0.1, "cum_qty": 0.1}), 2, 1)
    assert eng.state_of(order_id) == S.CANCELLED and len(eng.staged().reports) == 0
    # a cancel the strategy sent before it heard: refused, under the cancel's id
    eng.clear()
    eng.on_orders(new_orders({"action": Action.CANCEL, "client_order_id": 9, "target_client_order_id": 1}), 3, 1)
    (reject,) = eng.staged().reports
    assert reject["event"] == ReportEvent.REJECT and reject["client_order_id"] == 9


def test_session_report_waits_at_the_head_of_a_batch_and_within_its_budget():
    """Reports before the announcement are applied first; the announcement is then taken alone and
    consumed only once every open order is cancelled, at most one cancel per input of the batch."""
    eng = engine(max_orders=64)
    ids = [place(eng, client_order_id=i + 1) for i in range(5)]
    batch = reports({"order_id": ids[0]}, announced(3))
    assert eng.on_reports(batch, 1, 1) == 1, "the ack first; the announcement heads the next batch"
    eng.clear()
    # a batch of one record: one cancel per call, the announcement consumed with the last one
    consumed = [eng.on_reports(session(3), 2, 1) for _ in range(5)]
    assert consumed == [0, 0, 0, 0, 1]
    assert eng.open_count == 0
    assert eng.staged().orders["action"].tolist() == [Action.LOGON], "one LOGON, after the last cancel"
    assert len(eng.staged().reports) == 5 and eng.counters()["venue_cancels"] == 5
    assert eng.counters()["reports_in"] == 2, "the ack and the announcement, each counted once"


def test_a_replayed_announcement_cancels_nothing_twice_and_logs_on_again():
    eng = engine()
    place(eng, client_order_id=1)
    eng.on_reports(session(2), 1, 1)
    eng.clear()
    assert eng.on_reports(session(2), 2, 1) == 1
    staged = eng.staged()
    assert len(staged.reports) == 0 and len(staged.events) == 0
    assert staged.orders["action"].tolist() == [Action.LOGON]


def test_staging_too_small_for_all_cancels_takes_several_calls():
    eng = engine(max_orders=64, staging=4)
    for i in range(6):
        place(eng, client_order_id=i + 1)
    batch = reports(announced(2), *({"order_id": 0} for _ in range(7)))  # a budget of 8 inputs
    assert eng.on_reports(batch, 1, 1) == 0
    assert len(eng.staged().reports) == 4 and eng.open_count == 2 and len(eng.staged().orders) == 0
    eng.clear()
    assert eng.on_reports(batch, 2, 1) == 1, "the announcement only: it ends its batch"
    assert len(eng.staged().reports) == 2 and eng.open_count == 0
    assert eng.staged().orders["action"].tolist() == [Action.LOGON]
