"""Restarted risk and strategy workers rebuild from the OMS's record, and the report ring's
redelivery (at-least-once) never books a fill twice.

A real ``OmsEngine`` makes the orders, events and reports; the events go to a real SQLite OMS
database (``Store``), the reports are what risk and the strategies read. A predecessor applies every
report once (the reference); a restarted worker rebuilds from the database and then has the ring
deliver again what the predecessor had not released, or everything, or the rest of the run.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hftshm.codes import Action, OrderState, ReportEvent, Side
from hftshm.oms.engine import OmsEngine
from hftshm.oms.record import CatchUp, load_run
from hftshm.oms.store import Store
from hftshm.oms.testing import new_orders, reports as oms_reports
from hftshm.risk import orders_nb, replay_nb
from hftshm.risk.control import ControlBlock
from hftshm.risk.restart import RiskRestart
from hftshm.risk.state import RiskState
from hftshm.risk.testing import BTC, SYMBOLS, intents, risk_config
from hftshm.runtime.worker import WorkerContext
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.restart import ReplayFilter, rebuild_portfolio
from hftshm.strategies.runtime import StrategyHost
from hftshm.transport.ring import Ring
from hftshm.transport.testing import unique_name

STRATEGY = 1


class Oms:
    """An OMS engine whose events go to a SQLite database and whose reports are collected."""

    def __init__(self, tmp_path):
        self.engine = OmsEngine(max_orders=256, timeouts_ns=np.array([10**15], np.int64), epoch=1, staging=1024)
        self.store = Store(f"sqlite:///{tmp_path / 'oms.sqlite'}")
        self.reports = []  # per step, what the OMS forwarded to risk and the strategies
        self.events = []
        self.orders = {}  # client order id -> order id
        self.clock = 1

    def step(self, orders=None, reports=None, write=True) -> np.ndarray:
        self.clock += 1
        if orders is not None:
            self.engine.on_orders(orders, self.clock, self.clock)
        if reports is not None:
            self.engine.on_reports(reports, self.clock, self.clock)
        staged = self.engine.staged()
        for o in staged.orders:
            if int(o["action"]) == Action.NEW:
                self.orders[int(o["client_order_id"])] = int(o["order_id"])
        out, events = staged.reports.copy(), staged.events.copy()
        self.engine.clear()
        if write:
            self.store.write_events(events)
        self.reports.append(out)
        self.events.append(events)
        return out

    def report(self, coid: int, event: int, **fields) -> dict:
        return {"order_id": self.orders[coid], "client_order_id": coid, "event": event, "strategy_id": STRATEGY,
                "symbol_id": BTC, **fields}

    def close(self):
        self.store.close()


ORDERS = [  # client order id, side, qty, price
    (1, Side.BUY, 1.0, 61_000.0), (2, Side.BUY, 0.5, 60_990.0), (3, Side.SELL, 0.4, 61_010.0),
    (4, Side.SELL, 1.2, 61_020.0), (5, Side.BUY, 0.3, 60_980.0),
]


def trade(oms: Oms) -> None:
    """Five orders: two filled in parts, one filled, one cancelled, one resting partly filled."""
    oms.step(orders=new_orders(*({"client_order_id": c, "side": s, "qty": q, "price": p, "symbol_id": BTC}
                                 for c, s, q, p in ORDERS)))
    r = oms.report
    oms.step(reports=oms_reports(*(r(c, ReportEvent.ACK, side=s, price=p, qty=q, leaves_qty=q)
                                   for c, s, q, p in ORDERS)))
    oms.step(reports=oms_reports(
        r(1, ReportEvent.PARTIAL, side=Side.BUY, price=61_000.0, qty=0.4, cum_qty=0.4, leaves_qty=0.6, fee=0.5),
        r(3, ReportEvent.FILL, side=Side.SELL, price=61_010.0, qty=0.4, cum_qty=0.4, leaves_qty=0.0, fee=0.2)))
    oms.step(reports=oms_reports(
        r(1, ReportEvent.FILL, side=Side.BUY, price=61_000.0, qty=0.6, cum_qty=1.0, leaves_qty=0.0, fee=0.7),
        r(4, ReportEvent.PARTIAL, side=Side.SELL, price=61_020.0, qty=0.2, cum_qty=0.2, leaves_qty=1.0, fee=0.1),
        r(2, ReportEvent.CANCEL, side=Side.BUY, price=60_990.0, qty=0.5, leaves_qty=0.0)))
    oms.step(reports=oms_reports(
        r(4, ReportEvent.PARTIAL, side=Side.SELL, price=61_021.0, qty=0.5, cum_qty=0.7, leaves_qty=0.5, fee=0.3)))


def all_reports(oms: Oms, first_step: int = 0) -> np.ndarray:
    return np.concatenate(oms.reports[first_step:])


# -- risk ----------------------------------------------------------------------------------------


def risk_state() -> RiskState:
    return RiskState(risk_config(max_position_per_symbol=100.0), SYMBOLS)


def approve_all(state: RiskState) -> None:
    """What the predecessor's checks reserved: every order of ORDERS approved."""
    for c, s, q, p in ORDERS:
        slot = orders_nb.insert(state.table, STRATEGY, c, int(state.account[0]["open_orders"]))
        state.table[slot]["symbol_id"] = BTC
        state.table[slot]["side"] = s
        state.table[slot]["leaves"] = q
        state.table[slot]["price"] = p
        state.account[0]["open_orders"] += 1
        state.symbols[BTC]["pending_buy" if s == Side.BUY else "pending_sell"] += q


def apply(state: RiskState, reports: np.ndarray, control) -> None:
    replay_nb.apply_new_reports(reports, 0, -1, len(reports), state.symbols, state.account, state.table,
                                control.words, state.replayed)


def same_books(a: RiskState, b: RiskState) -> None:
    for field in ("position", "avg_cost", "realized", "fees", "fills", "volume", "pending_buy", "pending_sell"):
        assert a.symbols[BTC][field] == pytest.approx(b.symbols[BTC][field], abs=1e-9), field
    assert int(a.account[0]["open_orders"]) == int(b.account[0]["open_orders"])
    key = lambda o: (o["strategy_id"], o["client_order_id"])  # noqa: E731
    assert sorted((key(o), round(o["leaves"], 9)) for o in a.open_orders()) == \
        sorted((key(o), round(o["leaves"], 9)) for o in b.open_orders())


@pytest.fixture
def control():
    return ControlBlock.private()


@pytest.fixture
def rings():
    made = {name: Ring.create(unique_name("rr"), layout, 64) for name, layout in
            (("orders", "order"), ("risk.rejects", "execution_report"), ("intents", "order_intent"))}
    yield made
    for ring in made.values():
        ring.unlink()
        ring.close()


class _NoCatchUp:
    store = None
    events = None

    def begin(self):
        pass


def restarted_risk(tmp_path, state, control, rings) -> RiskRestart:
    ctx = WorkerContext(name="risk", params={}, inputs={"intents": rings["intents"]},
                        outputs={"orders": rings["orders"], "risk.rejects": rings["risk.rejects"]}, config=None,
                        counters=np.zeros(32, np.int64), histograms={}, run_dir=tmp_path,
                        log=logging.getLogger("test.restart"), control=control)
    return RiskRestart(ctx, state, control, _NoCatchUp(), rings["orders"], rings["risk.rejects"], [rings["intents"]])


def test_a_redelivered_fill_does_not_double_the_risk_position(tmp_path, control, rings):
    oms = Oms(tmp_path)
    try:
        trade(oms)
        reference = risk_state()
        approve_all(reference)
        apply(reference, all_reports(oms), control)
        assert reference.position("BTCUSDT") == pytest.approx(1.0 - 0.4 - 0.7)

        rebuilt = risk_state()
        restarted_risk(tmp_path, rebuilt, control, rings).rebuild(load_run(oms.store, 0))
        same_books(rebuilt, reference)
        # the ring delivers again what the predecessor had not released: the last two batches ...
        apply(rebuilt, all_reports(oms, 3), control)
        same_books(rebuilt, reference)
        # ... or, at worst, everything: each fill is recognised by its order's cumulative quantity
        apply(rebuilt, all_reports(oms), control)
        same_books(rebuilt, reference)
        assert rebuilt.account[0]["reports_replayed"] == 3 + 5
    finally:
        oms.close()


def test_risk_rebuilt_from_a_lagging_record_books_the_rest_once(tmp_path, control, rings):
    """The database holds the first steps only; the ring delivers the predecessor's unreleased tail and
    then what happened after (steps the database did not have yet)."""
    oms = Oms(tmp_path)
    try:
        trade(oms)
        reference = risk_state()
        approve_all(reference)
        apply(reference, all_reports(oms), control)
        r = oms.report
        more = oms_reports(r(4, ReportEvent.FILL, side=Side.SELL, price=61_022.0, qty=0.5, cum_qty=1.2,
                             leaves_qty=0.0, fee=0.3),
                           r(5, ReportEvent.PARTIAL, side=Side.BUY, price=60_980.0, qty=0.1, cum_qty=0.1,
                             leaves_qty=0.2))
        tail = oms.step(reports=more, write=False)  # made, forwarded, not yet in the database
        apply(reference, tail, control)

        rebuilt = risk_state()
        restarted_risk(tmp_path, rebuilt, control, rings).rebuild(load_run(oms.store, 0))
        apply(rebuilt, all_reports(oms, 2), control)  # released-but-unreleased tail, then the new ones
        same_books(rebuilt, reference)
        assert rebuilt.position("BTCUSDT") == pytest.approx(1.0 - 0.4 - 1.2 + 0.1)
    finally:
        oms.close()


def test_risk_restart_keeps_approved_orders_the_oms_had_not_taken_and_skips_decided_intents(tmp_path, control,
                                                                                            rings):
    oms = Oms(tmp_path)
    try:
        trade(oms)
        orders, rejects, intents_ring = rings["orders"], rings["risk.rejects"], rings["intents"]
        # the predecessor decided intents 6 (approved, still in the order ring) and 7 (rejected), and
        # was killed before releasing them; intent 8 it never checked
        pending = intents({"client_order_id": 6, "qty": 0.25}, {"client_order_id": 7, "qty": 99.0},
                          {"client_order_id": 8, "qty": 0.1})
        view = intents_ring.claim(3)
        view[:] = pending
        intents_ring.commit(3)
        approved = new_orders({"client_order_id": 6, "qty": 0.25, "symbol_id": BTC})
        view = orders.claim(1)
        view[:] = approved
        orders.commit(1)
        reject = rejects.claim(1)
        reject[0]["strategy_id"], reject[0]["client_order_id"], reject[0]["event"] = STRATEGY, 7, ReportEvent.REJECT
        rejects.commit(1)

        state = risk_state()
        restart = restarted_risk(tmp_path, state, control, rings)
        restart.rebuild(load_run(oms.store, 0))
        open_ids = sorted(o["client_order_id"] for o in state.open_orders())
        assert open_ids == [4, 5, 6]  # 4 partly filled, 5 resting, 6 approved and on its way to the OMS
        assert state.pending("BTCUSDT") == pytest.approx((0.3 + 0.25, 0.5))
        assert restart.notes["decided_intents_released"] == 2
        assert intents_ring.consumer_position == 2  # intent 8 is checked normally
    finally:
        oms.close()


def test_catch_up_waits_for_the_event_the_oms_published_last(tmp_path):
    oms = Oms(tmp_path)
    events = Ring.create(unique_name("ev"), "order_event", 64)
    try:
        trade(oms)
        late = oms.step(reports=oms_reports(oms.report(5, ReportEvent.CANCEL, side=Side.BUY, qty=0.3)), write=False)
        assert len(late) == 1
        view = events.claim(len(oms.events[-1]))
        view[:] = oms.events[-1]
        events.commit(len(view))
        catch_up = CatchUp(oms.store, tmp_path, 0, events, timeout_s=5.0)
        catch_up.begin()
        assert catch_up.target_event_id == int(oms.events[-1]["event_id"][-1])
        assert not catch_up.caught_up()  # the writer has not committed it yet
        oms.store.write_events(oms.events[-1])
        assert catch_up.caught_up()
        record = catch_up.read()
        assert sorted(record.open_orders["client_order_id"].tolist()) == [4]
        assert record.fill_marks()[oms.orders[4]] == pytest.approx(0.7)
        assert (STRATEGY, 5) in record.finished_keys()
    finally:
        events.unlink()
        events.close()
        oms.close()


def test_catch_up_waits_out_a_spill_and_then_targets_the_newest_event(tmp_path):
    """Events the OMS spilled (its writer ring full) reach the ring after the reports about them:
    while the spill is pending nothing counts as caught up, and the target moves past it."""
    from hftshm.oms.config import spill_path
    from hftshm.oms.journal import Journal

    oms = Oms(tmp_path)
    events = Ring.create(unique_name("ev"), "order_event", 64)
    spill = Journal(spill_path(tmp_path), events.dtype.itemsize)
    try:
        trade(oms)
        first, spilled = oms.events[1], oms.events[2]
        view = events.claim(len(first))
        view[:] = first
        events.commit(len(view))
        spill.append(np.ascontiguousarray(spilled).data.cast("B"))
        catch_up = CatchUp(oms.store, tmp_path, 0, events, timeout_s=5.0)
        catch_up.begin()
        assert not catch_up.caught_up()  # the database has it all, but the spill is not drained
        spill.advance(spill.pending_bytes)  # the OMS hands the spill to the ring
        view = events.claim(len(spilled))
        view[:] = spilled
        events.commit(len(view))
        assert catch_up.caught_up()
        assert catch_up.target_event_id == int(spilled["event_id"][-1])
    finally:
        spill.close()
        events.unlink()
        events.close()
        oms.close()


def test_catch_up_without_an_event_ring_waits_for_the_journal_s_newest_event(tmp_path):
    """The OMS journals in-process (no order_event ring): the target is the journal's last record."""
    from hftshm.oms.config import journal_path
    from hftshm.oms.journal import Journal

    oms = Oms(tmp_path)
    journal = Journal(journal_path(tmp_path), oms.engine.staged().events.dtype.itemsize)
    try:
        trade(oms)
        late = oms.events[-1]
        journal.append(np.ascontiguousarray(late).data.cast("B"))
        oms.store.engine.dispose()
        with oms.store.engine.begin() as conn:  # as if the writer had not committed the last step yet
            conn.exec_driver_sql(f"DELETE FROM order_events WHERE event_id = {int(late['event_id'][-1])}")
        catch_up = CatchUp(oms.store, tmp_path, 0, None, timeout_s=5.0)
        catch_up.begin()
        assert catch_up.target_event_id == int(late["event_id"][-1])
        assert not catch_up.caught_up()
        oms.store.write_events(late)
        assert catch_up.caught_up()
    finally:
        journal.close()
        oms.close()


# -- strategies ------------------------------------------------------------------------------------


def strategy_host(first_coid: int = 1) -> StrategyHost:
    host = StrategyHost(SYMBOLS, first_client_order_id=first_coid)
    host.add("buyer", "tests.unit.strategy_fixtures:BuyOnce", "BTCUSDT", {}, STRATEGY)
    return host


def predecessor_portfolio(oms: Oms):
    """The strategy before the kill: sent every order of ORDERS, saw every report once."""
    host = strategy_host()
    strategy = host.strategy(STRATEGY)
    for c, s, q, p in ORDERS:
        pnb.add_order(strategy.portfolio.pf, strategy.portfolio.orders, c, int(s), p, q, 0)
    host.on_reports(all_reports(oms))
    return strategy


def same_portfolio(a, b) -> None:
    for index in (pnb.PF_POSITION, pnb.PF_REALIZED, pnb.PF_FEES, pnb.PF_FILLS, pnb.PF_TRADED_QTY, pnb.PF_OPEN_ORDERS):
        assert a.portfolio.pf[index] == pytest.approx(b.portfolio.pf[index], abs=1e-9), index
    opened = lambda s: sorted((o.client_order_id, round(o.leaves_qty, 9)) for o in s.open_orders())  # noqa: E731
    assert opened(a) == opened(b)


def restarted_strategy(oms: Oms, in_flight: np.ndarray | None = None):
    record = load_run(oms.store, 0)
    host = strategy_host(first_coid=3)
    strategy = host.strategy(STRATEGY)
    notes = rebuild_portfolio(strategy, record, in_flight if in_flight is not None else intents(), record.keys())
    host.report_filter = ReplayFilter(record.fill_marks(), record.finished_keys(), record.keys())
    return host, strategy, notes


def test_a_redelivered_fill_does_not_double_the_strategy_position(tmp_path):
    oms = Oms(tmp_path)
    try:
        trade(oms)
        reference = predecessor_portfolio(oms)
        assert reference.position == pytest.approx(1.0 - 0.4 - 0.7)
        host, strategy, notes = restarted_strategy(oms)
        assert notes["fills"] == 5 and notes["open_orders"] == 2
        same_portfolio(strategy, reference)
        host.on_reports(all_reports(oms))  # everything again
        same_portfolio(strategy, reference)
        assert host.report_filter.skipped == len(all_reports(oms)) - 2  # the ACKs of the two open orders pass
        # the client order ids go on past every id the record holds
        assert strategy.portfolio.pf[pnb.PF_NEXT_COID] == 6
    finally:
        oms.close()


def test_strategy_rebuilt_from_a_lagging_record_books_the_rest_once(tmp_path):
    oms = Oms(tmp_path)
    try:
        trade(oms)
        r = oms.report
        tail = oms.step(reports=oms_reports(
            r(4, ReportEvent.FILL, side=Side.SELL, price=61_022.0, qty=0.5, cum_qty=1.2, leaves_qty=0.0),
            r(5, ReportEvent.CANCEL, side=Side.BUY, qty=0.3)), write=False)
        assert len(tail) == 2
        reference = predecessor_portfolio(oms)
        host, strategy, _ = restarted_strategy(oms)
        host.on_reports(all_reports(oms, 3))  # the unreleased tail, then what the database did not have
        same_portfolio(strategy, reference)
        assert strategy.open_orders() == []
    finally:
        oms.close()


def test_strategy_restart_knows_orders_the_record_does_not_hold_yet(tmp_path):
    """An intent still unreleased in the strategy's ring is open at once; an order risk approved before
    the kill (not in the database yet) is adopted by its ACK; a stale ACK of a finished one is not."""
    oms = Oms(tmp_path)
    try:
        trade(oms)
        in_flight = intents({"client_order_id": 9, "side": Side.SELL, "qty": 0.2, "price": 61_030.0})
        host, strategy, notes = restarted_strategy(oms, in_flight)
        assert notes["pending_intents"] == 1
        assert {o.client_order_id for o in strategy.open_orders()} == {4, 5, 9}
        oms.step(orders=new_orders({"client_order_id": 6, "qty": 0.1, "price": 60_970.0, "symbol_id": BTC}),
                 write=False)
        ack = oms.step(reports=oms_reports(oms.report(6, ReportEvent.ACK, price=60_970.0, qty=0.1, leaves_qty=0.1)),
                       write=False)
        stale = oms_reports(oms.report(1, ReportEvent.ACK, price=61_000.0, qty=1.0, leaves_qty=1.0))
        host.on_reports(np.concatenate([ack, stale]))
        opened = {o.client_order_id: o for o in strategy.open_orders()}
        assert set(opened) == {4, 5, 6, 9}
        assert opened[6].state == OrderState.ACKNOWLEDGED and opened[6].leaves_qty == pytest.approx(0.1)
        assert host.report_filter.adopted == 1
        # the quiesce cancels every one of them
        host.pause(STRATEGY)
        cancels = host.take_outbox()
        assert sorted(cancels["target_client_order_id"].tolist()) == [4, 5, 6, 9]
    finally:
        oms.close()


def test_the_report_filter_ends_once_the_redelivered_reports_and_unknown_orders_first_reports_are_seen(tmp_path):
    """While the filter is set the worker keeps its Python path (the compiled cycle has no filter):
    it must end. It ends when the report ring's consumer has passed where the ring stood after the
    record was read, and every order risk took that the record does not know has had its first
    report; an order the dead worker had already seen rejected is not waited for."""
    from hftshm.strategies.restart import unanswered_intents

    class FakeRing:
        consumer_position = 0

    oms = Oms(tmp_path)
    try:
        trade(oms)
        record = load_run(oms.store, 0)
        released = intents({"client_order_id": 6, "price": 60_970.0, "qty": 0.1},
                           {"client_order_id": 7, "price": 60_960.0, "qty": 0.1},
                           {"client_order_id": 1, "price": 61_000.0, "qty": 1.0})  # 1: in the record
        rejected = np.zeros(1, dtype=all_reports(oms).dtype)
        rejected["strategy_id"], rejected["client_order_id"], rejected["event"] = STRATEGY, 7, ReportEvent.REJECT
        pending = unanswered_intents(released, [rejected], record.keys())
        assert pending == {(STRATEGY, 6)}  # 7 was rejected in a report the dead worker read; 1 is recorded
        ring = FakeRing()
        f = ReplayFilter(record.fill_marks(), record.finished_keys(), record.keys(), [(ring, 40)], pending)
        assert not f.done()
        ring.consumer_position = 40  # every report published before the read has been taken
        assert not f.done()  # order 6 has not been answered yet
        host = strategy_host()
        oms.step(orders=new_orders({"client_order_id": 6, "qty": 0.1, "price": 60_970.0, "symbol_id": BTC}),
                 write=False)
        ack = oms.step(reports=oms_reports(oms.report(6, ReportEvent.ACK, price=60_970.0, qty=0.1, leaves_qty=0.1)),
                       write=False)
        f(host.slot("buyer"), ack[0])
        assert f.done() and f.adopted == 1
    finally:
        oms.close()
