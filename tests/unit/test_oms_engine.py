"""OmsEngine: ids, idempotency, retries with backoff, exhaustion, cancels/replaces, replays, recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftshm.codes import Action, OrderEventKind as E, OrderState as S, OrderType, Reason, ReportEvent, Side
from hftshm.oms import order_table_nb, oms_nb
from hftshm.oms.engine import OmsEngine, ack_timeouts_ns
from hftshm.oms.testing import new_orders, reports

MS = 1_000_000


def engine(max_orders: int = 64, timeouts_ms=(10, 20, 40), epoch: int = 1) -> OmsEngine:
    return OmsEngine(max_orders=max_orders, timeouts_ns=np.array(timeouts_ms, np.int64) * MS, epoch=epoch)


def place(eng: OmsEngine, now: int = 0, **fields) -> int:
    eng.on_orders(new_orders(fields), now, 1)
    order_id = int(eng.staged().orders[-1]["order_id"])
    eng.clear()
    return order_id


def test_backoff_schedule_doubles_up_to_the_cap():
    assert ack_timeouts_ns(100, 4, 2.0, 500).tolist() == [100 * MS, 200 * MS, 400 * MS, 500 * MS, 500 * MS]
    assert ack_timeouts_ns(100, 0, 2.0, 500).tolist() == [100 * MS]


def test_new_order_gets_an_id_with_the_epoch_and_is_sent():
    eng = engine(epoch=5)
    eng.on_orders(new_orders({"client_order_id": 42, "strategy_id": 3}), 0, 1)
    staged = eng.staged()
    (sent,) = staged.orders
    assert sent["order_id"] >> oms_nb.ID_SHIFT == 5
    assert sent["client_order_id"] == 42 and sent["action"] == Action.NEW and sent["attempt"] == 0
    assert sent["owner"] == 3, "self-trade owner defaults to the strategy"
    (created,) = staged.events
    assert created["event_id"] >> oms_nb.ID_SHIFT == 5
    assert created["order_id"] == sent["order_id"] and created["kind"] == E.CREATED
    assert len(staged.reports) == 0
    assert eng.open_count == 1


def test_ids_from_two_epochs_never_collide():
    first, second = engine(epoch=1), engine(epoch=2)
    ids = {place(first, client_order_id=i) for i in range(1, 50)}
    ids |= {place(second, client_order_id=i) for i in range(1, 50)}
    assert len(ids) == 98


def test_duplicate_client_order_id_is_one_order_and_a_reported_reject():
    eng = engine()
    first = place(eng, client_order_id=9, strategy_id=2)
    eng.on_orders(new_orders({"client_order_id": 9, "strategy_id": 2, "price": 60_000.0}), 1, 1)
    staged = eng.staged()
    assert len(staged.orders) == 0, "a duplicate must not reach the exchange"
    (reject,) = staged.reports
    assert reject["event"] == ReportEvent.REJECT and reject["reason"] == Reason.DUPLICATE_CLIENT_ORDER_ID
    assert reject["client_order_id"] == 9 and reject["order_id"] == 0
    (refused,) = staged.events
    assert refused["kind"] == E.REFUSED and refused["order_id"] == first
    assert refused["reason"] == Reason.DUPLICATE_CLIENT_ORDER_ID
    assert eng.open_count == 1 and eng.counters()["duplicates"] == 1
    # the same client id from another strategy is another order
    assert place(eng, client_order_id=9, strategy_id=3) != first


def test_duplicate_is_detected_after_the_order_finished():
    eng = engine()
    order_id = place(eng, client_order_id=5)
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.FILL, "qty": 0.1, "cum_qty": 0.1}), 1, 1)
    eng.clear()
    eng.on_orders(new_orders({"client_order_id": 5}), 2, 1)
    assert eng.staged().reports[0]["reason"] == Reason.DUPLICATE_CLIENT_ORDER_ID
    assert len(eng.staged().orders) == 0


def test_unacknowledged_order_is_resent_with_backoff_then_rejected():
    eng = engine(timeouts_ms=(10, 20, 40))
    order_id = place(eng, now=0)
    assert eng.on_timers(9 * MS, 1) == 0
    sends = []
    now = 0
    for wait_ms in (10, 20, 40):
        assert eng.on_timers(now + wait_ms * MS - 1, 1) == 0, "resent before its timeout"
        now += wait_ms * MS
        assert eng.on_timers(now, 1) == 1
        sends.append(eng.staged().copy())
        if wait_ms != 40:
            (resend,) = eng.staged().orders
            assert resend["order_id"] == order_id, "a resend reuses the order id (the exchange dedupes)"
            assert resend["action"] == Action.NEW
            assert eng.staged().events[0]["kind"] == E.RESENT
        eng.clear()
    assert [len(s.orders) for s in sends] == [1, 1, 0]
    assert [int(s.orders[0]["attempt"]) for s in sends[:2]] == [1, 2]
    exhausted = sends[2]
    (event,) = exhausted.events
    assert event["kind"] == E.RETRIES_EXHAUSTED and event["reason"] == Reason.RETRIES_EXHAUSTED
    assert event["state"] == S.REJECTED
    (reject,) = exhausted.reports
    assert reject["event"] == ReportEvent.REJECT and reject["reason"] == Reason.RETRIES_EXHAUSTED
    assert eng.state_of(order_id) == S.REJECTED
    counters = eng.counters()
    assert counters["resends"] == 2 and counters["retries_exhausted"] == 1
    assert eng.open_count == 0
    assert eng.on_timers(10**15, 1) == 0, "nothing pending any more"


def test_ack_stops_the_resends_and_a_late_ack_after_exhaustion_is_refused():
    eng = engine(timeouts_ms=(10,))
    acked = place(eng, client_order_id=1)
    lost = place(eng, client_order_id=2)
    eng.on_reports(reports({"order_id": acked, "event": ReportEvent.ACK}), 1 * MS, 1)
    eng.clear()
    eng.on_timers(100 * MS, 1)
    assert eng.state_of(acked) == S.ACKNOWLEDGED
    assert eng.state_of(lost) == S.REJECTED
    eng.clear()
    eng.on_reports(reports({"order_id": lost, "event": ReportEvent.ACK}), 200 * MS, 1)
    assert eng.staged().events[0]["reason"] == Reason.ILLEGAL_TRANSITION
    assert eng.counters()["illegal_transitions"] == 1


def test_exchange_duplicate_order_id_reject_counts_as_an_ack():
    eng = engine()
    order_id = place(eng)
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.REJECT,
                            "reason": Reason.DUPLICATE_ORDER_ID}), 1, 1)
    assert eng.state_of(order_id) == S.ACKNOWLEDGED
    (forwarded,) = eng.staged().reports
    assert forwarded["event"] == ReportEvent.ACK and forwarded["reason"] == Reason.NONE


def test_fills_take_the_exchange_cumulative_quantity_and_a_replay_is_stale():
    eng = engine()
    order_id = place(eng, qty=1.0)
    partial = reports({"order_id": order_id, "event": ReportEvent.PARTIAL, "qty": 0.4, "cum_qty": 0.4,
                       "leaves_qty": 0.6, "price": 61_000.0, "fee": 0.5})
    eng.on_reports(partial, 1, 1)
    eng.on_reports(partial, 2, 1)  # the same report again (re-delivered after a restart)
    row = eng.order(order_id)
    assert row["cum_qty"] == pytest.approx(0.4) and row["leaves_qty"] == pytest.approx(0.6)
    assert row["state"] == S.PARTIALLY_FILLED
    kinds = eng.staged().events["kind"].tolist()
    assert kinds == [E.PARTIAL, E.REFUSED]
    assert eng.staged().events[-1]["reason"] == Reason.STALE_REPORT
    assert len(eng.staged().reports) == 1, "the replay is not forwarded"
    fill_event = eng.staged().events[0]
    assert fill_event["exec_qty"] == pytest.approx(0.4) and fill_event["fee"] == pytest.approx(0.5)
    assert eng.counters()["stale_reports"] == 1


def test_cancel_by_client_id_goes_pending_then_cancelled():
    eng = engine()
    order_id = place(eng, client_order_id=11, strategy_id=4)
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.ACK}), 1, 1)
    eng.clear()
    eng.on_orders(new_orders({"action": Action.CANCEL, "client_order_id": 12, "strategy_id": 4,
                              "target_client_order_id": 11}), 2, 1)
    (cancel,) = eng.staged().orders
    assert cancel["action"] == Action.CANCEL and cancel["target_order_id"] == order_id
    assert cancel["client_order_id"] == 12 and cancel["target_client_order_id"] == 11
    assert eng.state_of(order_id) == S.PENDING_CANCEL
    assert eng.staged().events[0]["request_client_order_id"] == 12
    eng.clear()
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.CANCEL, "qty": 0.1}), 3, 1)
    assert eng.state_of(order_id) == S.CANCELLED
    assert eng.open_count == 0


def test_cancel_of_another_strategys_order_or_an_unknown_one_is_rejected():
    eng = engine()
    place(eng, client_order_id=11, strategy_id=4)
    eng.on_orders(new_orders({"action": Action.CANCEL, "client_order_id": 12, "strategy_id": 5,
                              "target_client_order_id": 11},
                             {"action": Action.CANCEL, "client_order_id": 13, "strategy_id": 4,
                              "target_client_order_id": 99}), 1, 1)
    assert [int(r["reason"]) for r in eng.staged().reports] == [Reason.UNKNOWN_ORDER] * 2
    assert len(eng.staged().orders) == 0


def test_unconfirmed_cancel_is_resent_and_then_stays_pending_with_an_alert():
    eng = engine(timeouts_ms=(10, 10))
    order_id = place(eng, client_order_id=1)
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.ACK}), 0, 1)
    eng.on_orders(new_orders({"action": Action.CANCEL, "client_order_id": 2, "target_client_order_id": 1}), 0, 1)
    eng.clear()
    eng.on_timers(10 * MS, 1)
    (resend,) = eng.staged().orders
    assert resend["action"] == Action.CANCEL and resend["client_order_id"] == 2 and resend["attempt"] == 1
    eng.clear()
    eng.on_timers(20 * MS, 1)
    assert eng.state_of(order_id) == S.PENDING_CANCEL, "the order may still be working: not rejected"
    (reject,) = eng.staged().reports
    assert reject["client_order_id"] == 2 and reject["reason"] == Reason.RETRIES_EXHAUSTED
    assert eng.counters()["retries_exhausted"] == 1


def test_replace_changes_the_order_in_place_and_a_refused_replace_keeps_it():
    eng = engine()
    order_id = place(eng, client_order_id=1, price=100.0, qty=1.0)
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.ACK}), 0, 1)
    eng.on_orders(new_orders({"action": Action.REPLACE, "client_order_id": 2, "target_client_order_id": 1,
                              "price": 101.0, "qty": 2.0}), 0, 1)
    (sent,) = eng.staged().orders
    assert (sent["action"], sent["order_id"], sent["price"], sent["qty"]) == (Action.REPLACE, order_id, 101.0, 2.0)
    assert eng.staged().events[-1]["pending_price"] == 101.0
    eng.clear()
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.REPLACE, "price": 101.0, "qty": 2.0,
                            "leaves_qty": 2.0}), 1, 1)
    row = eng.order(order_id)
    assert row["state"] == S.REPLACED and row["price"] == 101.0 and row["qty"] == 2.0
    assert row["pending"] == order_table_nb.PENDING_NONE
    eng.on_orders(new_orders({"action": Action.REPLACE, "client_order_id": 3, "target_client_order_id": 1,
                              "price": 102.0, "qty": 2.0}), 2, 1)
    eng.clear()
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.REJECT, "reason": Reason.BAD_PRICE}), 3, 1)
    row = eng.order(order_id)
    assert row["state"] == S.REPLACED and row["price"] == 101.0
    assert eng.staged().events[0]["kind"] == E.REQUEST_REJECTED


@pytest.mark.parametrize("fields,reason", [
    ({"side": 0}, Reason.MALFORMED_INTENT),
    ({"qty": 0.0}, Reason.BAD_QTY),
    ({"qty": math.nan}, Reason.BAD_QTY),
    ({"price": math.nan}, Reason.BAD_PRICE),
    ({"action": 9}, Reason.MALFORMED_INTENT),
])
def test_malformed_orders_are_rejected_and_counted(fields, reason):
    eng = engine()
    eng.on_orders(new_orders(fields), 0, 1)
    (reject,) = eng.staged().reports
    assert reject["reason"] == reason
    assert len(eng.staged().orders) == 0 and eng.counters()["malformed"] == 1


def test_market_orders_carry_no_price():
    eng = engine()
    order_id = place(eng, order_type=OrderType.MARKET, price=math.nan)
    assert math.isnan(eng.order(order_id)["price"])


def test_reports_for_unknown_orders_are_counted_not_applied():
    eng = engine()
    eng.on_reports(reports({"order_id": 12345, "event": ReportEvent.FILL}), 0, 1)
    assert eng.counters()["unknown_order_reports"] == 1
    assert len(eng.staged().events) == 0 and len(eng.staged().reports) == 0


def test_full_table_rejects_and_finished_orders_make_room():
    eng = engine(max_orders=2)
    first = place(eng, client_order_id=1)
    place(eng, client_order_id=2)
    eng.on_orders(new_orders({"client_order_id": 3}), 0, 1)
    assert eng.staged().reports[0]["reason"] == Reason.OMS_TABLE_FULL
    eng.clear()
    eng.on_reports(reports({"order_id": first, "event": ReportEvent.CANCEL}), 0, 1)
    third = place(eng, client_order_id=3)
    assert eng.state_of(third) == S.NEW
    assert eng.order(first) is None, "the oldest finished order gave its slot"


def test_staging_limits_a_batch_and_nothing_is_half_applied():
    eng = OmsEngine(max_orders=64, timeouts_ns=np.array([MS]), epoch=1, staging=4)
    batch = new_orders(*({} for _ in range(10)))
    consumed = eng.on_orders(batch, 0, 1)
    assert 0 < consumed < 10
    assert len(eng.staged().orders) == consumed == eng.open_count
    eng.clear()
    assert eng.on_orders(batch[consumed:], 0, 1) > 0


def test_restore_reloads_open_orders_with_fresh_deadlines_and_keeps_duplicates_out():
    eng = engine(timeouts_ms=(10, 20))
    open_id = place(eng, client_order_id=1)
    done_id = place(eng, client_order_id=2)
    eng.on_reports(reports({"order_id": done_id, "event": ReportEvent.FILL, "qty": 0.1, "cum_qty": 0.1}), 0, 1)
    rows = eng.orders[eng.orders["state"] != 0].copy()
    fresh = engine(timeouts_ms=(10, 20), epoch=2)
    assert fresh.restore(rows, now_ns=1000 * MS) == 2
    assert fresh.open_count == 1
    assert fresh.state_of(open_id) == S.NEW and fresh.state_of(done_id) == S.FILLED
    assert fresh.on_timers(1009 * MS, 1) == 0
    assert fresh.on_timers(1010 * MS, 1) == 1, "the NEW order is resent one timeout after the restart"
    assert fresh.staged().orders[0]["order_id"] == open_id
    fresh.clear()
    fresh.on_orders(new_orders({"client_order_id": 2}), 0, 1)
    assert fresh.staged().reports[0]["reason"] == Reason.DUPLICATE_CLIENT_ORDER_ID
    assert place(fresh, client_order_id=3) >> oms_nb.ID_SHIFT == 2


def test_sides_are_kept():
    eng = engine()
    order_id = place(eng, side=Side.SELL)
    assert eng.order(order_id)["side"] == Side.SELL


@pytest.mark.parametrize("fate", [ReportEvent.FILL, ReportEvent.CANCEL])
def test_late_news_about_a_finished_order_is_stale_not_an_alarm(fate):
    eng = engine()
    order_id = place(eng, client_order_id=1)
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.ACK}), 0, 1)
    eng.on_orders(new_orders({"action": Action.CANCEL, "client_order_id": 2, "target_client_order_id": 1}), 0, 1)
    eng.on_reports(reports({"order_id": order_id, "event": fate, "qty": 0.1, "cum_qty": 0.1}), 0, 1)
    eng.clear()
    # the cancel lost the race: the exchange refuses it; a resend's re-ack arrives late
    eng.on_reports(reports({"order_id": order_id, "event": ReportEvent.REJECT, "reason": Reason.UNKNOWN_ORDER},
                           {"order_id": order_id, "event": ReportEvent.ACK}), 1, 1)
    assert [int(e["reason"]) for e in eng.staged().events] == [Reason.STALE_REPORT] * 2
    assert len(eng.staged().reports) == 0
    assert eng.counters()["illegal_transitions"] == 0 and eng.counters()["stale_reports"] == 2



# a fresh process per count: in a long test session numpy's 1 MB arrays may come from heap memory
# another test already touched, and then there is no fault to take either way
_COUNT_FAULTS = """
import resource, sys
import numpy as np
from hftshm.oms.engine import OmsEngine
from hftshm.oms.testing import new_orders
eng = OmsEngine(max_orders=65536, timeouts_ns=np.array([10**9]), epoch=1)  # the shipped table size
if sys.argv[1] == "fault_in":
    eng.fault_in()
eng.on_orders(new_orders({"client_order_id": 10**9}), 0, 1)  # the kernels' first call: not counted
eng.clear()
records = [new_orders({"client_order_id": i + 1}) for i in range(300)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for record in records:
    eng.on_orders(record, 0, 1)
    eng.clear()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults_of_300_new_orders(mode: str) -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _COUNT_FAULTS, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_fault_in_takes_the_tables_page_faults_before_the_first_order():
    # the hash indexes are 1 MB each and written at random slots: ~2 faults per order while they come in
    assert _page_faults_of_300_new_orders("untouched") > 300
    assert _page_faults_of_300_new_orders("fault_in") < 30
