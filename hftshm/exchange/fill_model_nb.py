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
(LIQ_* below).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import Action, EventFlag, EventKind, OrderType, Reason, ReportEvent, TimeInForce
from hftshm.exchange.common_nb import (MAX_PRICE_TICKS, MAX_QTY_LOTS, SC_LOT, SC_LOT_INV, SC_TICK, SC_TICK_INV,
                                       check_codes, fill_fee, idmap_find, idmap_insert, idmap_remove, reject_order,
                                       to_float, to_units, write_report)
from hftshm.exchange.latency_nb import draw
from hftshm.exchange.market_view_nb import (MV_LAST_UPDATE_ID, apply_bbo, best_loc, clear, event_units, loc_price,
                                            next_loc, qty_at, set_level)

# report flags: how a fill happened
LIQ_TAKER = 1  # our order took visible liquidity
LIQ_QUEUE = 2  # a trade at our price reached us in the queue
LIQ_TRADE_THROUGH = 3  # a trade printed through our price
LIQ_BOOK_CROSS = 4  # the visible opposite book crossed our price

_LAST_IN_MESSAGE = int(EventFlag.LAST_IN_MESSAGE)  # IntFlag members are not numba constants
_BOOK_INVALID = int(EventFlag.BOOK_INVALID)
_NEVER = np.iinfo(np.int64).max

MODEL_RISK_AVERSE = 0
MODEL_PROBABILISTIC = 1

# our order table columns (so[slot, SO_*], int64)
SO_ID = 0
SO_CLIENT_ID = 1
SO_ORIGIN_TS = 2
SO_PRICE = 3
SO_LEAVES = 4
SO_CUM = 5
SO_BOOK = 6
SO_SIDE = 7  # 0 buy, 1 sell
SO_TIF = 8
SO_STRATEGY = 9
SO_SYMBOL = 10
SO_COLS = 12
# float columns (sq[slot, SQ_*]): queue estimate in lots
SQ_AHEAD = 0
SQ_TRADED = 1  # lots traded at our level since its last depth update (probabilistic model)
SQ_COLS = 2

# simulator words (sw[SW_*])
SW_SEQ = 0
SW_CLOCK = 1
SW_N_ACTIVE = 2
SW_FREE_TOP = 3
SW_LAST_ARRIVAL = 4
SW_LAST_LOCAL = 5
SW_PEND_HEAD = 6  # pending orders consumed
SW_PEND_TAIL = 7  # pending orders enqueued
SW_FILL_MODEL = 8
SW_ORDERS = 9
SW_REJECTS = 10
SW_FILLS = 11
SW_LATE_ORDERS = 12  # orders whose arrival time had already passed when they were enqueued
SW_EVENTS = 13
SW_FOREIGN_EVENTS = 14  # market events for symbols not configured
SW_WORDS = 16
STAT_WORDS = {"reports": SW_SEQ, "orders": SW_ORDERS, "rejects": SW_REJECTS, "fills": SW_FILLS,
              "late_orders": SW_LATE_ORDERS, "events": SW_EVENTS, "foreign_events": SW_FOREIGN_EVENTS,
              "open_orders": SW_N_ACTIVE}

# params (float64)
P_MAKER_BPS = 0
P_TAKER_BPS = 1
P_QUEUE_POWER = 2
P_WORDS = 4


@njit(cache=True, _nrt=False)
def _emit(S, out, j, slot, ts, event, price, qty_lots, reason, fee_bps, liquidity):
    """A report about our order in ``slot``; stamps exchange time and the response-latency local time."""
    (scale, sym_to_book, mv_price, mv_qty, mv_used, mv_i64, so, sq, active, free, id_table, sw, params,
     ent_state, ent_series, resp_state, resp_series) = S
    b = so[slot, SO_BOOK]
    lot = scale[b, SC_LOT]
    lot_inv = scale[b, SC_LOT_INV]
    qty = to_float(qty_lots, lot, lot_inv)
    fee = fill_fee(scale, b, price, qty, fee_bps)
    write_report(out, j, sw[SW_SEQ], ts, so[slot, SO_ORIGIN_TS], so[slot, SO_ID], so[slot, SO_CLIENT_ID], 0,
                 price, qty, to_float(so[slot, SO_LEAVES], lot, lot_inv), to_float(so[slot, SO_CUM], lot, lot_inv),
                 fee, so[slot, SO_STRATEGY], so[slot, SO_SYMBOL], event,
                 so[slot, SO_SIDE] + 1, reason)
    _stamp(S, out, j, ts)
    out[j].flags = liquidity
    return j + 1


@njit(cache=True, _nrt=False, inline="always")
def _stamp(S, out, j, ts):
    sw = S[11]
    local = ts + draw(S[15], S[16])
    if local < sw[SW_LAST_LOCAL]:
        local = sw[SW_LAST_LOCAL]  # one connection: responses arrive in the order they were sent
    sw[SW_LAST_LOCAL] = local
    out[j].local_ts_ns = local
    sw[SW_SEQ] += 1


@njit(cache=True, _nrt=False)
def _reject(S, out, j, o, ts, order_id, reason):
    sw = S[11]
    reject_order(out, j, sw[SW_SEQ], ts, o, reason)
    out[j].order_id = order_id
    _stamp(S, out, j, ts)
    sw[SW_REJECTS] += 1
    return j + 1


@njit(cache=True, _nrt=False, inline="always")
def _crosses(side, limit_ticks, level_ticks):
    return level_ticks <= limit_ticks if side == 0 else level_ticks >= limit_ticks


@njit(cache=True, _nrt=False)
def _available(S, b, side, limit_ticks):
    """Unused visible lots our order could take up to its limit."""
    mv_price, mv_qty, mv_used, mv_i64 = S[2], S[3], S[4], S[5]
    opp = 1 - side
    got = 0
    k = best_loc(mv_price, mv_i64, b, opp)
    while k >= 0 and _crosses(side, limit_ticks, loc_price(mv_price, mv_i64, b, opp, k)):
        got += max(mv_qty[b, opp, k] - mv_used[b, opp, k], 0)
        k = next_loc(mv_price, mv_qty, mv_i64, b, opp, k)
    return got


@njit(cache=True, _nrt=False)
def _take(S, out, j, slot, ts, limit_ticks):
    """Take visible liquidity for our order in ``slot`` (taker, at level prices)."""
    scale, mv_price, mv_qty, mv_used, mv_i64, so, sw, params = S[0], S[2], S[3], S[4], S[5], S[6], S[11], S[12]
    b = so[slot, SO_BOOK]
    side = so[slot, SO_SIDE]
    opp = 1 - side
    k = best_loc(mv_price, mv_i64, b, opp)
    while so[slot, SO_LEAVES] > 0 and k >= 0 and _crosses(side, limit_ticks, loc_price(mv_price, mv_i64, b, opp, k)):
        free_lots = mv_qty[b, opp, k] - mv_used[b, opp, k]
        if free_lots > 0:
            lots = min(free_lots, so[slot, SO_LEAVES])
            mv_used[b, opp, k] += lots
            so[slot, SO_LEAVES] -= lots
            so[slot, SO_CUM] += lots
            sw[SW_FILLS] += 1
            event = ReportEvent.FILL if so[slot, SO_LEAVES] == 0 else ReportEvent.PARTIAL
            price = to_float(loc_price(mv_price, mv_i64, b, opp, k), scale[b, SC_TICK], scale[b, SC_TICK_INV])
            j = _emit(S, out, j, slot, ts, event, price, lots, Reason.NONE, params[P_TAKER_BPS], LIQ_TAKER)
        k = next_loc(mv_price, mv_qty, mv_i64, b, opp, k)
    return j


@njit(cache=True, _nrt=False)
def _passive_fill(S, out, j, slot, ts, lots, liquidity):
    scale, so, sw, params = S[0], S[6], S[11], S[12]
    b = so[slot, SO_BOOK]
    so[slot, SO_LEAVES] -= lots
    so[slot, SO_CUM] += lots
    sw[SW_FILLS] += 1
    event = ReportEvent.FILL if so[slot, SO_LEAVES] == 0 else ReportEvent.PARTIAL
    price = to_float(so[slot, SO_PRICE], scale[b, SC_TICK], scale[b, SC_TICK_INV])
    return _emit(S, out, j, slot, ts, event, price, lots, Reason.NONE, params[P_MAKER_BPS], liquidity)


@njit(cache=True, _nrt=False)
def _rest(S, slot):
    """Join the active list (time priority among our orders) behind the visible queue at our price."""
    mv_price, mv_qty, mv_i64, so, sq, active, sw = S[2], S[3], S[5], S[6], S[7], S[8], S[11]
    b = so[slot, SO_BOOK]
    sq[slot, SQ_AHEAD] = qty_at(mv_price, mv_qty, mv_i64, b, so[slot, SO_SIDE], so[slot, SO_PRICE])
    sq[slot, SQ_TRADED] = 0.0
    active[sw[SW_N_ACTIVE]] = slot
    sw[SW_N_ACTIVE] += 1


@njit(cache=True, _nrt=False)
def _unlist(S, slot):
    active, sw = S[8], S[11]
    n = sw[SW_N_ACTIVE]
    k = 0
    while k < n and active[k] != slot:
        k += 1
    for m in range(k, n - 1):
        active[m] = active[m + 1]
    if k < n:
        sw[SW_N_ACTIVE] = n - 1


@njit(cache=True, _nrt=False)
def _release(S, slot):
    so, free, id_table, sw = S[6], S[9], S[10], S[11]
    idmap_remove(id_table, so[slot, SO_ID])
    free[sw[SW_FREE_TOP]] = slot
    sw[SW_FREE_TOP] += 1


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


@njit(cache=True, _nrt=False)
def _queue_on_depth(S, b, side, price_ticks, before, after):
    """A visible level we rest at changed size: move our queue estimate by the model."""
    so, sq, active, sw, params = S[6], S[7], S[8], S[11], S[12]
    probabilistic = sw[SW_FILL_MODEL] == MODEL_PROBABILISTIC
    power = params[P_QUEUE_POWER]
    for k in range(sw[SW_N_ACTIVE]):
        slot = active[k]
        if so[slot, SO_BOOK] != b or so[slot, SO_SIDE] != side or so[slot, SO_PRICE] != price_ticks:
            continue
        front = sq[slot, SQ_AHEAD]
        if probabilistic:
            # the part of a decrease not explained by trades already counted is cancels: split it
            change = before - after - sq[slot, SQ_TRADED]
            sq[slot, SQ_TRADED] = 0.0
            if change > 0:
                back = max(before - front, 0.0)
                f_front = front ** power
                f_back = back ** power
                to_front = f_front / (f_front + f_back) if f_front + f_back > 0 else 1.0
                front = front - to_front * change + min(back - (1.0 - to_front) * change, 0.0)
        sq[slot, SQ_AHEAD] = max(min(front, after), 0.0)


@njit(cache=True, _nrt=False)
def _on_trade(S, out, j, b, ts, price_ticks, lots, aggressor_side):
    """A print: advance queues at its price, fill orders it reached or traded through (up to its size)."""
    so, sq, active, sw = S[6], S[7], S[8], S[11]
    passive_side = 1 - aggressor_side  # a buyer-aggressor trade hits asks (side 1)
    left = lots
    k = 0
    while k < sw[SW_N_ACTIVE]:
        slot = active[k]
        k += 1
        if so[slot, SO_BOOK] != b or so[slot, SO_SIDE] != passive_side:
            continue
        price = so[slot, SO_PRICE]
        through = price < price_ticks if passive_side == 1 else price > price_ticks
        fill = 0
        liquidity = LIQ_TRADE_THROUGH
        if through:
            fill = min(so[slot, SO_LEAVES], left)
        elif price == price_ticks:
            ahead = sq[slot, SQ_AHEAD] - lots
            sq[slot, SQ_TRADED] += lots
            if ahead < 0:
                fill = min(so[slot, SO_LEAVES], np.int64(np.floor(-ahead)), left)
                ahead = 0.0
            sq[slot, SQ_AHEAD] = ahead
            liquidity = LIQ_QUEUE
        if fill > 0:
            left -= fill
            j = _passive_fill(S, out, j, slot, ts, fill, liquidity)
            if so[slot, SO_LEAVES] == 0:
                _unlist(S, slot)
                _release(S, slot)
                k -= 1
    return j


@njit(cache=True, _nrt=False)
def _on_cross(S, out, j, b, ts):
    """Fill resting orders the visible opposite book now crosses, from its unused quantity."""
    mv_price, mv_qty, mv_used, mv_i64, so, active, sw = S[2], S[3], S[4], S[5], S[6], S[8], S[11]
    k = 0
    while k < sw[SW_N_ACTIVE]:
        slot = active[k]
        k += 1
        if so[slot, SO_BOOK] != b:
            continue
        side = so[slot, SO_SIDE]
        opp = 1 - side
        price = so[slot, SO_PRICE]
        level = best_loc(mv_price, mv_i64, b, opp)
        fill = 0
        while level >= 0 and fill < so[slot, SO_LEAVES] and \
                _crosses(side, price, loc_price(mv_price, mv_i64, b, opp, level)):
            take = min(mv_qty[b, opp, level] - mv_used[b, opp, level], so[slot, SO_LEAVES] - fill)
            if take > 0:
                mv_used[b, opp, level] += take
                fill += take
            level = next_loc(mv_price, mv_qty, mv_i64, b, opp, level)
        if fill > 0:
            j = _passive_fill(S, out, j, slot, ts, fill, LIQ_BOOK_CROSS)
            if so[slot, SO_LEAVES] == 0:
                _unlist(S, slot)
                _release(S, slot)
                k -= 1
    return j


# what a market event asks of our resting orders once the view has taken it (_view_event)
FOLLOW_NONE = 0
FOLLOW_TRADE = 1  # a print: queues at its price advance, orders it reached or went through fill
FOLLOW_DEPTH = 2  # a level changed size: queues at its price move; at a message's end, crosses fill


@njit(cache=True, _nrt=False, forceinline=True)
def _view_event(scale, sym_to_book, mv_price, mv_qty, mv_used, mv_i64, sw, ev):
    """The market view takes one event. Returns (FOLLOW_*, book, side, price ticks, lots, level's lots
    before, settled). Takes only the arrays it needs: the per-event path never passes the whole state
    tuple (a call taking it moves ~150 words of array descriptors)."""
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


@njit(cache=True, _nrt=False, forceinline=True)
def _rests_at(so, active, sw, b, side, price_ticks):
    """One of our orders rests at this book, side and price (only those see a level's size change)."""
    for k in range(sw[SW_N_ACTIVE]):
        slot = active[k]
        if so[slot, SO_PRICE] == price_ticks and so[slot, SO_SIDE] == side and so[slot, SO_BOOK] == b:
            return True
    return False


@njit(cache=True, _nrt=False, forceinline=True)
def _resting_span(so, active, sw):
    """(lowest, highest) price ticks of our resting bids, then of our asks (an empty side: an empty
    span). A price outside its side's span has no order of ours (``_rests_at`` is False), so most
    level changes are ruled out by two comparisons instead of a walk of our orders; fills and
    cancels only remove orders, so only an order arriving (``apply_due``) can widen it."""
    bid_lo, bid_hi, ask_lo, ask_hi = MAX_PRICE_TICKS * 4, -1, MAX_PRICE_TICKS * 4, -1
    for k in range(sw[SW_N_ACTIVE]):
        slot = active[k]
        price = so[slot, SO_PRICE]
        if so[slot, SO_SIDE] == 0:
            bid_lo = min(bid_lo, price)
            bid_hi = max(bid_hi, price)
        else:
            ask_lo = min(ask_lo, price)
            ask_hi = max(ask_hi, price)
    return bid_lo, bid_hi, ask_lo, ask_hi


@njit(cache=True, _nrt=False, forceinline=True)
def _crossed(mv_price, mv_i64, so, active, sw, b):
    """The visible opposite best crosses one of our orders of book ``b`` (else ``_on_cross`` has
    nothing to do: it only fills crossed orders)."""
    loc = best_loc(mv_price, mv_i64, b, 0)
    best_bid = loc_price(mv_price, mv_i64, b, 0, loc) if loc >= 0 else -1
    loc = best_loc(mv_price, mv_i64, b, 1)
    best_ask = loc_price(mv_price, mv_i64, b, 1, loc) if loc >= 0 else -1
    for k in range(sw[SW_N_ACTIVE]):
        slot = active[k]
        if so[slot, SO_BOOK] != b:
            continue
        side = so[slot, SO_SIDE]
        opp = best_ask if side == 0 else best_bid
        if opp >= 0 and _crosses(side, so[slot, SO_PRICE], opp):
            return True
    return False


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
    follow, b, side, price_ticks, lots, before, settled = _view_event(S[0], S[1], S[2], S[3], S[4], S[5], S[11], ev)
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
        follow, b, side, price_ticks, lots, before, settled = _view_event(scale, sym_to_book, mv_price, mv_qty,
                                                                          mv_used, mv_i64, sw, ev)
        if follow != FOLLOW_NONE and n_active > 0:
            in_span = bid_lo <= price_ticks <= bid_hi if side == 0 else ask_lo <= price_ticks <= ask_hi
            if follow == FOLLOW_TRADE or (in_span and _rests_at(so, active, sw, b, side, price_ticks)) or (
                    settled and _crossed(mv_price, mv_i64, so, active, sw, b)):
                j = _follow(S, out, j, ts, follow, b, side, price_ticks, lots, before, settled)
        i += 1
    return i, j
