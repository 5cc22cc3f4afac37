"""Replay fill model: our orders against the recorded real market (kernels; ``simulator.py`` wraps them).

The market is not ours to change, so our orders never enter its book; they are judged against it:

- A marketable order (on arrival, or replaced to a crossing price) takes the visible opposite
  levels, best first, at their prices (taker). What it took is marked ``used`` on the level and is
  not there for our next order until the market's own update refreshes the level.
- A resting order gets a queue position: the visible quantity ahead at its price on arrival. Trades
  at its price advance it; once past it, the rest of the trade fills it. The model decides what
  cancels do: ``risk_averse`` only lets the queue shrink to the level's new size (a cancel is assumed
  behind us), ``probabilistic`` splits a decrease between front and back with probability
  f(back)/(f(front)+f(back)), f(x) = x**power (hftbacktest's power-prob queue model).
- A resting order also fills when the market trades through its price (a trade at a better price
  for the aggressor: it would have hit us first; fill up to the trade's size), or when the visible
  opposite book crosses its price (fill up to the crossing, unused visible quantity).
  These fills are at our price, as maker.

Time is the market's: ``clock`` is the running maximum of events' ``exch_ts_ns`` (the recording
interleaves streams whose exchange times are not monotonic). An order is applied just before the
first event at or after its arrival time, never at wall-clock time, so the same inputs in the same
order give the same fills whatever the batching. Report ``flags`` carry how a fill happened
(``LIQ_*`` in ``fill_table_nb``).

The model's parts: ``fill_table_nb`` (our order table, reports), ``queue_position_nb`` (where a
resting order stands), ``consumed_liquidity_nb`` (what our orders take from the visible levels);
this module has the orders' entry and the event pass over the market.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.book import l2_apply_nb
from hftshm.codes import Action, EventFlag, EventKind, OrderType, Reason, ReportEvent, TimeInForce
from hftshm.exchange.common_nb import (MAX_PRICE_TICKS, MAX_QTY_LOTS, SC_LOT, SC_LOT_INV, SC_TICK, SC_TICK_INV,
                                       check_codes, idmap_find, idmap_insert, to_float, to_units)
from hftshm.exchange.consumed_liquidity_nb import _available, _crossed, _crosses, _on_cross, _take  # noqa: F401
from hftshm.exchange.fill_table_nb import (  # noqa: F401 (re-exported: callers use fill_model_nb.SW_*, SO_*, LIQ_*)
    LIQ_BOOK_CROSS, LIQ_QUEUE, LIQ_TAKER, LIQ_TRADE_THROUGH, MODEL_PROBABILISTIC, MODEL_RISK_AVERSE, P_MAKER_BPS,
    P_QUEUE_POWER, P_TAKER_BPS, P_WORDS, SO_BOOK, SO_CLIENT_ID, SO_COLS, SO_CUM, SO_ID, SO_LEAVES, SO_ORIGIN_TS,
    SO_PRICE, SO_SIDE, SO_STRATEGY, SO_SYMBOL, SO_TIF, SQ_AHEAD, SQ_COLS, SQ_TRADED, STAT_WORDS, SW_CLOCK,
    SW_EVENTS, SW_FILL_MODEL, SW_FILLS, SW_FOREIGN_EVENTS, SW_FREE_TOP, SW_LAST_ARRIVAL, SW_LAST_LOCAL,
    SW_LATE_ORDERS, SW_N_ACTIVE, SW_ORDERS, SW_PEND_HEAD, SW_PEND_TAIL, SW_REJECTS, SW_SEQ, SW_WORDS, _emit,
    _passive_fill, _reject, _release, _stamp, _unlist,
)
from hftshm.exchange.latency_nb import draw
from hftshm.exchange.market_view_nb import (MV_LAST_UPDATE_ID, apply_bbo, best_loc, clear, event_units, loc_price,
                                            qty_at, set_level)
from hftshm.exchange.queue_position_nb import (_on_trade, _queue_on_depth, _rest, _resting_span,  # noqa: F401
                                               _rests_at)

_LAST_IN_MESSAGE = int(EventFlag.LAST_IN_MESSAGE)  # IntFlag members are not numba constants
_BOOK_INVALID = int(EventFlag.BOOK_INVALID)
_NEVER = np.iinfo(np.int64).max
_UNITS_MAX = MAX_QTY_LOTS * 1000  # common_nb.nearest_units' bound


@njit(cache=True, _nrt=False)
def _new(S, out, j, o, ts):
    scale, sym_to_book, mv_price, mv_i64, so, free, id_table, sw = S[0], S[1], S[2], S[5], S[6], S[9], S[10], S[11]
    b = sym_to_book[o.symbol_id]
    if b < 0:
        return _reject(S, out, j, o, ts, o.order_id, Reason.UNKNOWN_SYMBOL)
    reason = check_codes(o.action, o.side, o.order_type, o.tif)
    if reason != Reason.NONE:
        return _reject(S, out, j, o, ts, o.order_id, reason)
    side = np.int64(o.side) - 1
    is_market = o.order_type == OrderType.MARKET
    tif = TimeInForce.IOC if is_market else np.int64(o.tif)
    if is_market:
        limit_ticks = MAX_PRICE_TICKS * 4 if side == 0 else -MAX_PRICE_TICKS * 4
    else:
        limit_ticks = to_units(o.price, scale[b, SC_TICK], scale[b, SC_TICK_INV], MAX_PRICE_TICKS)
        if limit_ticks < 0:
            return _reject(S, out, j, o, ts, o.order_id, Reason.BAD_PRICE)
    lots = to_units(o.qty, scale[b, SC_LOT], scale[b, SC_LOT_INV], MAX_QTY_LOTS)
    if lots < 0:
        return _reject(S, out, j, o, ts, o.order_id, Reason.BAD_QTY)
    if o.order_id <= 0:
        return _reject(S, out, j, o, ts, o.order_id, Reason.UNKNOWN_ORDER)
    if idmap_find(id_table, o.order_id) >= 0:
        return _reject(S, out, j, o, ts, o.order_id, Reason.DUPLICATE_ORDER_ID)
    if sw[SW_FREE_TOP] == 0:
        return _reject(S, out, j, o, ts, o.order_id, Reason.BOOK_FULL)
    k = best_loc(mv_price, mv_i64, b, 1 - side)
    crosses = k >= 0 and _crosses(side, limit_ticks, loc_price(mv_price, mv_i64, b, 1 - side, k))
    if tif == TimeInForce.POST_ONLY and crosses:
        return _reject(S, out, j, o, ts, o.order_id, Reason.POST_ONLY_WOULD_CROSS)
    if tif == TimeInForce.FOK and _available(S, b, side, limit_ticks) < lots:
        return _reject(S, out, j, o, ts, o.order_id, Reason.FOK_CANNOT_FILL)
    sw[SW_FREE_TOP] -= 1
    slot = free[sw[SW_FREE_TOP]]
    so[slot, SO_ID] = o.order_id
    so[slot, SO_CLIENT_ID] = o.client_order_id
    so[slot, SO_ORIGIN_TS] = o.origin_ts_ns
    so[slot, SO_PRICE] = limit_ticks
    so[slot, SO_LEAVES] = lots
    so[slot, SO_CUM] = 0
    so[slot, SO_BOOK] = b
    so[slot, SO_SIDE] = side
    so[slot, SO_TIF] = tif
    so[slot, SO_STRATEGY] = o.strategy_id
    so[slot, SO_SYMBOL] = o.symbol_id
    idmap_insert(id_table, o.order_id, slot)
    shown = np.nan if is_market else to_float(limit_ticks, scale[b, SC_TICK], scale[b, SC_TICK_INV])
    j = _emit(S, out, j, slot, ts, ReportEvent.ACK, shown, lots, Reason.NONE, 0.0, 0)
    if crosses:
        j = _take(S, out, j, slot, ts, limit_ticks)
    if so[slot, SO_LEAVES] == 0:
        _release(S, slot)
    elif tif == TimeInForce.IOC or tif == TimeInForce.FOK:
        left = so[slot, SO_LEAVES]
        so[slot, SO_LEAVES] = 0
        j = _emit(S, out, j, slot, ts, ReportEvent.CANCEL, shown, left, Reason.IOC_REMAINDER, 0.0, 0)
        _release(S, slot)
    else:
        _rest(S, slot)
    return j


@njit(cache=True, _nrt=False)
def _cancel(S, out, j, o, ts, target):
    scale, so, id_table = S[0], S[6], S[10]
    slot = idmap_find(id_table, target) if target > 0 else -1
    if slot < 0:
        return _reject(S, out, j, o, ts, target, Reason.UNKNOWN_ORDER)
    b = so[slot, SO_BOOK]
    left = so[slot, SO_LEAVES]
    so[slot, SO_LEAVES] = 0
    price = to_float(so[slot, SO_PRICE], scale[b, SC_TICK], scale[b, SC_TICK_INV])
    j = _emit(S, out, j, slot, ts, ReportEvent.CANCEL, price, left, Reason.USER_CANCEL, 0.0, 0)
    _unlist(S, slot)
    _release(S, slot)
    return j


@njit(cache=True, _nrt=False)
def _replace(S, out, j, o, ts, target):
    scale, mv_price, mv_i64, so, sq, id_table = S[0], S[2], S[5], S[6], S[7], S[10]
    slot = idmap_find(id_table, target) if target > 0 else -1
    if slot < 0:
        return _reject(S, out, j, o, ts, target, Reason.UNKNOWN_ORDER)
    b = so[slot, SO_BOOK]
    side = so[slot, SO_SIDE]
    ticks = to_units(o.price, scale[b, SC_TICK], scale[b, SC_TICK_INV], MAX_PRICE_TICKS)
    if ticks < 0:
        return _reject(S, out, j, o, ts, target, Reason.BAD_PRICE)
    lots = to_units(o.qty, scale[b, SC_LOT], scale[b, SC_LOT_INV], MAX_QTY_LOTS)
    if lots < 0:
        return _reject(S, out, j, o, ts, target, Reason.BAD_QTY)
    k = best_loc(mv_price, mv_i64, b, 1 - side)
    crosses = k >= 0 and _crosses(side, ticks, loc_price(mv_price, mv_i64, b, 1 - side, k))
    if crosses and so[slot, SO_TIF] == TimeInForce.POST_ONLY:
        return _reject(S, out, j, o, ts, target, Reason.POST_ONLY_WOULD_CROSS)
    keeps_priority = ticks == so[slot, SO_PRICE] and lots <= so[slot, SO_LEAVES]
    so[slot, SO_PRICE] = ticks
    so[slot, SO_LEAVES] = lots
    price = to_float(ticks, scale[b, SC_TICK], scale[b, SC_TICK_INV])
    j = _emit(S, out, j, slot, ts, ReportEvent.REPLACE, price, lots, Reason.NONE, 0.0, 0)
    if keeps_priority:
        sq[slot, SQ_AHEAD] = min(sq[slot, SQ_AHEAD], qty_at(mv_price, S[3], mv_i64, b, side, ticks))
        return j
    _unlist(S, slot)
    if crosses:
        j = _take(S, out, j, slot, ts, ticks)
    if so[slot, SO_LEAVES] == 0:
        _release(S, slot)
    else:
        _rest(S, slot)
    return j


@njit(cache=True, _nrt=False)
def apply_order(S, out, j, o, ts):
    """One of our orders reaching the exchange at simulated time ``ts``."""
    S[11][SW_ORDERS] += 1
    target = o.target_order_id if o.target_order_id != 0 else o.order_id
    if o.action == Action.NEW:
        return _new(S, out, j, o, ts)
    if o.action == Action.CANCEL:
        return _cancel(S, out, j, o, ts, target)
    if o.action == Action.REPLACE:
        return _replace(S, out, j, o, ts, target)
    return _reject(S, out, j, o, ts, o.order_id, Reason.MALFORMED_ORDER)


# what a market event asks of our resting orders once the view has taken it (_view_event)
FOLLOW_NONE = 0
FOLLOW_TRADE = 1  # a print: queues at its price advance, orders it reached or went through fill
FOLLOW_DEPTH = 2  # a level changed size: queues at its price move; at a message's end, crosses fill


@njit(cache=True, _nrt=False, forceinline=True)
def _view_event(scale, sym_to_book, mv_price, mv_qty, mv_used, mv_i64, sw, ev, units_given, given_ticks, given_lots):
    """The market view takes one event. Returns (FOLLOW_*, book, side, price ticks, lots, level's lots
    before, settled). Takes only the arrays it needs: the per-event path never passes the whole state
    tuple (a call taking it moves ~150 words of array descriptors). ``units_given``: the event's units
    are ``given_ticks``/``given_lots`` (the L2 book converted it in the same pass and found it on the
    grid, where its rounding and ``event_units``' agree)."""
    sw[SW_EVENTS] += 1
    b = sym_to_book[ev.symbol_id]
    if b < 0:
        sw[SW_FOREIGN_EVENTS] += 1
        return FOLLOW_NONE, b, 0, 0, 0, 0, False
    kind = ev.kind
    if kind == EventKind.CLEAR:
        clear(mv_price, mv_qty, mv_used, mv_i64, b)
        return FOLLOW_NONE, b, 0, 0, 0, 0, False
    side = np.int64(ev.side) - 1
    if side != 0 and side != 1:
        return FOLLOW_NONE, b, 0, 0, 0, 0, False
    if units_given:
        price_ticks, lots = given_ticks, given_lots
    else:
        price_ticks, lots = event_units(scale, b, ev.price, ev.qty)
    if kind == EventKind.TRADE:
        if price_ticks > 0 and lots > 0:
            return FOLLOW_TRADE, b, side, price_ticks, lots, 0, False
        return FOLLOW_NONE, b, 0, 0, 0, 0, False
    if price_ticks <= 0:
        return FOLLOW_NONE, b, 0, 0, 0, 0, False
    if kind == EventKind.BBO:
        # the level's lots before matter only to a queue of ours (``_follow``, which needs an order of ours)
        before = qty_at(mv_price, mv_qty, mv_i64, b, side, price_ticks) if sw[SW_N_ACTIVE] > 0 else 0
        apply_bbo(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks, lots, ev.update_id)
        settled = (ev.flags & _BOOK_INVALID) == 0
    elif kind == EventKind.DEPTH or kind == EventKind.SNAPSHOT:
        before = set_level(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks, lots)
        if ev.update_id > mv_i64[b, MV_LAST_UPDATE_ID]:
            mv_i64[b, MV_LAST_UPDATE_ID] = ev.update_id
        # the book is consistent only at the end of an exchange message
        settled = (ev.flags & _LAST_IN_MESSAGE) != 0 and (ev.flags & _BOOK_INVALID) == 0
    else:
        return FOLLOW_NONE, b, 0, 0, 0, 0, False
    return FOLLOW_DEPTH, b, side, price_ticks, lots, before, settled


@njit(cache=True, _nrt=False)
def _follow(S, out, j, ts, follow, b, side, price_ticks, lots, before, settled):
    """Our resting orders after the view took an event (``_view_event``'s verdict)."""
    mv_price, mv_qty, mv_i64, so, active, sw = S[2], S[3], S[5], S[6], S[8], S[11]
    if follow == FOLLOW_TRADE:
        return _on_trade(S, out, j, b, ts, price_ticks, lots, side)
    if _rests_at(so, active, sw, b, side, price_ticks):
        _queue_on_depth(S, b, side, price_ticks, before, qty_at(mv_price, mv_qty, mv_i64, b, side, price_ticks))
    if settled and _crossed(mv_price, mv_i64, so, active, sw, b):
        j = _on_cross(S, out, j, b, ts)
    return j


@njit(cache=True, _nrt=False)
def apply_event(S, out, j, ev, ts):
    """One market event at simulated time ``ts``."""
    follow, b, side, price_ticks, lots, before, settled = _view_event(S[0], S[1], S[2], S[3], S[4], S[5], S[11], ev,
                                                                      False, 0, 0)
    if follow != FOLLOW_NONE and S[11][SW_N_ACTIVE] > 0:
        j = _follow(S, out, j, ts, follow, b, side, price_ticks, lots, before, settled)
    return j


@njit(cache=True, _nrt=False)
def enqueue_orders(S, pend, pend_arrival, orders, start, stop):
    """Stamp arrival times (entry latency, FIFO) and queue orders; returns how many fit."""
    sw, ent_state, ent_series = S[11], S[13], S[14]
    cap = len(pend)
    i = start
    while i < stop and sw[SW_PEND_TAIL] - sw[SW_PEND_HEAD] < cap:
        o = orders[i]
        arrival = o.market_ts_ns + draw(ent_state, ent_series)
        if arrival < sw[SW_LAST_ARRIVAL]:
            arrival = sw[SW_LAST_ARRIVAL]  # one connection: orders arrive in the order they were sent
        sw[SW_LAST_ARRIVAL] = arrival
        if arrival < sw[SW_CLOCK]:
            sw[SW_LATE_ORDERS] += 1
        k = sw[SW_PEND_TAIL] & (cap - 1)
        pend[k] = o
        pend_arrival[k] = arrival
        sw[SW_PEND_TAIL] += 1
        i += 1
    return i - start


@njit(cache=True, _nrt=False)
def apply_due(S, pend, pend_arrival, until_ns, out, j, room_per_order):
    """Apply queued orders that arrive by ``until_ns``, each at max(clock, its arrival)."""
    sw = S[11]
    cap = len(pend)
    while sw[SW_PEND_HEAD] < sw[SW_PEND_TAIL] and len(out) - j >= room_per_order:
        k = sw[SW_PEND_HEAD] & (cap - 1)
        arrival = pend_arrival[k]
        if arrival > until_ns:
            break
        if arrival > sw[SW_CLOCK]:
            sw[SW_CLOCK] = arrival
        sw[SW_PEND_HEAD] += 1
        j = apply_order(S, out, j, pend[k], sw[SW_CLOCK])
    return j


@njit(cache=True, _nrt=False, inline="always")
def _next_arrival(pend_arrival, sw):
    """Arrival time of the first queued order, or the largest time when none is queued."""
    if sw[SW_PEND_HEAD] < sw[SW_PEND_TAIL]:
        return pend_arrival[sw[SW_PEND_HEAD] & (len(pend_arrival) - 1)]
    return _NEVER


@njit(cache=True, _nrt=False, forceinline=True)
def run_events(S, pend, pend_arrival, events, start, stop, out, j, room_per_order):
    """Apply events[start:stop] in order, each preceded by the orders due by its time.

    Returns (next event index, next report). Stops early when ``out`` might not hold what comes next.
    """
    i, j, _, _ = run_events_and_book(S, pend, pend_arrival, events, start, stop, out, j, room_per_order, None, False,
                                     False)
    return i, j


@njit(cache=True, _nrt=False, forceinline=True)
def run_events_and_book(S, pend, pend_arrival, events, start, stop, out, j, room_per_order, book, apply_book,
                        share_units):
    """``run_events``, and when ``book`` (an L2 book tuple, ``hftshm.book.levels_nb.BOOK_TUPLE``) is
    given and ``apply_book``, the L2 book takes each event in the same pass (``l2_apply_nb._event``):
    the backtest loop's two books read a message's rows once. Returns (next event index, next report,
    the book's APPLY_* status for the last event applied, its book index); ``book`` None compiles the
    book's step away. ``share_units`` (the caller checked that the book and the view have the same
    tick and lot per symbol): the view takes an event's units from the book's conversion when the
    book found it on the grid, instead of converting it again.

    The state tuple is unpacked once here: per event, the view takes only its arrays, and the calls
    that need all of ``S`` happen only when an order is due or one of ours rests. What only
    ``apply_due`` changes (the clock, the next arrival, the span of our resting prices) is kept in
    locals between its calls rather than re-read from ``sw`` per event.
    """
    scale, sym_to_book, mv_price, mv_qty, mv_used, mv_i64, so, active, sw = (S[0], S[1], S[2], S[3], S[4], S[5],
                                                                              S[6], S[8], S[11])
    bid_lo, bid_hi, ask_lo, ask_hi = _resting_span(so, active, sw)
    clock = sw[SW_CLOCK]
    next_arrival = _next_arrival(pend_arrival, sw)
    book_status = l2_apply_nb.APPLY_REJECTED
    book_b = -1
    i = start
    while i < stop:
        ev = events[i]
        ts = ev.exch_ts_ns if ev.exch_ts_ns > clock else clock
        if next_arrival <= ts:
            j = apply_due(S, pend, pend_arrival, ts, out, j, room_per_order)
            clock = sw[SW_CLOCK]
            next_arrival = _next_arrival(pend_arrival, sw)
            bid_lo, bid_hi, ask_lo, ask_hi = _resting_span(so, active, sw)
            if next_arrival <= ts:
                break  # out of room with orders still due before this event
        n_active = sw[SW_N_ACTIVE]
        if len(out) - j < n_active + 1:
            break
        clock = ts
        sw[SW_CLOCK] = ts
        units_given = False
        given_ticks = np.int64(0)
        given_lots = np.int64(0)
        if book is not None:
            if apply_book:
                book_status, book_b, given_ticks, given_lots, on_grid = l2_apply_nb._event(
                    book[0], book[1], book[2], book[3], book[4], book[5], book[6], book[7], book[8], book[9], ev)
                # beyond _UNITS_MAX the view's own conversion gives 0 (no level) where the book's does not
                units_given = share_units and on_grid and given_ticks <= _UNITS_MAX and given_lots <= _UNITS_MAX
        follow, b, side, price_ticks, lots, before, settled = _view_event(scale, sym_to_book, mv_price, mv_qty,
                                                                          mv_used, mv_i64, sw, ev, units_given,
                                                                          given_ticks, given_lots)
        if follow != FOLLOW_NONE and n_active > 0:
            in_span = bid_lo <= price_ticks <= bid_hi if side == 0 else ask_lo <= price_ticks <= ask_hi
            if follow == FOLLOW_TRADE or (in_span and _rests_at(so, active, sw, b, side, price_ticks)) or (
                    settled and _crossed(mv_price, mv_i64, so, active, sw, b)):
                j = _follow(S, out, j, ts, follow, b, side, price_ticks, lots, before, settled)
        i += 1
    return i, j, book_status, book_b
