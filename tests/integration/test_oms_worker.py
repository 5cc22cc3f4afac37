"""OmsWorker and OrderEventWriter on real shared-memory rings and a real database."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from hftshm.codes import OrderEventKind as E, OrderState as S, Reason, TradingState
from hftshm.metrics import histogram
from hftshm.oms.store import Store
from hftshm.oms.testing import OmsRig, ack_for, fill_for, new_orders, reports
from hftshm.risk.control import ControlBlock

from tests.integration.oms_db import database, drop, new_database  # noqa: F401  (fixture)

DEAD_DB = "postgresql+psycopg://postgres@localhost:1/none"


@pytest.fixture
def rig(database, tmp_path):  # noqa: F811
    url, schema = database
    r = OmsRig(tmp_path / "run", url, schema=schema, capacity=1024)
    yield r
    r.close()


def test_orders_flow_to_the_exchange_reports_fan_out_and_events_persist(rig):
    rig.start_writer()
    oms = rig.start_oms()
    assert rig.run_until(lambda: not oms.recovering)
    rig.send_orders(new_orders(*({"client_order_id": i} for i in range(1, 101))))
    assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() == 100)
    sent = rig.exchange_orders()
    assert sent["seq"].tolist() == list(range(100)), "the OMS stamps a dense per-ring sequence"
    assert len(set(sent["order_id"].tolist())) == 100
    rig.send_reports(reports(*[ack_for(o) for o in sent], *[fill_for(o, 0.1, 0.1) for o in sent[:50]]))
    assert rig.run_until(lambda: rig.rings["reports.risk"].occupancy() == 150)
    for_strategies, for_risk = rig.strategy_reports(), rig.risk_reports()
    assert len(for_strategies) == 150
    assert (for_strategies[["order_id", "event"]] == for_risk[["order_id", "event"]]).all()
    assert oms.engine.open_count == 50
    assert oms.ctx.counters[oms.COUNTER_NAMES.index("open_orders_gauge")] == 50
    assert oms.ctx.histograms["hop"][histogram.COUNT] == 100 + 150, "one hop latency per order and report"
    rig.stop_workers()
    store = Store(rig.oms_overrides["database_url"], schema=rig.oms_overrides["database_schema"])
    assert store.count("orders") == 100
    assert store.count("order_events") == 100 + 150
    assert store.count("fills") == 50
    assert len(store.list_orders(states_in=[S.FILLED], limit=1000)) == 50
    assert store.check_consistency() == []
    store.close()


def test_without_an_event_ring_the_oms_writes_from_its_own_process(rig):
    oms = rig.start_oms(with_event_ring=False)
    assert oms.writer is not None
    assert rig.run_until(lambda: not oms.recovering)
    rig.send_orders(new_orders({"client_order_id": 1}, {"client_order_id": 1}))
    assert rig.run_until(lambda: rig.rings["reports.strategies"].occupancy() == 1)
    assert rig.strategy_reports()[0]["reason"] == Reason.DUPLICATE_CLIENT_ORDER_ID
    rig.stop_workers()
    store = Store(rig.oms_overrides["database_url"], schema=rig.oms_overrides["database_schema"])
    kinds = [e["kind"] for e in store.events_of(store.list_orders()[0]["order_id"])]
    assert kinds == [E.CREATED, E.REFUSED]
    store.close()


@pytest.mark.parametrize("policy", ["halt", "block"])
def test_backlog_full_applies_the_policy_and_drops_nothing(policy, tmp_path):
    url, schema = new_database("sqlite", tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=256,
                 oms={"on_backlog_full": policy, "overflow_events": 1000, "batch_size": 64})
    control = ControlBlock.private()
    total = 3000
    pending = new_orders(*({"client_order_id": i} for i in range(1, total + 1)))

    def pump() -> None:
        nonlocal pending
        pending = pending[rig.offer_orders(pending):]
        rig.step()
        rig.exchange_orders()

    try:
        # the writer cannot reach its database: its journal takes 1000 events, then its ring fills
        writer = rig.start_writer(oms={"database_url": DEAD_DB, "backlog_max_events": 1000,
                                       "reconnect_backoff_max_ms": 100}, flush_timeout_s=0.2)
        oms = rig.start_oms(control=control)
        assert rig.run_until(lambda: not oms.recovering)
        blocked_at = oms.COUNTER_NAMES.index("blocked_cycles")
        for _ in range(20000):
            pump()
            if oms.ctx.counters[blocked_at] > 10:
                break
        assert writer.writer.backlog_events == 1000, "the writer's journal is at its bound"
        assert rig.rings["events"].occupancy() == 256, "the ring behind it is full"
        assert oms.overflow_n > 0, "the OMS spilled the rest to its file"
        blocked = oms.ctx.counters[blocked_at]
        if policy == "halt":
            assert control.trading_state == TradingState.HALTED
            assert control.snapshot()["halt_reason"] == "backlog_full"
            assert oms.ctx.counters[oms.COUNTER_NAMES.index("backlog_halts")] == 1
        else:
            assert control.trading_state == TradingState.ACTIVE
        assert blocked > 0, "at the spill bound (halt) or at once (block), input waits"
        assert len(pending) + rig.rings["orders"].occupancy() > 0, "orders wait upstream, none is dropped"
        rig.stop_workers()  # what the OMS could not hand over stays in its spill file
        # the database comes back: a new writer and OMS write everything and take the waiting orders
        rig.start_writer()
        oms = rig.start_oms(control=control)
        assert rig.run_until(lambda: not oms.recovering, 60)

        def done() -> bool:
            pump()
            return len(pending) == 0 and rig.rings["orders"].occupancy() == 0 and oms.overflow_n == 0

        assert rig.run_until(done, 60)
        rig.stop_workers()
        store = Store(url, schema=schema)
        assert store.count("orders") == total, "every order's events reached the database"
        assert store.count("order_events") == total
        assert store.check_consistency() == []
        store.close()
    finally:
        rig.close()
        drop(url, schema)


def test_open_orders_are_mirrored_to_redis(tmp_path):
    redis = pytest.importorskip("redis")
    url, schema = new_database("sqlite", tmp_path)
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    rig = OmsRig(tmp_path / "run", url, schema=schema)
    client = redis.Redis.from_url("redis://localhost:6379/0")
    key = f"hftshm:{namespace}:oms:open_orders"
    try:
        rig.start_writer(redis_url="redis://localhost:6379/0", redis_namespace=namespace)
        oms = rig.start_oms()
        assert rig.run_until(lambda: not oms.recovering)
        rig.send_orders(new_orders({"client_order_id": 1}, {"client_order_id": 2}))
        assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() == 2)
        sent = rig.exchange_orders()
        rig.send_reports(reports(ack_for(sent[0]), ack_for(sent[1]), fill_for(sent[1], 0.1, 0.1)))
        assert rig.run_until(lambda: rig.rings["reports.risk"].occupancy() == 3)
        rig.stop_workers()
        cached = client.hgetall(key)
        assert list(cached) == [str(int(sent[0]["order_id"])).encode()], "the filled order left the cache"
        assert b'"state":"acknowledged"' in cached[str(int(sent[0]["order_id"])).encode()]
    finally:
        client.delete(key)
        client.close()
        rig.close()
        drop(url, schema)


def _run_script(tmp_path, name: str, with_event_ring: bool):
    """The same inputs through one OMS; returns what it published and what it persisted."""
    from hftshm.codes import Action, ReportEvent

    url, schema = new_database("sqlite", tmp_path / name)
    (tmp_path / name).mkdir(exist_ok=True)
    rig = OmsRig(tmp_path / name / "run", url, schema=schema, capacity=256, oms={"batch_size": 16})
    try:
        if with_event_ring:
            rig.start_writer()
        oms = rig.start_oms(with_event_ring=with_event_ring)
        assert rig.run_until(lambda: not oms.recovering)
        assert (oms._rings is not None) == with_event_ring, "fast path exactly when there is an event ring"
        intents = new_orders(*({"client_order_id": i, "qty": 1.0} for i in range(1, 41)), {"client_order_id": 3})
        rig.send_orders(intents)
        assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() == 40)
        sent = rig.exchange_orders()
        answers = []
        for order in sent:
            cid = int(order["client_order_id"])
            answers.append(ack_for(order))
            if cid % 4 == 0:
                answers.append(fill_for(order, 1.0, 1.0))
            elif cid % 4 == 1:
                answers.append(fill_for(order, 0.5, 0.5))
                answers.append(fill_for(order, 0.5, 0.5))  # a replayed report: stale
        rig.send_reports(reports(*answers))
        rig.send_orders(new_orders(*({"action": Action.CANCEL, "client_order_id": 100 + i,
                                      "target_client_order_id": i} for i in range(1, 41, 2))))
        assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() >= 10)
        cancels = rig.exchange_orders()
        rig.send_reports(reports(*({"order_id": int(c["order_id"]), "event": ReportEvent.CANCEL} for c in cancels)))
        expected_reports = 1 + len(answers) - 10 + 20 + len(cancels)
        assert rig.run_until(lambda: rig.rings["reports.risk"].occupancy() >= expected_reports - 20)
        rig.step(50)
        published = (sent[["client_order_id", "action", "seq"]].tolist(),
                     cancels[["client_order_id", "action", "target_client_order_id"]].tolist(),
                     rig.strategy_reports()[["client_order_id", "event", "reason", "seq"]].tolist())
        counters = dict(zip(oms.COUNTER_NAMES[:16], oms.ctx.counters[:16].tolist()))
        rig.stop_workers()
        store = Store(url, schema=schema)
        trail = [(r["client_order_id"], r["state"], [e["kind"] for e in store.events_of(r["order_id"])])
                 for r in sorted(store.list_orders(limit=1000), key=lambda r: r["client_order_id"])]
        assert store.check_consistency() == []
        store.close()
        return published, counters, trail
    finally:
        rig.close()


def test_the_numba_cycle_and_the_python_path_agree(tmp_path):
    fast = _run_script(tmp_path, "fast", with_event_ring=True)
    slow = _run_script(tmp_path, "slow", with_event_ring=False)
    assert fast[0] == slow[0], "the same orders and reports, in the same order"
    assert fast[1] == slow[1], "the same counters"
    assert fast[2] == slow[2], "the same audit trail"
    assert fast[1]["stale_reports"] == 10 and fast[1]["duplicates"] == 1


@pytest.mark.parametrize("reports_sent_before_the_crash", [False, True])
def test_a_crash_between_events_and_reports_neither_loses_nor_doubles_a_fill(reports_sent_before_the_crash,
                                                                            tmp_path):
    from hftshm.codes import ReportEvent

    url, schema = new_database("sqlite", tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=256)
    try:
        rig.start_writer()
        first = rig.start_oms()
        assert rig.run_until(lambda: not first.recovering)
        rig.send_orders(new_orders({"client_order_id": 1, "qty": 1.0}))
        assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() == 1)
        (order,) = rig.exchange_orders()
        rig.send_reports(reports(ack_for(order)))
        assert rig.run_until(lambda: rig.rings["reports.strategies"].occupancy() == 1)
        rig.strategy_reports(), rig.risk_reports()
        # the fill is applied and its event committed; then the process dies before releasing the
        # input, and (one case) before forwarding the report
        rig.send_reports(reports(fill_for(order, 1.0, 1.0)))
        view = first.reports_in.poll(16)
        first.engine.on_reports(view)
        staged = first.engine.staged()
        first._publish_events(staged.events)
        if reports_sent_before_the_crash:
            for ring in first.reports_out:
                ring.claim(1)[:] = staged.reports
                ring.commit(1)
        first.engine.clear()
        rig.workers.remove(first)  # SIGKILLed: no drain, no close
        second = rig.start_oms()
        assert rig.run_until(lambda: not second.recovering, 30)
        rig.step(20)
        for received in (rig.strategy_reports(), rig.risk_reports()):
            fills = received[received["event"] == ReportEvent.FILL]
            assert len(fills) == 1 and fills[0]["order_id"] == order["order_id"], "exactly one fill, either way"
        reforwarded = second.ctx.counters[second.COUNTER_NAMES.index("reports_reforwarded")]
        assert reforwarded == (0 if reports_sent_before_the_crash else 2)
        assert second.engine.counters()["stale_reports"] == 1, "the re-delivered fill is not applied twice"
    finally:
        rig.close()


@pytest.mark.parametrize("with_event_ring", [True, False], ids=["numba-cycle", "python-path"])
def test_a_restarted_oms_counts_on_from_its_predecessors_counters(with_event_ring, tmp_path):
    """The status row outlives a SIGKILL; a new OMS's statistics start at zero. The counters are the
    run's totals (the summary's orders and fills): the restarted worker counts on from them."""
    url, schema = new_database("sqlite", tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=256)

    def trade(oms, first_id: int, n: int, filled: int) -> None:
        rig.send_orders(new_orders(*({"client_order_id": i} for i in range(first_id, first_id + n))))
        assert rig.run_until(lambda: rig.rings["exchange.orders"].occupancy() == n)
        sent = rig.exchange_orders()
        rig.send_reports(reports(*[ack_for(o) for o in sent], *[fill_for(o, 1.0, 1.0) for o in sent[:filled]]))
        assert rig.run_until(lambda: rig.rings["reports.risk"].occupancy() == n + filled)
        rig.strategy_reports(), rig.risk_reports()

    try:
        if with_event_ring:
            rig.start_writer()
        first = rig.start_oms(with_event_ring=with_event_ring)
        assert rig.run_until(lambda: not first.recovering)
        trade(first, 1, 10, 4)
        names = first.COUNTER_NAMES
        assert first.ctx.counters[names.index("orders_created")] == 10
        rig.workers.remove(first)  # SIGKILLed: no drain, no close
        if not with_event_ring:
            first.on_close()  # its in-process writer thread would otherwise outlive it here, holding the journal
        second = rig.start_oms(with_event_ring=with_event_ring)
        assert second.ctx.counters is first.ctx.counters, "the rig keeps the status row, as the supervisor does"
        assert rig.run_until(lambda: not second.recovering, 30)
        trade(second, 11, 3, 1)
        counters = second.ctx.counters
        assert counters[names.index("orders_created")] == 13
        assert counters[names.index("fills")] == 5
        assert counters[names.index("orders_in")] == 13
        assert counters[names.index("open_orders_gauge")] == 8, "a gauge: the open orders now, not a sum"
    finally:
        rig.close()


def test_a_restarted_writer_counts_on_from_its_predecessors_counters(tmp_path):
    url, schema = new_database("sqlite", tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=256)
    try:
        first = rig.start_writer()
        oms = rig.start_oms()
        assert rig.run_until(lambda: not oms.recovering)
        written = first.COUNTER_NAMES.index("events_written")
        rig.send_orders(new_orders(*({"client_order_id": i} for i in range(1, 11))))
        assert rig.run_until(lambda: first.ctx.counters[written] == 10), "one CREATED event per order"
        rig.workers.remove(first)
        first.on_close()
        second = rig.start_writer()
        rig.send_orders(new_orders(*({"client_order_id": i} for i in range(11, 14))))
        assert rig.run_until(lambda: second.writer.events_written == 3, 10)
        rig.step()
        assert second.ctx.counters[written] == 13, "the run's total, not the new writer's 3"
        assert second.ctx.counters[first.COUNTER_NAMES.index("events_in")] == 13
    finally:
        rig.close()


def test_the_counters_hold_a_published_batch_before_its_input_is_released(tmp_path):
    """Killed between publishing a batch and releasing its input, the OMS leaves counters that
    count the batch: the restart counts on from them and refuses the redelivered input as duplicates."""
    url, schema = new_database("sqlite", tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=256)

    class Killed(BaseException):
        pass

    def die(_n):
        raise Killed

    try:
        oms = rig.start_oms(with_event_ring=False)  # the Python path (the numba cycle is one call)
        assert rig.run_until(lambda: not oms.recovering)
        rig.send_orders(new_orders(*({"client_order_id": i} for i in range(1, 6))))
        oms.orders_in.release = die
        with pytest.raises(Killed):
            oms.do_work()
        rig.workers.remove(oms)
        oms.on_close()
        assert rig.rings["exchange.orders"].occupancy() == 5, "the batch was published"
        assert oms.ctx.counters[oms.COUNTER_NAMES.index("orders_created")] == 5
    finally:
        rig.close()
