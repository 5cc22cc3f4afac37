"""The order state table: the declaration, and every legal transition driven through the kernels."""

from __future__ import annotations

import numpy as np
import pytest

from hftshm.codes import Action, OrderEventKind as E, OrderState as S, Reason, ReportEvent
from hftshm.oms import states
from hftshm.oms.engine import OmsEngine
from hftshm.oms.testing import new_orders, reports

TIMEOUT_NS = 1_000_000


def test_table_is_the_declaration():
    declared = {(f, e): t for f, e, t in states.TRANSITIONS}
    for from_state in range(states.NEXT_STATE.shape[0]):
        for event in range(states.NEXT_STATE.shape[1]):
            assert states.NEXT_STATE[from_state, event] == declared.get((from_state, event), 0)


def test_terminal_states_have_no_way_out_and_open_states_do():
    for state in states.TERMINAL_STATES:
        assert not states.NEXT_STATE[state].any()
        assert states.IS_TERMINAL[state] == 1
    for state in states.OPEN_STATES:
        assert states.NEXT_STATE[state].any()
        assert states.IS_TERMINAL[state] == 0


def test_table_is_read_only():
    with pytest.raises(ValueError):
        states.NEXT_STATE[S.FILLED, E.FILL] = S.FILLED


def test_replay_accepts_a_legal_history_and_names_the_illegal_step():
    history = [E.CREATED, E.ACK, E.PARTIAL, E.REFUSED, E.FILL]
    assert states.replay(history) == S.FILLED
    with pytest.raises(ValueError, match="event #2 FILL is illegal in state CANCELLED"):
        states.replay([E.CREATED, E.CANCELLED, E.FILL])


# -- every legal transition, through the kernels ---------------------------------------------------


class Driver:
    """One order in a fresh engine, moved by the API the OMS really has: requests and reports."""

    def __init__(self, max_retries: int = 2):
        self.engine = OmsEngine(max_orders=16, timeouts_ns=np.full(max_retries + 1, TIMEOUT_NS, np.int64), epoch=1)
        self.now = 0
        self.engine.on_orders(new_orders({"client_order_id": 7, "qty": 1.0}), self.now, 1)
        self.order_id = int(self.engine.staged().orders[0]["order_id"])
        self.cum = 0.0
        self.next_cid = 100
        self.engine.clear()

    @property
    def state(self) -> int:
        return int(self.engine.order(self.order_id)["state"])

    def report(self, event: int, **fields) -> None:
        self.engine.on_reports(reports({"order_id": self.order_id, "event": event, **fields}), self.now, 1)

    def request(self, action: int, **fields) -> None:
        self.next_cid += 1
        rec = new_orders({"action": action, "client_order_id": self.next_cid, "target_client_order_id": 7, **fields})
        self.engine.on_orders(rec, self.now, 1)

    def expire(self) -> None:
        self.now += 10 * TIMEOUT_NS
        self.engine.on_timers(self.now, 1)

    def partial(self) -> None:
        self.cum += 0.25
        self.report(ReportEvent.PARTIAL, qty=0.25, cum_qty=self.cum, leaves_qty=1.0 - self.cum, price=61000.0)

    def to(self, state: int, acked: bool = True) -> "Driver":
        if state == S.NEW:
            return self
        if state == S.PENDING_CANCEL:
            if acked:
                self.report(ReportEvent.ACK)
            self.request(Action.CANCEL)
        elif state == S.ACKNOWLEDGED:
            self.report(ReportEvent.ACK)
        elif state == S.PARTIALLY_FILLED:
            self.report(ReportEvent.ACK)
            self.partial()
        elif state == S.REPLACED:
            self.report(ReportEvent.ACK)
            self.request(Action.REPLACE, price=60990.0, qty=1.0)
            self.report(ReportEvent.REPLACE, price=60990.0, qty=1.0, leaves_qty=1.0)
        assert self.state == state
        self.engine.clear()
        return self

    def apply(self, event: int) -> None:
        if event == E.ACK:
            self.report(ReportEvent.ACK)
        elif event == E.REJECT:
            self.report(ReportEvent.REJECT, reason=Reason.BAD_PRICE)
        elif event == E.PARTIAL:
            self.partial()
        elif event == E.FILL:
            self.report(ReportEvent.FILL, qty=1.0 - self.cum, cum_qty=1.0, leaves_qty=0.0, price=61000.0)
            self.cum = 1.0
        elif event == E.CANCELLED:
            self.report(ReportEvent.CANCEL, qty=1.0 - self.cum, cum_qty=self.cum)
        elif event == E.CANCEL_REQUESTED:
            self.request(Action.CANCEL)
        elif event == E.REPLACE_REQUESTED:
            self.request(Action.REPLACE, price=60980.0, qty=1.0)
        elif event == E.REPLACED:
            self.report(ReportEvent.REPLACE, price=60980.0, qty=1.0 - self.cum, leaves_qty=1.0 - self.cum,
                        cum_qty=self.cum)
        elif event == E.REQUEST_REJECTED:
            if self.state != S.PENDING_CANCEL:
                self.request(Action.REPLACE, price=60970.0, qty=1.0)
                self.engine.clear()
            self.report(ReportEvent.REJECT, reason=Reason.UNKNOWN_ORDER)
        elif event == E.RESENT:
            if self.state not in (S.NEW, S.PENDING_CANCEL):
                self.request(Action.REPLACE, price=60970.0, qty=1.0)
                self.engine.clear()
            self.expire()
        elif event == E.RETRIES_EXHAUSTED:
            if self.state not in (S.NEW, S.PENDING_CANCEL):
                self.request(Action.REPLACE, price=60970.0, qty=1.0)
                self.engine.clear()
            for _ in range(len(self.engine.timeouts_ns)):
                self.expire()
        else:
            raise AssertionError(f"no way to apply {event!r}")


LEGAL = [(f, e, t) for f, e, t in states.TRANSITIONS if e != E.CREATED]


@pytest.mark.parametrize("from_state,event,to_state", LEGAL,
                         ids=[f"{S(f).name}-{e.name}" for f, e, _ in LEGAL])
def test_every_legal_transition_is_applied(from_state, event, to_state):
    driver = Driver().to(from_state, acked=not (from_state == S.PENDING_CANCEL and event == E.REJECT))
    driver.apply(event)
    expected = states.normalize(int(to_state), driver.cum)
    assert driver.state == expected
    kinds = driver.engine.staged().events["kind"].tolist()
    assert event in kinds, f"no {event.name} event recorded: {kinds}"
    assert E.REFUSED not in kinds
    assert driver.engine.counters()["illegal_transitions"] == 0


def test_order_created_is_new_and_recorded():
    engine = OmsEngine(max_orders=4, timeouts_ns=np.array([TIMEOUT_NS]), epoch=1)
    engine.on_orders(new_orders({}), 0, 1)
    event = engine.staged().events[0]
    assert (event["kind"], event["prev_state"], event["state"]) == (E.CREATED, 0, S.NEW)


ILLEGAL = [
    (S.CANCELLED, E.FILL), (S.CANCELLED, E.PARTIAL), (S.FILLED, E.PARTIAL), (S.FILLED, E.CANCELLED),
    (S.REJECTED, E.ACK), (S.REJECTED, E.FILL), (S.FILLED, E.CANCEL_REQUESTED), (S.CANCELLED, E.REPLACE_REQUESTED),
    (S.NEW, E.REPLACE_REQUESTED), (S.NEW, E.REPLACED), (S.PENDING_CANCEL, E.CANCEL_REQUESTED),
    (S.PENDING_CANCEL, E.REPLACE_REQUESTED), (S.ACKNOWLEDGED, E.REJECT), (S.FILLED, E.REPLACED),
]


def _terminal(driver: Driver, state: int) -> None:
    if state == S.FILLED:
        driver.to(S.ACKNOWLEDGED).apply(E.FILL)
    elif state == S.CANCELLED:
        driver.to(S.ACKNOWLEDGED).apply(E.CANCELLED)
    elif state == S.REJECTED:
        driver.apply(E.REJECT)
    else:
        driver.to(state)
    assert driver.state == state
    driver.engine.clear()


@pytest.mark.parametrize("from_state,event", ILLEGAL, ids=[f"{S(f).name}-{e.name}" for f, e in ILLEGAL])
def test_illegal_transitions_are_refused_and_recorded(from_state, event):
    assert states.next_state(from_state, event) == 0
    driver = Driver()
    _terminal(driver, from_state)
    before = driver.engine.order(driver.order_id)
    driver.apply(event)
    after = driver.engine.order(driver.order_id)
    assert after["state"] == before["state"] and after["cum_qty"] == before["cum_qty"]
    events = driver.engine.staged().events
    assert events["kind"].tolist() == [E.REFUSED]
    assert events[0]["reason"] == Reason.ILLEGAL_TRANSITION
    assert events[0]["state"] == events[0]["prev_state"] == from_state
    assert driver.engine.counters()["illegal_transitions"] == 1
    staged_reports = driver.engine.staged().reports
    if event in (E.CANCEL_REQUESTED, E.REPLACE_REQUESTED):
        # the strategy hears its request was refused (under the request's own client id)
        assert staged_reports["event"].tolist() == [ReportEvent.REJECT]
        assert staged_reports[0]["reason"] == Reason.ILLEGAL_TRANSITION
        assert staged_reports[0]["client_order_id"] == driver.next_cid
    else:
        assert len(staged_reports) == 0, "a refused exchange report must not reach strategies or risk"
