"""Any sequence of requests, reports and timeouts keeps every order consistent with its event trail."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hftshm.codes import Action, OrderEventKind as E, Reason, ReportEvent
from hftshm.oms import states
from hftshm.oms.engine import OmsEngine
from hftshm.oms.testing import new_orders, reports

MS = 1_000_000
N_ORDERS = 4

steps = st.lists(st.one_of(
    st.tuples(st.sampled_from(["new", "cancel", "replace"]), st.integers(1, N_ORDERS)),
    st.tuples(st.sampled_from(["ack", "partial", "fill", "cancelled", "reject", "replaced", "dup_reject"]),
              st.integers(1, N_ORDERS)),
    st.tuples(st.just("timer"), st.integers(1, 30)),
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_orders_always_match_their_event_trail(script):
    eng = OmsEngine(max_orders=16, timeouts_ns=np.array([5, 10], np.int64) * MS, epoch=1)
    now = 0
    order_ids: dict[int, int] = {}
    cum: dict[int, float] = {}
    trail: list[np.ndarray] = []
    next_request = 100
    for op, arg in script:
        if op == "new":
            eng.on_orders(new_orders({"client_order_id": arg, "qty": 1.0}), now, now)
            sent = eng.staged().orders
            if len(sent) and arg not in order_ids:
                order_ids[arg] = int(sent[0]["order_id"])
        elif op in ("cancel", "replace"):
            next_request += 1
            action = Action.CANCEL if op == "cancel" else Action.REPLACE
            eng.on_orders(new_orders({"action": action, "client_order_id": next_request,
                                      "target_client_order_id": arg, "qty": 1.0}), now, now)
        elif op == "timer":
            now += arg * MS
            eng.on_timers(now, now)
        elif arg in order_ids:
            order_id = order_ids[arg]
            done = cum.get(order_id, 0.0)
            fields = {"order_id": order_id}
            if op == "ack":
                fields["event"] = ReportEvent.ACK
            elif op == "partial":
                cum[order_id] = min(done + 0.25, 1.0)
                fields.update(event=ReportEvent.PARTIAL, qty=0.25, cum_qty=cum[order_id], leaves_qty=1 - cum[order_id])
            elif op == "fill":
                cum[order_id] = 1.0
                fields.update(event=ReportEvent.FILL, qty=1.0 - done, cum_qty=1.0)
            elif op == "cancelled":
                fields["event"] = ReportEvent.CANCEL
            elif op == "reject":
                fields.update(event=ReportEvent.REJECT, reason=Reason.UNKNOWN_ORDER)
            elif op == "dup_reject":
                fields.update(event=ReportEvent.REJECT, reason=Reason.DUPLICATE_ORDER_ID)
            else:
                fields.update(event=ReportEvent.REPLACE, price=60_000.0, leaves_qty=1.0 - done, cum_qty=done)
            eng.on_reports(reports(fields), now, now)
        trail.append(eng.staged().events.copy())
        eng.clear()
    events = np.concatenate(trail) if trail else eng.out_events[:0]
    assert len(set(events["event_id"].tolist())) == len(events), "event ids are unique"
    assert np.all(np.diff(events["event_id"]) > 0), "event ids ascend"
    for client_id, order_id in order_ids.items():
        mine = events[events["order_id"] == order_id]
        assert mine[0]["kind"] == E.CREATED
        # the trail replays to the state the OMS holds, step by step
        state = states.NO_STATE
        last_cum = 0.0
        for event in mine:
            assert event["prev_state"] == state
            if event["kind"] == E.REFUSED:
                assert event["state"] == state
            else:
                expected = states.next_state(state, int(event["kind"]))
                assert expected != 0, f"{E(int(event['kind'])).name} applied in state {state}"
                assert event["state"] in (expected, states.normalize(expected, float(event["cum_qty"])))
            if states.IS_TERMINAL[state]:
                assert event["kind"] == E.REFUSED, "nothing is applied after a terminal state"
            assert event["cum_qty"] >= last_cum, "executed quantity never goes down"
            state, last_cum = int(event["state"]), float(event["cum_qty"])
        row = eng.order(order_id)
        assert row is not None and int(row["state"]) == state
    assert eng.open_count == sum(1 for oid in order_ids.values() if not states.IS_TERMINAL[eng.state_of(oid)])
