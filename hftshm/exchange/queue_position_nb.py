"""The fill model's queue position: where our resting order stands in the visible queue at its price.

It joins behind the visible quantity at its price (``_rest``); trades at its price advance it and fill
it once past it, trades through its price fill it (``_on_trade``); a size change of its level moves it
by the model (``_queue_on_depth``: ``risk_averse`` or ``probabilistic``, see ``fill_model_nb``).
``_rests_at`` and ``_resting_span`` tell the event pass which level changes can concern our queues.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.exchange.common_nb import MAX_PRICE_TICKS
from hftshm.exchange.fill_table_nb import (LIQ_QUEUE, LIQ_TRADE_THROUGH, MODEL_PROBABILISTIC, P_QUEUE_POWER,
                                           SO_BOOK, SO_LEAVES, SO_PRICE, SO_SIDE, SQ_AHEAD, SQ_TRADED, SW_FILL_MODEL,
                                           SW_N_ACTIVE, _passive_fill)
from hftshm.exchange.market_view_nb import qty_at

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
            j, left_book = _passive_fill(S, out, j, slot, ts, fill, liquidity)
            k -= left_book
    return j


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
