"""The compiled trading cycle (``runtime/trading_cycle_nb.run_slice`` and its stages) against the
workers' Python duty cycles: the same market in, the same orders, fills, positions and OMS events out."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hftshm.codes import EventFlag, EventKind, Side
from hftshm.runtime.trading_cycle import RECHECK_NS, TradingCycle
from hftshm.runtime.trading_cycle_nb import SliceEnd
from hftshm.strategies.portfolio_nb import PF_FILLS, PF_POSITION
from hftshm.transport.layout import load
from hftshm.transport.wait import WaitStrategy
from tests.trading_cycle_rig import BTC, TradingRig

T0 = 1_722_000_000_000_000_000
MS = 1_000_000


def market(step: int) -> tuple[np.ndarray, float, float]:
    """Step ``step`` of a scripted market: the touch moves on a fixed pattern, and every third step a
    trade sweeps below the bid or above the ask (so resting quotes fill)."""
    mid = 61_000.0 + [0.0, 3.0, 7.0, 2.0, -4.0, -9.0, -3.0][step % 7]
    bid, ask = mid - 0.05, mid + 0.05
    rows = [(EventKind.DEPTH, Side.BUY, bid, 2.0), (EventKind.DEPTH, Side.SELL, ask, 2.0)]
    if step % 3 == 2:
        side = Side.SELL if step % 2 else Side.BUY  # aggressor
        rows.append((EventKind.TRADE, side, bid - 20.0 if side == Side.SELL else ask + 20.0, 5.0))
    events = load("market_event").zeros(len(rows))
    for i, (kind, side, price, qty) in enumerate(rows):
        e = events[i]
        e["exch_ts_ns"] = T0 + step * 50 * MS
        e["kind"], e["side"], e["price"], e["qty"] = kind, side, price, qty
        e["symbol_id"], e["update_id"] = BTC, step + 1
    events[-1]["flags"] = EventFlag.LAST_IN_MESSAGE
    return events, bid, ask


def python_rounds(rig: TradingRig) -> None:
    while sum(worker.do_work() for worker in rig.workers):
        pass


def compiled_rounds(cycle: TradingCycle) -> None:
    while True:
        result = cycle.run_slice()
        assert result is not None and result.end == SliceEnd.CADENCE
        if result.work == 0:
            return


def play(rig: TradingRig, steps: int, compiled: bool) -> dict:
    cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
    assert cycle is not None and cycle.warm()
    cycle.limits = cycle.limits._replace(slice_ns=0, max_slice_ns=0)  # one pass per slice
    events = []
    for step in range(steps):
        records, bid, ask = market(step)
        rig.events(records)
        rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)
        compiled_rounds(cycle) if compiled else python_rounds(rig)
        events.append(rig.drain_events())
    strategy = next(iter(rig.strategies.host.slots.values())).strategy
    account = rig.risk.state.account[0]
    oms_events = np.concatenate(events)
    return {
        "position": float(strategy.portfolio.pf[PF_POSITION]),
        "fills": int(strategy.portfolio.pf[PF_FILLS]),
        "risk_position": float(rig.risk.state.symbols[BTC]["position"]),
        "risk_reports": int(account["reports"]),
        "oms_events": [(int(e["order_id"]), int(e["kind"]), float(e["price"]), float(e["qty"])) for e in oms_events],
        "now_ns": strategy.now_ns,
        "slices": cycle.slices,
    }


@pytest.fixture
def rigs(tmp_path):
    made = []

    def make(name):
        (tmp_path / name).mkdir()
        rig = TradingRig(tmp_path / name)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def test_compiled_cycle_trades_exactly_as_the_python_duty_cycles(rigs):
    python = play(rigs("python"), 40, compiled=False)
    compiled = play(rigs("compiled"), 40, compiled=True)
    assert compiled["slices"] > 40
    assert python["fills"] > 0 and python["oms_events"], "the script must make the maker quote and fill"
    for key in ("position", "fills", "risk_position", "risk_reports", "oms_events", "now_ns"):
        assert compiled[key] == python[key], key


def test_a_book_becomes_orders_on_the_exchange_ring_within_one_pass(rigs):
    rig = rigs("one")
    cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
    assert cycle.warm()
    cycle.limits = cycle.limits._replace(slice_ns=0, max_slice_ns=0)
    records, bid, ask = market(0)
    rig.events(records)
    rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)
    result = cycle.run_slice()
    assert result.passes == 1
    assert rig.peek_exchange_orders() == 2  # a bid and an ask, through risk and the OMS
    from hftshm.metrics.histogram import summarize

    assert summarize(rig.oms._tick_to_order).count == 2  # tick-to-order recorded for both


def test_slice_ends_idle_after_its_spin_and_for_python_when_the_event_ring_is_full(rigs):
    rig = rigs("ends")
    cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("spin-park", spin_us=100))
    assert cycle.warm()
    cycle.limits = cycle.limits._replace(slice_ns=10 * 1_000_000_000, max_slice_ns=10 * 1_000_000_000)
    result = cycle.run_slice()
    assert result.end == SliceEnd.IDLE and result.work == 0  # spun 100 us with nothing to do
    events = rig.rings["oms.events"]
    filler = load("order_event").zeros(events.capacity)
    view = events.claim(len(filler))
    view[:] = filler
    events.commit(len(filler))
    records, bid, ask = market(0)
    rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)
    result = cycle.run_slice()
    assert result.end == SliceEnd.NEEDS_PYTHON  # the writer is behind: the OMS's spill path runs in Python
    assert rig.peek_exchange_orders() == 0


def test_an_event_ring_the_writer_has_emptied_takes_the_orders_whatever_the_cached_cursor_says(rigs):
    """The OMS's cached copy of the writer's cursor says 1 slot free (fewer than a new order's 2
    events) though the writer has read everything: the cycle looks again instead of handing the
    round to Python as if the writer were behind."""
    rig = rigs("stale")
    cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
    assert cycle.warm()
    cycle.limits = cycle.limits._replace(slice_ns=0, max_slice_ns=0)
    events = rig.rings["oms.events"]
    filler = load("order_event").zeros(events.capacity - 1)
    view = events.claim(len(filler))
    view[:] = filler
    events.commit(len(filler))  # the producer's cache: 1 free
    assert len(rig.drain_events()) == len(filler)  # the writer reads them all
    records, bid, ask = market(0)
    rig.events(records)
    rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)
    result = cycle.run_slice()
    assert result.end == SliceEnd.CADENCE
    assert rig.peek_exchange_orders() == 2


def parking_cycle(rig: TradingRig, extra_inputs=()) -> TradingCycle:
    """The composite's cycle with spin-park bound as the process binds it: every ring the four
    workers consume (``extra_inputs`` too)."""
    from tests.trading_cycle_rig import RINGS

    wait = WaitStrategy.from_config("spin-park", spin_us=100, park_timeout_ms=200)
    stages = {"strategies", "risk", "oms", "exchange"}
    wait.bind(inputs=[rig.rings[k] for k, (_l, _p, c) in RINGS.items() if c in stages] + list(extra_inputs))
    cycle = TradingCycle.for_workers(rig.workers, wait)
    assert cycle.warm() and cycle.parking.enabled
    return cycle


def test_an_idle_slice_parks_in_compiled_code_and_a_tick_becomes_orders_without_leaving_it(rigs):
    import threading

    from hftshm.transport import descriptor as d
    from hftshm.transport import park_nb

    rig = rigs("park")
    cycle = parking_cycle(rig)
    cycle.limits = cycle.limits._replace(slice_ns=600_000_000, max_slice_ns=600_000_000)
    results = []
    slicing = threading.Thread(target=lambda: results.append(cycle.run_slice()))  # run_slice drops the GIL
    slicing.start()
    md = rig.rings["md.strategies"].ctrl
    deadline = time.monotonic() + 5.0
    while md[d.CONSUMER_PARKED] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert md[d.CONSUMER_PARKED] == 1, "the idle slice must park on its input rings' doorbells"
    records, bid, ask = market(0)
    rig.events(records)
    rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)  # the commit rings the doorbell
    while rig.peek_exchange_orders() < 2 and time.monotonic() < deadline:
        time.sleep(0.0005)
    still_in_slice = slicing.is_alive() and not results
    slicing.join(10.0)
    assert rig.peek_exchange_orders() >= 2 and still_in_slice  # the quotes went out inside the slice
    assert results[0].end == SliceEnd.CADENCE and cycle.slices == 1
    assert cycle.parking.counts[park_nb.WAKEUPS] >= 1 and md[d.CONSUMER_PARKED] == 0


def test_a_park_that_finds_data_no_stage_takes_leaves_the_wait_to_python(rigs):
    """An input holding records the stages cannot act on (here a ring no stage reads; in a run, a
    full output) must not be slept on in compiled code: the slice returns IDLE and the Python
    parker, which also parks on full outputs, decides."""
    from hftshm.transport.ring import Ring

    rig = rigs("busy")
    extra = Ring.create(rig.prefix + "ring.extra", "order_intent", 64)
    try:
        view = extra.claim(1)
        view[:] = load("order_intent").zeros(1)
        extra.commit(1)
        cycle = parking_cycle(rig, [extra])
        cycle.limits = cycle.limits._replace(slice_ns=10 * 1_000_000_000, max_slice_ns=10 * 1_000_000_000)
        started = time.monotonic()
        result = cycle.run_slice()
        assert result.end == SliceEnd.IDLE and time.monotonic() - started < 0.15  # not the 200 ms park
    finally:
        extra.unlink()
        extra.close()


def test_a_stage_that_needs_python_keeps_the_whole_cycle_on_the_python_path(rigs):
    rig = rigs("fallback")
    cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
    assert cycle.warm()
    rig.control.set_kill_switch(True)
    assert rig.risk.compiled_stage() is None and cycle.run_slice() is None
    rig.control.set_kill_switch(False)
    rig.risk.do_work()  # the Python step notices the switch went off
    time.sleep(2 * RECHECK_NS / 1e9)  # after a refusal the stages are asked again only RECHECK_NS later
    assert cycle.run_slice() is not None
    rig.strategies.host.pause(next(iter(rig.strategies.host.slots)))
    assert cycle.run_slice() is None  # a paused strategy: the Python worker cancels and reports
    assert cycle.python_rounds == 2


def test_only_the_four_stage_workers_get_a_compiled_cycle(rigs, monkeypatch):
    rig = rigs("which")
    wait = WaitStrategy.from_config("busy-spin")
    assert TradingCycle.for_workers(rig.workers[:3], wait) is None
    monkeypatch.setenv("HFTSHM_COMPILED_CYCLE", "0")
    assert TradingCycle.for_workers(rig.workers, wait) is None


def test_process_per_worker_runs_one_stage_in_a_compiled_loop(rigs):
    """StageCycle: risk alone (process-per-worker placement) checks and forwards in run_stage."""
    from hftshm.runtime.trading_cycle import StageCycle

    rig = rigs("alone")
    cycle = TradingCycle.for_workers([rig.risk], WaitStrategy.from_config("busy-spin"))
    assert isinstance(cycle, StageCycle) and cycle.warm()
    cycle.limits = cycle.limits._replace(slice_ns=0, max_slice_ns=0)
    records, bid, ask = market(0)
    rig.events(records)
    rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)
    rig.strategies.do_work()  # the strategies (another process in that placement) quote: two intents
    result = cycle.run_slice()
    assert result.end == SliceEnd.CADENCE and result.work >= 3  # the book's mark and both intents
    assert rig.rings["orders"].occupancy() == 2
    oms = TradingCycle.for_workers([rig.oms], WaitStrategy.from_config("busy-spin"))
    assert oms.warm() and oms.run_slice().work == 2 and rig.peek_exchange_orders() == 2
    # idle, the one-stage loop keeps its own working set warm too
    oms.limits = oms.limits._replace(slice_ns=1_000_000, warm_ns=10_000)
    assert len(oms.warm_set.regions) > 0 and oms.run_slice().work == 0
    assert int(oms.warm_set.counts[0]) >= 10


def test_an_idle_slice_prefetches_its_working_set_and_a_zero_period_turns_it_off(rigs, monkeypatch):
    rig = rigs("warm")
    rig.rings["intents"].register_producer()  # as the trading process's attach does (the rig registers none)
    cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
    assert cycle.warm()
    assert len(cycle.warm_set.regions) > 0 and len(cycle.warm_set.rings) == 1  # state, code; the intent ring
    cycle.limits = cycle.limits._replace(slice_ns=2_000_000, warm_ns=10_000)
    result = cycle.run_slice()
    assert result.work == 0
    passes = int(cycle.warm_set.counts[0])
    assert 20 <= passes <= 200  # 2 ms idle, one prefetch per 10 us of it
    assert int(cycle.warm_set.counts[1]) >= passes * len(cycle.warm_set.regions)
    assert "idle prefetches of the working set" in cycle.summary()
    # ticks still become orders after the prefetches
    records, bid, ask = market(0)
    rig.events(records)
    rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)
    cycle.run_slice()
    assert rig.peek_exchange_orders() == 2

    monkeypatch.setenv("HFTSHM_KEEP_WARM_US", "0")
    off = TradingCycle.for_workers(rigs("cold").workers, WaitStrategy.from_config("busy-spin"))
    assert off.warm() and off.limits.warm_ns == 0
    off.run_slice()
    assert int(off.warm_set.counts[0]) == 0


def test_an_idle_slice_rehearses_the_oms_on_its_twin_and_never_touches_the_live_oms(rigs, monkeypatch):
    rig = rigs("rehearse")
    cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
    assert cycle.warm()
    twin = rig.oms._twin
    assert twin.matched  # typed as the live OMS: the rehearsal runs the live OMS's code
    engine = rig.oms.engine
    before = [a.copy() for a in (*engine.book, *engine.ctl[:3], rig.oms.counters)]
    cycle.limits = cycle.limits._replace(slice_ns=2_000_000, warm_ns=10_000)
    assert cycle.run_slice().work == 0
    assert 3 <= twin.rehearsals <= 40  # 2 ms idle: the first after 50 us, then every 50 us (fewer if descheduled)
    assert f"{rig.oms.rehearsals} OMS rehearsals" in cycle.summary()
    # the twin took its quote each time (reset before each: the same first order id every time)
    own = twin.rings[2]
    assert own.producer_position == 2
    assert list(own.records["side"][:2]) == [Side.BUY, Side.SELL]
    assert own.records["order_id"][0] == (1 << 40) | 1
    # the live OMS saw none of it: its table, words, statistics, counters and rings are as they were
    after = [*engine.book, *engine.ctl[:3], rig.oms.counters]
    for old, new in zip(before, after):
        assert old.tobytes() == new.tobytes()
    assert rig.peek_exchange_orders() == 0 and len(rig.drain_events()) == 0
    # and a tick after the rehearsals gets the live OMS's first order ids
    records, bid, ask = market(0)
    rig.events(records)
    rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)
    cycle.run_slice()
    sent = rig.rings["exchange.orders"].records[:2]
    assert sorted(int(i) & ((1 << 40) - 1) for i in sent["order_id"]) == [1, 2]

    monkeypatch.setenv("HFTSHM_REHEARSE_US", "0")
    off = rigs("no-rehearsal")
    cycle = TradingCycle.for_workers(off.workers, WaitStrategy.from_config("busy-spin"))
    assert cycle.warm()
    cycle.limits = cycle.limits._replace(slice_ns=1_000_000, warm_ns=10_000)
    cycle.run_slice()
    assert off.oms._twin.rehearsals == 0


def test_an_idle_slice_rehearses_risks_check_on_the_last_intents_without_touching_the_live_risk(rigs):
    rig = rigs("risk-rehearse")
    cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
    assert cycle.warm()
    records, bid, ask = market(0)
    rig.events(records)
    rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=1)
    cycle.run_slice()  # the tick's two intents approved, and everything after them settled
    assert rig.peek_exchange_orders() == 2
    twin = rig.risk._twin
    assert twin.matched
    s = rig.risk.state
    live = (s.symbols, s.strategies, s.account, s.table, rig.risk.control.words, rig.risk.ctx.counters)
    before = [a.copy() for a in live]
    orders_before = rig.rings["orders"].producer_position
    start = twin.rehearsals
    cycle.limits = cycle.limits._replace(slice_ns=2_000_000, warm_ns=10_000)
    assert cycle.run_slice().work == 0
    assert twin.rehearsals - start >= 3
    # the twin took the last mark and the two intents again and approved both (reset before each)
    assert twin.rings[2].producer_position == 2 and twin.rings[3].producer_position == 0
    assert list(twin.rings[2].records["side"][:2]) == [Side.BUY, Side.SELL]
    assert all(old.tobytes() == new.tobytes() for old, new in zip(before, live))  # NaN marks: bytes
    assert rig.rings["orders"].producer_position == orders_before
    assert f"{rig.risk.rehearsals} risk and" in cycle.summary()
