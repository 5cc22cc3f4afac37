"""A compiled strategies step for the built-in market maker alone, for the compiled trading cycle.

The trading cycle (``trading_cycle_nb.run_slice``) takes its strategies stage as a parameter: any
njit function ``strategies_step(bundle) -> work done`` with its own NamedTuple bundle. This is the
one used when the strategies worker hosts exactly one strategy, the built-in market maker, running:
it does what ``StrategyWorker.do_work`` + ``StrategyHost`` do for it, with no Python per record:

* reports (risk's rejects, the OMS's acks/fills/cancels) -> ``portfolio_nb.apply_report``, then the
  maker requotes (``market_maker_nb.on_book`` at the last top of book, origin 0: a reply to a
  report was caused by no feed tick);
* market events -> the strategy's market time (and origin stamp) follow the last event of its symbol;
* book snapshots -> the newest of its symbol per batch: top of book, mid, mark, ``on_book``;
* the intents of each callback go straight into the intent ring (``seq`` = ring sequence,
  ``ts_ns`` = publish time), before the next input record is looked at.

Back-pressure: a record is taken only while the intent ring has room for what one callback can
send (``INTENT_ROOM``); otherwise the step stops there (the record stays in its ring) and counts a
back-pressure cycle, as the Python worker holds market data while risk is behind.

Python keeps what is not per-record: control messages, the status table, errors (the kernel never
raises). ``hftshm.runtime.trading_cycle`` switches back to the Python worker whenever those need
it and copies the clock and view (``MmClock``, ``MmView``) back into the strategy object.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.codes import Action
from hftshm.metrics.histogram_nb import record as record_latency
from hftshm.strategies.builtin.market_maker_nb import on_book
from hftshm.strategies.portfolio_nb import PF_MID, apply_report
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.ring_nb import capacity, claimable, commit, consumer_position, release, try_claim, try_poll

REPORT_BATCH = 1024
EVENT_BATCH = 4096
BOOK_BATCH = 1024
INTENT_ROOM = 16  # intent slots one callback may need (the maker sends at most two cancels and two news)


class MmClock(IntEnum):
    """Slots of the strategy's clock (``clock``, int64): what ``Strategy`` keeps as attributes."""

    NOW_NS = 0  # market time the strategy is at
    ORIGIN_TS_NS = 1  # feed publish stamp of the tick behind the current callback (0: none)
    SIZE = 2


class MmView(IntEnum):
    """Slots of the strategy's view of the book (``book_top``, float64)."""

    BEST_BID = 0
    BEST_ASK = 1
    MID = 2
    SIZE = 3


class MmCounters(NamedTuple):
    """Indexes of the strategies worker's status-row counters this step moves."""

    events: int
    books: int
    reports: int
    intents: int
    backpressure_cycles: int
    orphan_reports: int


class MmStage(NamedTuple):
    book_ctrl: np.ndarray
    book_records: np.ndarray
    event_ctrl: np.ndarray
    event_records: np.ndarray
    report_ctrls: tuple  # execution_report inputs: risk's rejects, the OMS's reports
    report_records: tuple
    intent_ctrl: np.ndarray
    intent_records: np.ndarray
    params: np.ndarray  # market_maker_nb params and state
    state: np.ndarray
    pf: np.ndarray  # the strategy's portfolio (Portfolio.pf, Portfolio.orders)
    orders: np.ndarray
    intents: np.ndarray  # the strategy's intent buffer and its count
    intent_count: np.ndarray
    clock: np.ndarray  # MmClock
    book_top: np.ndarray  # MmView
    strategy_id: int
    symbol_id: int
    tick: float
    lot: float
    book_age: np.ndarray  # histograms (len 0: off)
    tick_to_intent: np.ndarray
    counters: np.ndarray
    counter_slots: MmCounters


@njit(cache=True, nogil=True, _nrt=False)
def _flush_intents(s):
    """The callback's intents into the intent ring (room was checked before the callback)."""
    n = s.intent_count[0]
    if n == 0:
        return
    seq = try_claim(s.intent_ctrl, n)
    mask = s.intent_records.shape[0] - 1
    now = monotonic_ns()
    for i in range(n):
        slot = (seq + i) & mask
        s.intent_records[slot] = s.intents[i]
        s.intent_records[slot].seq = seq + i
        s.intent_records[slot].ts_ns = now
        if s.tick_to_intent.shape[0] > 0 and s.intents[i].action == Action.NEW and s.intents[i].origin_ts_ns > 0:
            record_latency(s.tick_to_intent, now - s.intents[i].origin_ts_ns)
    commit(s.intent_ctrl, seq, n)
    s.intent_count[0] = 0
    s.counters[s.counter_slots.intents] += n


@njit(cache=True, nogil=True, _nrt=False)
def _quote(s, origin_ts_ns):
    v = s.book_top
    on_book(s.params, s.state, s.pf, s.orders, s.intents, s.intent_count, s.strategy_id, s.symbol_id, s.tick,
            s.lot, s.clock[MmClock.NOW_NS], origin_ts_ns, v[MmView.BEST_BID], v[MmView.BEST_ASK])
    _flush_intents(s)


@njit(cache=True, nogil=True, _nrt=False)
def _room(s):
    return claimable(s.intent_ctrl, INTENT_ROOM) >= INTENT_ROOM


@njit(cache=True, nogil=True, _nrt=False)
def take_reports(s, k):
    ctrl = s.report_ctrls[k]
    records = s.report_records[k]
    n = try_poll(ctrl, REPORT_BATCH)
    if n == 0:
        return 0
    start = consumer_position(ctrl)
    mask = capacity(ctrl) - 1
    done = 0
    while done < n:
        if not _room(s):
            s.counters[s.counter_slots.backpressure_cycles] += 1
            break
        r = records[(start + done) & mask]
        done += 1
        if r.strategy_id != s.strategy_id:
            s.counters[s.counter_slots.orphan_reports] += 1
            continue
        apply_report(s.pf, s.orders, r.event, r.client_order_id, r.side, r.price, r.qty, r.leaves_qty, r.fee,
                     r.exch_ts_ns, False)
        # a fill changes inventory, hence the skew and the headroom: requote without waiting for the book
        if s.book_top[MmView.BEST_BID] == s.book_top[MmView.BEST_BID]:
            _quote(s, np.int64(0))
    if done:
        release(ctrl, done)
        s.counters[s.counter_slots.reports] += done
    return done


@njit(cache=True, nogil=True, _nrt=False)
def take_events(s):
    """The maker ignores ticks; they move its market time (and origin stamp) only."""
    n = try_poll(s.event_ctrl, EVENT_BATCH)
    if n == 0:
        return 0
    start = consumer_position(s.event_ctrl)
    mask = capacity(s.event_ctrl) - 1
    for i in range(n - 1, -1, -1):
        e = s.event_records[(start + i) & mask]
        if e.symbol_id == s.symbol_id:
            s.clock[MmClock.NOW_NS] = e.exch_ts_ns
            s.clock[MmClock.ORIGIN_TS_NS] = e.publish_ts_ns
            break
    release(s.event_ctrl, n)
    s.counters[s.counter_slots.events] += n
    return n


@njit(cache=True, nogil=True, _nrt=False)
def take_books(s):
    """The newest snapshot of the strategy's symbol in the batch goes to the maker."""
    if not _room(s):
        s.counters[s.counter_slots.backpressure_cycles] += 1
        return 0
    n = try_poll(s.book_ctrl, BOOK_BATCH)
    if n == 0:
        return 0
    start = consumer_position(s.book_ctrl)
    mask = capacity(s.book_ctrl) - 1
    first = s.book_records[start & mask]
    if s.book_age.shape[0] > 0 and first.publish_ts_ns > 0:
        record_latency(s.book_age, monotonic_ns() - first.publish_ts_ns)
    for i in range(n - 1, -1, -1):
        b = s.book_records[(start + i) & mask]
        if b.symbol_id != s.symbol_id:
            continue
        v = s.book_top
        v[MmView.BEST_BID] = b.bid_px[0]
        v[MmView.BEST_ASK] = b.ask_px[0]
        v[MmView.MID] = b.mid
        if b.mid == b.mid:
            s.pf[PF_MID] = b.mid
        if b.exch_ts_ns > s.clock[MmClock.NOW_NS]:
            s.clock[MmClock.NOW_NS] = b.exch_ts_ns
        s.clock[MmClock.ORIGIN_TS_NS] = b.publish_ts_ns
        _quote(s, b.publish_ts_ns)
        break
    release(s.book_ctrl, n)
    s.counters[s.counter_slots.books] += n
    return n


@njit(cache=True, nogil=True, _nrt=False)
def step(s):
    """One strategies duty cycle for the market maker; returns records taken."""
    work = 0
    for k in range(len(s.report_ctrls)):
        work += take_reports(s, k)
    work += take_events(s)
    work += take_books(s)
    return work
