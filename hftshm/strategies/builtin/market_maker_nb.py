"""The market maker's decision, as a kernel: one call per book change (or fill), intents out.

Written with the public compiled-strategy API (``hftshm.strategies.compiled``): ``on_book`` and
``on_report`` are the callbacks of ``MarketMaker``, run unchanged by the compiled backtest loop, the
Python-path backtest and the platform, so the live strategy and its backtest are the same code.

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

from hftshm.codes import OrderState, OrderType, Side, TimeInForce
from hftshm.strategies import context_nb as cx
from hftshm.strategies.grid_nb import ceil_to_tick, floor_to_lot, floor_to_tick
from hftshm.strategies.portfolio_nb import (PF_ACKS, PF_CANCELS, PF_FILLS, PF_INTENTS, PF_MID, PF_POSITION, PF_REJECTS,
                                            PF_SIGNALS, open_qty)

#: ``MarketMaker.STATE``: market time of the last action per side (the requote throttle), and the
#: book and portfolio the last decision saw, and when time alone can change it
STATE = {"last_bid_ns": -1e30, "last_ask_ns": -1e30, "seen_bid": math.nan, "seen_ask": 0.0,
         "seen_version": 0.0, "recheck_ns": 0.0}


@njit(cache=True, inline="always")
def _version(pf):
    # moves with every report and every intent: "the portfolio changed since the last decision"
    return pf[PF_ACKS] + pf[PF_FILLS] + pf[PF_CANCELS] + pf[PF_REJECTS] + pf[PF_INTENTS]


@njit(cache=True, inline="always")
def _tif(p):
    return TimeInForce.POST_ONLY if p.post_only else TimeInForce.GTC


@njit(cache=True)
def _recheck_ns(ctx):
    """Earliest market time after now at which time alone (a quote going stale, the requote
    throttle expiring) can change the decision for an unchanged book and portfolio."""
    p, state, orders, now_ns = ctx.params, ctx.state, ctx.orders, ctx.now_ns
    min_requote_ns = p.min_requote_interval_ms * 1_000_000
    soonest = np.inf
    for last in (state.last_bid_ns, state.last_ask_ns):
        expiry = last + min_requote_ns
        if expiry > now_ns:
            soonest = min(soonest, expiry)
    ttl_ns = p.quote_ttl_ms * 1_000_000
    for i in range(orders.shape[0]):
        if orders[i].state != 0 and orders[i].state != OrderState.PENDING_CANCEL:
            stale_at = orders[i].sent_ts_ns + ttl_ns
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
def quote_prices(spread_bps, skew_bps, max_inventory, position, best_bid, best_ask, tick):
    """(bid, ask) the maker wants, on the tick grid, for this book and inventory."""
    mid = 0.5 * (best_bid + best_ask)
    inventory = position / max_inventory
    inventory = max(-1.0, min(1.0, inventory))
    reservation = mid * (1.0 - skew_bps * 1e-4 * inventory)
    half = mid * spread_bps * 0.5e-4
    bid = floor_to_tick(reservation - half, tick)
    ask = ceil_to_tick(reservation + half, tick)
    bid = min(bid, floor_to_tick(best_ask - tick, tick))
    ask = max(ask, ceil_to_tick(best_bid + tick, tick))
    return bid, ask


@njit(cache=True)
def _side(ctx, side, want_price, room, last_ns):
    """Keep one quote on ``side`` at ``want_price``; ``room`` = inventory headroom left after the
    position and every open order on this side (the live quote included). Returns the new market
    time of the side's last action (``last_ns`` if nothing was done)."""
    p, orders, now_ns = ctx.params, ctx.orders, ctx.now_ns
    slot = _live_quote(orders, side)
    can_act = now_ns - last_ns >= p.min_requote_interval_ms * 1_000_000
    if slot >= 0:
        stale = now_ns - orders[slot].sent_ts_ns >= p.quote_ttl_ms * 1_000_000
        moved = abs(orders[slot].price - want_price) >= p.requote_ticks * ctx.tick - 1e-9
        over = room < -1e-9  # only if max_inventory shrank under us: pull now, throttle or not
        if not over and (not (stale or moved) or not can_act):
            return last_ns
        if cx.cancel(ctx, orders[slot].client_order_id) < 0:
            return last_ns
        last_ns = now_ns
    elif not can_act:
        return last_ns
    # the quote being cancelled still counts in ``room`` until the exchange confirms the cancel, so
    # when headroom is tight the replacement waits for that confirmation
    qty = min(p.quantity, floor_to_lot(room, ctx.lot))
    if qty >= ctx.lot:
        if cx.send(ctx, side, OrderType.LIMIT, _tif(p), want_price, qty) > 0:
            last_ns = now_ns
            ctx.pf[PF_SIGNALS] += 1.0
    return last_ns


@njit(cache=True)
def quote(ctx, best_bid, best_ask):
    """Decide quotes for this book top; intents go to the context's outbox."""
    if not (best_bid > 0.0 and best_ask > best_bid) or math.isnan(best_bid) or math.isnan(best_ask):
        return
    pf, state, p = ctx.pf, ctx.state, ctx.params
    pf[PF_MID] = 0.5 * (best_bid + best_ask)
    # same book, same portfolio, and no timer due: the decision would be the same "nothing"; this
    # runs on every book change, most of which leave the top and our orders as they were
    if (best_bid == state.seen_bid and best_ask == state.seen_ask and _version(pf) == state.seen_version
            and ctx.now_ns < state.recheck_ns):
        return
    position = pf[PF_POSITION]
    bid, ask = quote_prices(p.spread_bps, p.skew_bps, p.max_inventory, position, best_bid, best_ask, ctx.tick)
    buy_room = p.max_inventory - position - open_qty(ctx.orders, Side.BUY)
    sell_room = p.max_inventory + position - open_qty(ctx.orders, Side.SELL)
    state.last_bid_ns = _side(ctx, Side.BUY, bid, buy_room, state.last_bid_ns)
    state.last_ask_ns = _side(ctx, Side.SELL, ask, sell_room, state.last_ask_ns)
    state.seen_bid = best_bid
    state.seen_ask = best_ask
    state.seen_version = _version(pf)
    state.recheck_ns = _recheck_ns(ctx)


@njit(cache=True)
def on_book(ctx, book):
    quote(ctx, book.bid, book.ask)


@njit(cache=True)
def on_report(ctx, report):
    # a fill changes inventory, hence the skew and the headroom: requote without waiting for the book
    if ctx.best_bid == ctx.best_bid:
        quote(ctx, ctx.best_bid, ctx.best_ask)
