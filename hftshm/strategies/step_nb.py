"""The strategies' per-batch step for the platform, as one compiled call: ``step``.

For a fused compiled trading cycle (risk + OMS + exchange in one compiled loop) to run compiled
strategies without returning to Python, this kernel takes one batch of each of the strategy
worker's inputs and runs the compiled strategies over them in the worker's order::

    work = step(bundle, reports, n_reports, events, n_events, books, n_books)

* ``bundle``: a ``StrategiesStep`` NamedTuple: ``slots`` (a tuple of ``slots_nb.StrategySlot``, one
  per compiled strategy, built by ``slots.slot_of``), ``intents``/``icount`` (the outbox: intents
  queued this step are ``intents[:icount[0]]``; the caller publishes them and resets ``icount``),
  ``clock`` (int64[2]: market time seen so far, work counter);
* ``reports[:n_reports]``: ``execution_report`` records: the owner's portfolio takes each, then its
  ``on_report`` (reports for strategy ids not in ``slots`` are left alone: a Python strategy's);
* ``events[:n_events]``: ``market_event`` records: per strategy of that symbol, ``on_trade`` per
  trade and ``on_events`` per run of consecutive events of its symbol, then timers due;
* ``books[:n_books]``: ``book_snapshot`` records: each strategy's newest snapshot of its symbol sets
  its book top and portfolio mark, then ``on_book``.

Returns the records handed over (reports + events + books). A strategy whose callback left an error
is paused in its slot (``ids[ID_RUNNING] = 0``, ``ids[ID_FAULT]`` = the code) with its open orders
being cancelled; the caller names it (``compiled.fault_text``). ``ids[ID_RUNNING]`` is also how the
caller pauses and resumes a strategy. The sequence is ``StrategyHost``'s (runtime.py), so a
strategy stepped here and one driven by the host from the same inputs queue the same intents
(tests/unit/test_strategy_step.py). The strategy worker itself still drives compiled strategies
through ``StrategyHost`` (one compiled call per callback); this kernel is the entry point for a
fused cycle.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import literal_unroll, njit

from hftshm.strategies import context_nb as cx
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.slots_nb import (deliver_events, HAS_BOOK, HAS_REPORT, ID_NEXT_TIMER, ID_RUNNING,
                                        ID_HAS, ID_STRATEGY, ID_SYMBOL, ID_TIMER_NS, M_ASK, M_BID, _ctx, _fault)

CLOCK_NOW, CLOCK_WORK = 0, 1


class StrategiesStep(NamedTuple):
    slots: object
    intents: object
    icount: object
    clock: object


@njit(cache=True)
def _reports(bundle, reports, n):
    intents, icount, now = bundle.intents, bundle.icount, bundle.clock[CLOCK_NOW]
    for k in range(n):
        r = reports[k]
        for s in literal_unroll(bundle.slots):
            if s.ids[ID_STRATEGY] == r.strategy_id:
                pnb.apply_report(s.pf, s.orders, r.event, r.client_order_id, r.side, r.price, r.qty, r.leaves_qty,
                                 r.fee, r.exch_ts_ns, False)
                if s.ids[ID_RUNNING] != 0 and s.ids[ID_HAS] & HAS_REPORT:
                    before = icount[0]
                    s.on_report(_ctx(s, intents, icount, now, 0), r)
                    if s.pf[pnb.PF_FAULT] != 0.0:
                        _fault(s, intents, icount, before, now)


@njit(cache=True)
def _events(bundle, events, n):
    intents, icount = bundle.intents, bundle.icount
    now = max(bundle.clock[CLOCK_NOW], events[n - 1].exch_ts_ns)
    bundle.clock[CLOCK_NOW] = now
    for s in literal_unroll(bundle.slots):
        symbol = s.ids[ID_SYMBOL]
        i = 0
        while i < n and s.ids[ID_RUNNING] != 0:
            if events[i].symbol_id != symbol:
                i += 1
                continue
            end = i
            while end < n and events[end].symbol_id == symbol:
                end += 1
            origin = events[end - 1].publish_ts_ns
            at = events[end - 1].exch_ts_ns
            deliver_events(s, intents, icount, at, origin, events, i, end, True)
            i = end
    origin = events[n - 1].publish_ts_ns
    for s in literal_unroll(bundle.slots):
        interval = s.ids[ID_TIMER_NS]
        if interval > 0 and s.ids[ID_RUNNING] != 0 and now >= s.ids[ID_NEXT_TIMER]:
            s.ids[ID_NEXT_TIMER] = now - now % interval + interval
            before = icount[0]
            s.on_timer(_ctx(s, intents, icount, now, origin), now)
            if s.pf[pnb.PF_FAULT] != 0.0:
                _fault(s, intents, icount, before, now)


@njit(cache=True)
def _books(bundle, books, n):
    intents, icount = bundle.intents, bundle.icount
    for s in literal_unroll(bundle.slots):
        newest = -1
        for k in range(n - 1, -1, -1):
            if books[k].symbol_id == s.ids[ID_SYMBOL]:
                newest = k
                break
        if newest < 0:
            continue
        b = books[newest]
        bid, ask, mid = b.bid_px[0], b.ask_px[0], b.mid
        s.market[M_BID] = bid
        s.market[M_ASK] = ask
        if mid == mid:
            s.pf[pnb.PF_MID] = mid
        now = max(bundle.clock[CLOCK_NOW], b.exch_ts_ns)
        if s.ids[ID_RUNNING] != 0 and s.ids[ID_HAS] & HAS_BOOK:
            before = icount[0]
            s.on_book(_ctx(s, intents, icount, now, b.publish_ts_ns),
                      cx.BookTop(b.exch_ts_ns, bid, ask, b.bid_qty[0], b.ask_qty[0], mid, np.int64(b.valid)))
            if s.pf[pnb.PF_FAULT] != 0.0:
                _fault(s, intents, icount, before, now)


@njit(cache=True)
def step(bundle, reports, n_reports, events, n_events, books, n_books):
    """One batch of reports, market events and book snapshots through the compiled strategies; see
    the module docstring. Returns the records handed over."""
    if n_reports > 0:
        _reports(bundle, reports, n_reports)
    if n_events > 0:
        _events(bundle, events, n_events)
    if n_books > 0:
        _books(bundle, books, n_books)
    work = n_reports + n_events + n_books
    bundle.clock[CLOCK_WORK] += work
    return work
