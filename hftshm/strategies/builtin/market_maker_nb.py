"""The market maker's decision, as a kernel: one call per book change (or fill), intents out.

Both the Python ``MarketMaker`` strategy (on the platform) and the compiled backtest loop call
``on_book``, so the live strategy and its backtest are the same code.

Quoting rule, per side:

* reservation price = mid shifted against inventory: ``mid * (1 - skew_bps/1e4 * position/max_inventory)``
  (long -> both quotes lower, so the ask is likelier to fill and the bid less);
* quotes at reservation -/+ half of ``spread_bps``, rounded outward to the tick grid, never at or
  through the opposite best (a maker does not cross);
* size ``quantity``, cut so that position + every open order on that side stays within
  ``max_inventory`` (open orders count until the exchange confirms their cancel: they can fill);
* a live quote is replaced (cancel + new) when its price is ``requote_ticks`` or more from the
  wanted price, or it has rested ``quote_ttl_ms`` (stale); at most once per ``min_requote_interval_ms``
  of market time per side, which also keeps the order rate under risk's throttle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hftshm.codes import OrderState, OrderType, Side
from hftshm.strategies.grid_nb import ceil_to_tick, floor_to_lot, floor_to_tick
from hftshm.strategies.intents_nb import send_cancel, send_new
from hftshm.strategies.portfolio_nb import (PF_ACKS, PF_CANCELS, PF_FILLS, PF_INTENTS, PF_MID, PF_POSITION, PF_REJECTS,
                                            PF_SIGNALS, open_qty)

# params vector
P_SPREAD_BPS = 0
P_QTY = 1
P_MAX_INVENTORY = 2
P_SKEW_BPS = 3
P_REQUOTE_TICKS = 4
P_MIN_REQUOTE_NS = 5
P_QUOTE_TTL_NS = 6
P_TIF = 7
P_SIZE = 8

# state vector
S_LAST_BID_NS = 0  # market time of the last action on each side (the requote throttle)
S_LAST_ASK_NS = 1
S_SEEN_BID = 2  # the book and portfolio the last decision saw, and when time alone can change it
S_SEEN_ASK = 3
S_SEEN_VERSION = 4
S_RECHECK_NS = 5
S_SIZE = 8


def new_params(spread_bps, quantity, max_inventory, skew_bps, requote_ticks, min_requote_interval_ms,
               quote_ttl_ms, tif) -> np.ndarray:
    params = np.zeros(P_SIZE, dtype=np.float64)
    params[P_SPREAD_BPS] = spread_bps
    params[P_QTY] = quantity
    params[P_MAX_INVENTORY] = max_inventory
    params[P_SKEW_BPS] = skew_bps
    params[P_REQUOTE_TICKS] = requote_ticks
    params[P_MIN_REQUOTE_NS] = min_requote_interval_ms * 1_000_000
    params[P_QUOTE_TTL_NS] = quote_ttl_ms * 1_000_000
    params[P_TIF] = tif
    return params


def new_state() -> np.ndarray:
    state = np.zeros(S_SIZE, dtype=np.float64)
    state[S_LAST_BID_NS] = -1e30
    state[S_LAST_ASK_NS] = -1e30
    state[S_SEEN_BID] = np.nan
    return state


@njit(cache=True, inline="always")
def _version(pf):
    # moves with every report and every intent: "the portfolio changed since the last decision"
    return pf[PF_ACKS] + pf[PF_FILLS] + pf[PF_CANCELS] + pf[PF_REJECTS] + pf[PF_INTENTS]


@njit(cache=True)
def _recheck_ns(params, state, orders, now_ns):
    """Earliest market time after ``now_ns`` at which time alone (a quote going stale, the requote
    throttle expiring) can change the decision for an unchanged book and portfolio."""
    soonest = np.inf
    for last in (state[S_LAST_BID_NS], state[S_LAST_ASK_NS]):
        expiry = last + params[P_MIN_REQUOTE_NS]
        if expiry > now_ns:
            soonest = min(soonest, expiry)
    for i in range(orders.shape[0]):
        if orders[i].state != 0 and orders[i].state != OrderState.PENDING_CANCEL:
            stale_at = orders[i].sent_ts_ns + params[P_QUOTE_TTL_NS]
            soonest = min(soonest, max(stale_at, now_ns + 1.0))
    return soonest


@njit(cache=True)
def _live_quote(orders, side):
    """Slot of this side's working quote (not being cancelled), -1 if none."""
    for i in range(orders.shape[0]):
        if orders[i].state != 0 and orders[i].side == side and orders[i].state != OrderState.PENDING_CANCEL:
            return i
    return -1


@njit(cache=True)
def quote_prices(params, position, best_bid, best_ask, tick):
    """(bid, ask) the maker wants, on the tick grid, for this book and inventory."""
    mid = 0.5 * (best_bid + best_ask)
    inventory = position / params[P_MAX_INVENTORY]
    inventory = max(-1.0, min(1.0, inventory))
    reservation = mid * (1.0 - params[P_SKEW_BPS] * 1e-4 * inventory)
    half = mid * params[P_SPREAD_BPS] * 0.5e-4
    bid = floor_to_tick(reservation - half, tick)
    ask = ceil_to_tick(reservation + half, tick)
    bid = min(bid, floor_to_tick(best_ask - tick, tick))
    ask = max(ask, ceil_to_tick(best_bid + tick, tick))
    return bid, ask


@njit(cache=True)
def _side(params, state, pf, orders, records, count, strategy_id, symbol_id, tick, lot, now_ns, origin_ts_ns,
          side, want_price, room, last_index):
    """Keep one quote on ``side`` at ``want_price``; ``room`` = inventory headroom left after the
    position and every open order on this side (the live quote included)."""
    slot = _live_quote(orders, side)
    can_act = now_ns - state[last_index] >= params[P_MIN_REQUOTE_NS]
    if slot >= 0:
        stale = now_ns - orders[slot].sent_ts_ns >= params[P_QUOTE_TTL_NS]
        moved = abs(orders[slot].price - want_price) >= params[P_REQUOTE_TICKS] * tick - 1e-9
        over = room < -1e-9  # only if max_inventory shrank under us: pull now, throttle or not
        if not over and (not (stale or moved) or not can_act):
            return
        if send_cancel(pf, orders, records, count, strategy_id, symbol_id, orders[slot].client_order_id, now_ns,
                       origin_ts_ns) < 0:
            return
        state[last_index] = now_ns
    elif not can_act:
        return
    # the quote being cancelled still counts in ``room`` until the exchange confirms the cancel, so
    # when headroom is tight the replacement waits for that confirmation
    qty = min(params[P_QTY], floor_to_lot(room, lot))
    if qty >= lot:
        coid = send_new(pf, orders, records, count, strategy_id, symbol_id, side, OrderType.LIMIT, int(params[P_TIF]),
                        want_price, qty, now_ns, origin_ts_ns)
        if coid > 0:
            state[last_index] = now_ns
            pf[PF_SIGNALS] += 1.0


@njit(cache=True)
def on_book(params, state, pf, orders, records, count, strategy_id, symbol_id, tick, lot, now_ns, origin_ts_ns,
            best_bid, best_ask):
    """Decide quotes for this book; intents go to ``records``/``count``. Returns intents queued."""
    before = count[0]
    if not (best_bid > 0.0 and best_ask > best_bid) or math.isnan(best_bid) or math.isnan(best_ask):
        return 0
    pf[PF_MID] = 0.5 * (best_bid + best_ask)
    # same book, same portfolio, and no timer due: the decision would be the same "nothing"; this
    # runs on every book change, most of which leave the top and our orders as they were
    if (best_bid == state[S_SEEN_BID] and best_ask == state[S_SEEN_ASK] and _version(pf) == state[S_SEEN_VERSION]
            and now_ns < state[S_RECHECK_NS]):
        return 0
    position = pf[PF_POSITION]
    bid, ask = quote_prices(params, position, best_bid, best_ask, tick)
    max_inventory = params[P_MAX_INVENTORY]
    buy_room = max_inventory - position - open_qty(orders, Side.BUY)
    sell_room = max_inventory + position - open_qty(orders, Side.SELL)
    _side(params, state, pf, orders, records, count, strategy_id, symbol_id, tick, lot, now_ns, origin_ts_ns,
          Side.BUY, bid, buy_room, S_LAST_BID_NS)
    _side(params, state, pf, orders, records, count, strategy_id, symbol_id, tick, lot, now_ns, origin_ts_ns,
          Side.SELL, ask, sell_room, S_LAST_ASK_NS)
    state[S_SEEN_BID] = best_bid
    state[S_SEEN_ASK] = best_ask
    state[S_SEEN_VERSION] = _version(pf)
    state[S_RECHECK_NS] = _recheck_ns(params, state, orders, now_ns)
    return count[0] - before
