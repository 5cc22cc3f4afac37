"""What a compiled strategy's callbacks get: the named context ``ctx`` and the helpers that act on it.

A compiled strategy (``hftshm.strategies.compiled.CompiledStrategy``) writes its callbacks as numba
``@njit`` functions of ``(ctx, event)``; ``ctx`` is a ``StrategyContext`` (a ``typing.NamedTuple``,
compiled to a static struct: no lookups by name at run time):

    ctx.params        the strategy's parameters (a numba record: ``ctx.params.spread_bps``; read only)
    ctx.state         the strategy's own state (a record: ``ctx.state.last_ns = ctx.now_ns`` persists)
    ctx.pf, ctx.orders  its portfolio vector and open-order table (``portfolio_nb``)
    ctx.intents, ctx.icount  the outbox the helpers below append to
    ctx.strategy_id, ctx.symbol_id, ctx.tick, ctx.lot
    ctx.now_ns        market time of the event being handled (ns since the epoch)
    ctx.origin_ts_ns  feed publish time of the tick behind it (0 for a report: not a tick)
    ctx.best_bid, ctx.best_ask  the book top as this strategy last saw it (NaN before the first book)

The helpers are ``@njit`` too, so a callback stays compiled end to end:
``buy/sell(ctx, price, qty[, tif])``, ``buy_market/sell_market(ctx, qty)``, ``cancel(ctx, coid)``,
``cancel_all(ctx[, side])``, ``replace(ctx, coid, price, qty)``, ``round_bid/round_ask(ctx, price)``,
``round_qty(ctx, qty)``, ``position(ctx)``, ``open_orders(ctx)``, ``open_qty(ctx, side)``, ``mid(ctx)``,
``signal(ctx)``, ``imbalance(book)``. An order helper returns the client order id (> 0), 0 for
"nothing to do", or a negative ``intents_nb.ERR_*``; a negative code also sets the portfolio's fault
word, and the runtime then pauses the strategy and reports the error with its name (the others keep
trading) - a compiled callback cannot raise into the loop, so that is how misbehaviour is caught.

``BookTop`` is the ``book`` of ``on_book(ctx, book)``: the top of the strategy's symbol's L2 book
after a book-changing message (prices NaN and quantities 0 for an empty side).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from numba import njit

from hftshm.codes import OrderState, OrderType, Side, TimeInForce
from hftshm.strategies import grid_nb, intents_nb
from hftshm.strategies import portfolio_nb as pnb

GTC = int(TimeInForce.GTC)
IOC = int(TimeInForce.IOC)
POST_ONLY = int(TimeInForce.POST_ONLY)
BUY = int(Side.BUY)
SELL = int(Side.SELL)
LIMIT = int(OrderType.LIMIT)
MARKET = int(OrderType.MARKET)


class StrategyContext(NamedTuple):
    params: object
    state: object
    pf: object
    orders: object
    intents: object
    icount: object
    strategy_id: int
    symbol_id: int
    tick: float
    lot: float
    now_ns: int
    origin_ts_ns: int
    best_bid: float
    best_ask: float


class BookTop(NamedTuple):
    exch_ts_ns: int
    bid: float
    ask: float
    bid_qty: float
    ask_qty: float
    mid: float
    valid: int


@njit(cache=True, inline="always")
def _checked(ctx, code):
    if code < 0 and ctx.pf[pnb.PF_FAULT] == 0.0:
        ctx.pf[pnb.PF_FAULT] = code  # the first error is the one reported
    return code


# -- orders -----------------------------------------------------------------------------------------

@njit(cache=True)
def send(ctx, side, order_type, tif, price, qty):
    return _checked(ctx, intents_nb.send_new(ctx.pf, ctx.orders, ctx.intents, ctx.icount, ctx.strategy_id,
                                             ctx.symbol_id, side, order_type, tif, price, qty, ctx.now_ns,
                                             ctx.origin_ts_ns))


@njit(cache=True)
def buy(ctx, price, qty, tif=GTC):
    """Queue a limit buy at ``price`` (on the tick grid); its client order id."""
    return send(ctx, BUY, LIMIT, tif, price, qty)


@njit(cache=True)
def sell(ctx, price, qty, tif=GTC):
    return send(ctx, SELL, LIMIT, tif, price, qty)


@njit(cache=True)
def buy_market(ctx, qty):
    return send(ctx, BUY, MARKET, IOC, math.nan, qty)


@njit(cache=True)
def sell_market(ctx, qty):
    return send(ctx, SELL, MARKET, IOC, math.nan, qty)


@njit(cache=True)
def cancel(ctx, client_order_id):
    """Queue a cancel; 0 if the order is done or already being cancelled."""
    return _checked(ctx, intents_nb.send_cancel(ctx.pf, ctx.orders, ctx.intents, ctx.icount, ctx.strategy_id,
                                                ctx.symbol_id, client_order_id, ctx.now_ns, ctx.origin_ts_ns))


@njit(cache=True)
def cancel_all(ctx, side=0):
    """Cancel every open order (of ``side`` if given, else both); how many cancels were queued."""
    orders = ctx.orders
    n = 0
    for i in range(orders.shape[0]):
        o = orders[i]
        if o.state == 0 or o.state == OrderState.PENDING_CANCEL or (side != 0 and o.side != side):
            continue
        if cancel(ctx, o.client_order_id) > 0:
            n += 1
    return n


@njit(cache=True)
def replace(ctx, client_order_id, price, qty):
    return _checked(ctx, intents_nb.send_replace(ctx.pf, ctx.orders, ctx.intents, ctx.icount, ctx.strategy_id,
                                                 ctx.symbol_id, client_order_id, price, qty, ctx.now_ns,
                                                 ctx.origin_ts_ns))


# -- reads ------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def position(ctx):
    return ctx.pf[pnb.PF_POSITION]


@njit(cache=True, inline="always")
def open_orders(ctx):
    """Orders sent and not known to be done (pending cancels included)."""
    return int(ctx.pf[pnb.PF_OPEN_ORDERS])


@njit(cache=True)
def open_qty(ctx, side):
    return pnb.open_qty(ctx.orders, side)


@njit(cache=True, inline="always")
def mid(ctx):
    return 0.5 * (ctx.best_bid + ctx.best_ask)


@njit(cache=True, inline="always")
def imbalance(book):
    total = book.bid_qty + book.ask_qty
    return (book.bid_qty - book.ask_qty) / total if total > 0.0 else math.nan


@njit(cache=True, inline="always")
def signal(ctx):
    """Count a decision (the strategy's ``signals`` metric)."""
    ctx.pf[pnb.PF_SIGNALS] += 1.0


# -- grids ------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def round_bid(ctx, price):
    return grid_nb.floor_to_tick(price, ctx.tick)


@njit(cache=True, inline="always")
def round_ask(ctx, price):
    return grid_nb.ceil_to_tick(price, ctx.tick)


@njit(cache=True, inline="always")
def round_qty(ctx, qty):
    return grid_nb.floor_to_lot(qty, ctx.lot)
