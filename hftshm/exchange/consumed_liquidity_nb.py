"""The fill model's consumed liquidity: what our orders take from the visible opposite levels.

A marketable order takes the levels' unused lots, best first, at their prices (``_take``;
``_available`` for FOK); a resting order the visible opposite book crosses takes them at its own
price (``_on_cross``, looked for only when ``_crossed``). What is taken is marked ``used`` on the
level in the market view until the market's own next update of it.
"""

from __future__ import annotations

from numba import njit

from hftshm.codes import Reason, ReportEvent
from hftshm.exchange.common_nb import SC_TICK, SC_TICK_INV, to_float
from hftshm.exchange.fill_table_nb import (LIQ_BOOK_CROSS, LIQ_TAKER, P_TAKER_BPS, SO_BOOK, SO_CUM, SO_LEAVES,
                                           SO_PRICE, SO_SIDE, SW_FILLS, SW_N_ACTIVE, _emit, _passive_fill)
from hftshm.exchange.market_view_nb import best_loc, loc_price, next_loc

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
            j, left_book = _passive_fill(S, out, j, slot, ts, fill, LIQ_BOOK_CROSS)
            k -= left_book
    return j


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
