"""OmsWorker on real rings and a real database when the exchange restarts: a SESSION announcement
cancels every open order (database, strategies, risk) and is answered with a LOGON; an OMS crash
between committing those cancels' events and forwarding their reports loses none of them."""

from __future__ import annotations

import time

import numpy as np

from hftshm.codes import Action, OrderEventKind as E, OrderState as S, Reason, ReportEvent
from hftshm.oms.store import Store
from hftshm.oms.testing import OmsRig, ack_for, fill_for, new_orders, reports

from tests.integration.oms_db import new_database


def announcement(number: int, started_ns: int) -> dict:
    return {"event": ReportEvent.SESSION, "order_id": 0, "client_order_id": number, "exch_ts_ns": started_ns,
            "reason": Reason.VENUE_RESTART, "strategy_id": 0, "symbol_id": 0, "side": 0}


def three_orders_at_the_exchange(rig: OmsRig) -> np.ndarray:
    """One acked, one part-filled, one not acked yet; the strategies' and risk's rings read empty."""
    rig.send_orders(new_orders(*({"client_order_id": i, "qty": 1.0} for i in (1, 2, 3))))
    assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() == 3)
    sent = rig.exchange_orders()
    rig.send_reports(reports(ack_for(sent[0]), ack_for(sent[1]), fill_for(sent[1], 0.25, 0.25)))
    assert rig.run_until(lambda: rig.rings["reports.risk"].occupancy() == 3)
    rig.strategy_reports(), rig.risk_reports()
    return sent


def test_new_session_cancels_every_open_order_everywhere_then_logs_on(tmp_path):
    url, schema = new_database("sqlite", tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=256)
    try:
        rig.start_writer()
        oms = rig.start_oms()
        assert rig.run_until(lambda: not oms.recovering)
        sent = three_orders_at_the_exchange(rig)
        started = time.time_ns()
        rig.send_reports(reports(announcement(2, started)))
        assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() == 1)
        (logon,) = rig.exchange_orders()
        assert logon["action"] == Action.LOGON and logon["client_order_id"] == 2
        for received in (rig.strategy_reports(), rig.risk_reports()):
            assert sorted(received["client_order_id"].tolist()) == [1, 2, 3]
            assert (received["event"] == ReportEvent.CANCEL).all()
            assert (received["reason"] == Reason.VENUE_RESTART).all()
        assert oms.engine.open_count == 0 and oms.engine.counters()["venue_cancels"] == 3
        rig.step(20)  # the writer persists
        store = Store(url, schema=schema, create=False)
        try:
            assert rig.run_until(lambda: len(store.venue_cancels(started)) == 3)
            assert {o["state"] for o in store.list_orders()} == {S.CANCELLED}
            part = store.get_order(int(sent[1]["order_id"]))
            assert part["cum_qty"] == 0.25 and part["leaves_qty"] == 0.0
            assert store.events_of(int(sent[1]["order_id"]))[-1]["kind"] == E.CANCELLED
            assert store.check_consistency() == []
        finally:
            store.close()
    finally:
        rig.close()


def test_a_crash_between_the_cancels_events_and_their_reports_loses_none(tmp_path):
    url, schema = new_database("sqlite", tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=256)
    try:
        rig.start_writer()
        first = rig.start_oms()
        assert rig.run_until(lambda: not first.recovering)
        three_orders_at_the_exchange(rig)
        started = time.time_ns()
        rig.send_reports(reports(announcement(2, started)))
        # the announcement is applied (one cancel per call: a batch of one record) and its events are
        # committed; the process dies before forwarding the reports, the LOGON or releasing the input
        view = first.reports_in.poll(16)
        while first.engine.on_reports(view) == 0:
            pass
        staged = first.engine.staged()
        assert len(staged.reports) == 3 and len(staged.orders) == 1
        first._publish_events(staged.events)
        first.engine.clear()
        rig.workers.remove(first)  # SIGKILLed: no drain, no close
        second = rig.start_oms()
        assert rig.run_until(lambda: not second.recovering, 30)
        assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() == 1)
        rig.step(20)
        (logon,) = rig.exchange_orders()
        assert logon["action"] == Action.LOGON and logon["client_order_id"] == 2, "the re-read announcement"
        for received in (rig.strategy_reports(), rig.risk_reports()):
            assert sorted(received["client_order_id"].tolist()) == [1, 2, 3], "each cancel exactly once"
            assert (received["event"] == ReportEvent.CANCEL).all()
            assert (received["reason"] == Reason.VENUE_RESTART).all()
        assert second.ctx.counters[second.COUNTER_NAMES.index("reports_reforwarded")] == 6
        assert second.engine.counters()["venue_cancels"] == 0, "nothing was open any more"
        assert second.engine.open_count == 0
    finally:
        rig.close()
