"""The risk worker over real shared-memory rings: routing, kill-switch cancels, backpressure."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hftshm.codes import Action, ControlKind, Reason, ReportEvent, Side, TradingState
from hftshm.metrics.histogram_nb import COUNT, SLOTS
from hftshm.risk.control import ControlBlock
from hftshm.risk.emit_nb import ORDER_FLAG_KILL_SWITCH
from hftshm.risk.testing import BTC, intents, reports, snapshots
from hftshm.risk.worker import RiskWorker
from hftshm.runtime.worker import WorkerContext
from hftshm.transport.ring import Ring
from hftshm.transport.testing import unique_name


@pytest.fixture
def rig(tmp_path):
    made = []

    def ring(layout, capacity=64):
        r = Ring.create(unique_name("risk"), layout, capacity)
        made.append(r)
        return r

    rings = {
        "book.risk": ring("book_snapshot"), "oms.reports.risk": ring("execution_report"),
        "intents": ring("order_intent"), "control.risk": ring("control_message"),
        "orders": ring("order", capacity=8), "risk.rejects": ring("execution_report"),
    }
    control = ControlBlock.create(unique_name("ctl"))
    ctx = WorkerContext(
        name="risk", params={"risk": {"max_order_size": 1.0, "max_position_per_symbol": 100.0}},
        inputs={k: rings[k] for k in ("book.risk", "oms.reports.risk", "intents", "control.risk")},
        outputs={k: rings[k] for k in ("orders", "risk.rejects")},
        config=None, counters=np.zeros(32, dtype=np.int64), histograms={"hop": np.zeros(SLOTS, dtype=np.int64)},
        run_dir=tmp_path, log=logging.getLogger("test.risk"), control=control)
    worker = RiskWorker(batch=64)
    worker.on_start(ctx)
    yield worker, rings, control, ctx
    worker.on_close()
    for r in made:
        r.unlink()
        r.close()
    control.close()
    control.unlink()


def put(ring, records):
    view = ring.claim(len(records))
    assert len(view) == len(records)
    view[:] = records
    ring.commit(len(records))


def take(ring):
    parts = []
    while True:  # poll stops at the ring's wrap point: keep going until empty
        view = ring.poll(1024)
        if not len(view):
            return np.concatenate(parts) if parts else view.copy()
        parts.append(view.copy())
        ring.release(len(view))


def test_orders_to_the_oms_rejects_to_the_strategies(rig):
    worker, rings, control, ctx = rig
    put(rings["book.risk"], snapshots((BTC, 61_000.0)))
    put(rings["intents"], intents({"client_order_id": 1}, {"client_order_id": 2, "qty": 5.0},
                                  {"client_order_id": 3, "side": Side.SELL}))
    assert worker.do_work() == 4
    orders = take(rings["orders"])
    rejects = take(rings["risk.rejects"])
    assert orders["client_order_id"].tolist() == [1, 3] and orders["seq"].tolist() == [0, 1]
    assert rejects["reason"].tolist() == [Reason.MAX_ORDER_SIZE] and rejects["event"].tolist() == [ReportEvent.REJECT]
    assert control.snapshot()["reject_counts"] == {"max_order_size": 1}
    assert ctx.histograms["hop"][COUNT] == 3
    worker._housekeeping(0)
    assert ctx.counters[RiskWorker._C["reject_max_order_size"]] == 1
    assert ctx.counters[RiskWorker._C["approved"]] == 2


def test_fills_from_the_oms_move_the_position(rig):
    worker, rings, control, _ = rig
    put(rings["book.risk"], snapshots((BTC, 61_000.0)))
    put(rings["intents"], intents({"client_order_id": 1, "qty": 1.0}))
    worker.do_work()
    take(rings["orders"])
    put(rings["oms.reports.risk"], reports({"client_order_id": 1, "event": ReportEvent.ACK, "order_id": 9,
                                            "leaves_qty": 1.0},
                                           {"client_order_id": 1, "event": ReportEvent.FILL, "order_id": 9, "qty": 1.0,
                                            "price": 60_990.0, "fee": 1.5}))
    worker.do_work()
    assert worker.state.position("BTCUSDT") == 1.0
    worker._housekeeping(0)
    snap = control.snapshot()
    assert snap["open_orders"] == 0
    assert snap["daily_pnl"] == pytest.approx(10.0 - 1.5)


def test_kill_switch_cancels_open_orders_through_the_oms_ring(rig):
    worker, rings, control, _ = rig
    put(rings["book.risk"], snapshots((BTC, 61_000.0)))
    put(rings["intents"], intents(*[{"client_order_id": i} for i in range(1, 6)]))
    worker.do_work()
    assert len(take(rings["orders"])) == 5
    put(rings["oms.reports.risk"], reports({"client_order_id": 2, "event": ReportEvent.ACK, "order_id": 22,
                                            "leaves_qty": 0.1}))
    control.set_kill_switch(True)  # as the CLI does, from outside
    put(rings["intents"], intents({"client_order_id": 6}))
    worker.do_work()
    cancels = take(rings["orders"])
    assert sorted(cancels["target_client_order_id"].tolist()) == [1, 2, 3, 4, 5]
    assert (cancels["action"] == Action.CANCEL).all() and (cancels["flags"] == ORDER_FLAG_KILL_SWITCH).all()
    assert cancels[cancels["target_client_order_id"] == 2]["target_order_id"].tolist() == [22]
    assert take(rings["risk.rejects"])["reason"].tolist() == [Reason.KILL_SWITCH]
    worker.do_work()
    assert len(take(rings["orders"])) == 0  # once per order
    assert control.snapshot()["kill_cancels"] == 5


def test_kill_cancels_wait_for_room_in_a_full_oms_ring(rig):
    worker, rings, control, _ = rig
    put(rings["book.risk"], snapshots((BTC, 61_000.0)))
    for batch in range(3):  # 12 open orders; the OMS ring holds 8
        put(rings["intents"], intents(*[{"client_order_id": 10 * batch + i} for i in range(1, 5)]))
        worker.do_work()
        take(rings["orders"])
    control.set_kill_switch(True)
    worker.do_work()
    first = take(rings["orders"])
    worker.do_work()
    second = take(rings["orders"])
    assert len(first) == 8 and len(second) == 4
    assert len(set(first["target_client_order_id"].tolist()) | set(second["target_client_order_id"].tolist())) == 12


def test_a_full_oms_ring_holds_intents_back_without_losing_them(rig):
    worker, rings, control, ctx = rig
    put(rings["book.risk"], snapshots((BTC, 61_000.0)))
    put(rings["intents"], intents(*[{"client_order_id": i} for i in range(1, 13)]))
    worker.do_work()  # the OMS ring holds 8: only 8 intents are checked
    assert control.snapshot()["checks"] == 8
    assert worker.do_work() == 0  # the OMS has not read any: nothing is checked, the cycle is counted
    assert ctx.counters[RiskWorker._C["backpressure_cycles"]] == 1
    assert len(take(rings["orders"])) == 8
    worker.do_work()
    assert take(rings["orders"])["client_order_id"].tolist() == [9, 10, 11, 12]
    assert control.snapshot()["checks"] == 12


def test_control_messages_set_the_block(rig):
    worker, rings, control, _ = rig
    messages = np.zeros(2, dtype=rings["control.risk"].dtype)
    messages[0]["kind"], messages[0]["value_i"] = ControlKind.TRADING_STATE, TradingState.REDUCING
    messages[1]["kind"], messages[1]["value_i"] = ControlKind.KILL_SWITCH, 1
    put(rings["control.risk"], messages)
    worker.do_work()
    assert control.trading_state == TradingState.REDUCING and control.kill_switch


def test_initial_state_from_config_applies_to_a_fresh_block_only(tmp_path):
    control = ControlBlock.create(unique_name("ctl"))
    orders = Ring.create(unique_name("o"), "order", 8)
    rejects = Ring.create(unique_name("r"), "execution_report", 8)
    try:
        def start():
            ctx = WorkerContext(name="risk", params={"risk": {"initial_state": "halted"}}, inputs={},
                                outputs={"orders": orders, "rejects": rejects}, config=None,
                                counters=np.zeros(32, dtype=np.int64), histograms={}, run_dir=tmp_path,
                                control=control)
            worker = RiskWorker()
            worker.on_start(ctx)
            worker.on_close()

        start()
        assert control.trading_state == TradingState.HALTED
        control.set_trading_state(TradingState.ACTIVE)  # the operator resumes; a restarted worker keeps it
        start()
        assert control.trading_state == TradingState.ACTIVE
    finally:
        for r in (orders, rejects):
            r.unlink()
            r.close()
        control.close()
        control.unlink()


def test_compiled_stage_checks_and_publishes_like_do_work(rig):
    """risk.stage_nb.step over the worker's bundle: the same orders and rejects as do_work's first test."""
    from hftshm.risk import stage_nb

    worker, rings, control, ctx = rig
    stage = worker.compiled_stage()
    assert stage is not None and stage.batch == 64
    put(rings["book.risk"], snapshots((BTC, 61_000.0)))
    put(rings["intents"], intents({"client_order_id": 1}, {"client_order_id": 2, "qty": 5.0},
                                  {"client_order_id": 3, "side": Side.SELL}))
    assert stage_nb.step(stage) == 4
    orders = take(rings["orders"])
    rejects = take(rings["risk.rejects"])
    assert orders["client_order_id"].tolist() == [1, 3] and orders["seq"].tolist() == [0, 1]
    assert rejects["reason"].tolist() == [Reason.MAX_ORDER_SIZE] and rejects["event"].tolist() == [ReportEvent.REJECT]
    assert stage_nb.step(stage) == 0  # idle: nothing consumed, nothing published
    control.set_kill_switch(True)
    assert worker.compiled_stage() is None  # the kill switch's cancels run on the Python path


def test_compiled_stage_counts_backpressure_when_the_oms_ring_is_full(rig):
    from hftshm.risk import stage_nb

    worker, rings, control, ctx = rig
    stage = worker.compiled_stage()
    put(rings["book.risk"], snapshots((BTC, 61_000.0)))
    put(rings["intents"], intents(*({"client_order_id": k} for k in range(1, 13))))  # the OMS ring holds 8
    stage_nb.step(stage)
    assert rings["orders"].occupancy() == 8 and rings["intents"].occupancy() == 4
    assert stage_nb.step(stage) == 0  # full: intents wait in their ring, counted
    assert ctx.counters[RiskWorker.COUNTER_NAMES.index("backpressure_cycles")] == 1


def test_a_restarted_worker_counts_reports_and_marks_on_from_its_predecessors(rig):
    """The account row's counts restart with the process; the status row holds the run's totals."""
    worker, rings, control, ctx = rig
    put(rings["book.risk"], snapshots((BTC, 61_000.0)))
    put(rings["oms.reports.risk"], reports({"client_order_id": 1, "event": ReportEvent.ACK, "order_id": 9,
                                            "leaves_qty": 1.0}))
    worker.do_work()
    worker._housekeeping(0)
    assert ctx.counters[RiskWorker._C["marks"]] == 1 and ctx.counters[RiskWorker._C["reports"]] == 1
    worker.on_close()
    restarted = RiskWorker(batch=64)
    restarted.on_start(ctx)  # the same status row, as the supervisor's restart finds it
    put(rings["book.risk"], snapshots((BTC, 61_010.0)))
    restarted.do_work()
    restarted._housekeeping(0)
    assert ctx.counters[RiskWorker._C["marks"]] == 2
    assert ctx.counters[RiskWorker._C["reports"]] == 1
    restarted.on_close()


def test_a_restart_counts_the_reports_its_predecessor_took_since_its_last_housekeeping(rig):
    """The counters are published every HOUSEKEEPING_NS; killed in between, the predecessor's last
    reports were never published. The successor counts reports from the released cursor."""
    worker, rings, control, ctx = rig
    put(rings["oms.reports.risk"], reports({"client_order_id": 1, "event": ReportEvent.ACK, "order_id": 9,
                                            "leaves_qty": 1.0}))
    worker._next_housekeeping_ns = 2**62  # the next housekeeping is not due
    worker.do_work()
    assert ctx.counters[RiskWorker._C["reports"]] == 0, "taken, not yet published: the kill comes now"
    restarted = RiskWorker(batch=64)
    restarted.on_start(ctx)
    restarted._housekeeping(0)
    assert ctx.counters[RiskWorker._C["reports"]] == 1 == rings["oms.reports.risk"].consumer_position
    restarted.on_close()
