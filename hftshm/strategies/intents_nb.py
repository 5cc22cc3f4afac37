"""Writing order intents into a preallocated buffer, and recording them as open orders.

An intent buffer is a pair: ``records`` (an ``order_intent`` array, allocated once) and ``count``
(a one-element int64 array, so kernels can advance it in place). A strategy's helpers
(``Strategy.buy``/``cancel``/...) and the compiled built-ins both come through here, so every
intent leaves with a fresh client order id and a matching slot in the open-order table.

Return values: a client order id (> 0) on success, 0 for "nothing to do" (cancelling an order that
is already done or already being cancelled), or a negative ``ERR_*`` code. Kernels never raise;
the Python wrappers turn the codes into errors that name the strategy.
"""

from __future__ import annotations

import math

from numba import njit

from hftshm.codes import Action, OrderState, OrderType, TimeInForce
from hftshm.runtime.warm_types import int64_scalars
from hftshm.strategies.portfolio_nb import (
    PF_INTENTS,
    PF_NEW_ORDERS,
    PF_NEXT_COID,
    add_order,
    find_order,
    mark_amend,
)

ERR_INTENTS_FULL = -1
ERR_ORDERS_FULL = -2
ERR_UNKNOWN_ORDER = -3
ERR_BAD_ORDER = -4

ERROR_TEXT = {
    ERR_INTENTS_FULL: "intent buffer full (too many intents in one callback)",
    ERR_ORDERS_FULL: "open-order table full (too many orders open at once)",
    ERR_UNKNOWN_ORDER: "no open order with that client order id",
    ERR_BAD_ORDER: "price and quantity must be finite and quantity > 0",
}


@int64_scalars
@njit(cache=True)
def _put(records, count, action, client_order_id, target_client_order_id, strategy_id, symbol_id, side,
         order_type, tif, price, qty, market_ts_ns, origin_ts_ns):
    n = count[0]
    if n >= records.shape[0]:
        return False
    rec = records[n]
    rec.seq = 0
    rec.ts_ns = 0  # stamped by the publisher: the monotonic clock is not the strategy's business
    rec.origin_ts_ns = origin_ts_ns
    rec.market_ts_ns = market_ts_ns
    rec.client_order_id = client_order_id
    rec.target_client_order_id = target_client_order_id
    rec.price = price
    rec.qty = qty
    rec.strategy_id = strategy_id
    rec.symbol_id = symbol_id
    rec.action = action
    rec.side = side
    rec.order_type = order_type
    rec.tif = tif
    rec.flags = 0
    count[0] = n + 1
    return True


@njit(cache=True)
def send_new(pf, orders, records, count, strategy_id, symbol_id, side, order_type, tif, price, qty,
             market_ts_ns, origin_ts_ns):
    """Queue a new order; returns its client order id or an ERR_* code."""
    if not (qty > 0.0) or qty == math.inf:
        return ERR_BAD_ORDER
    if order_type != OrderType.MARKET and not (abs(price) < math.inf):
        return ERR_BAD_ORDER
    if count[0] >= records.shape[0]:
        return ERR_INTENTS_FULL
    coid = int(pf[PF_NEXT_COID])
    if add_order(pf, orders, coid, side, price, qty, market_ts_ns) < 0:
        return ERR_ORDERS_FULL
    pf[PF_NEXT_COID] = coid + 1
    _put(records, count, Action.NEW, coid, 0, strategy_id, symbol_id, side, order_type, tif, price, qty,
         market_ts_ns, origin_ts_ns)
    pf[PF_INTENTS] += 1.0
    pf[PF_NEW_ORDERS] += 1.0
    return coid


@njit(cache=True)
def send_cancel(pf, orders, records, count, strategy_id, symbol_id, target_client_order_id, market_ts_ns,
                origin_ts_ns):
    """Queue a cancel of an open order; its own client order id, 0 if already done or being
    cancelled, or an ERR_* code."""
    slot = find_order(orders, target_client_order_id)
    if slot < 0 or orders[slot].client_order_id != target_client_order_id:
        return 0
    if orders[slot].state == OrderState.PENDING_CANCEL:
        return 0
    if count[0] >= records.shape[0]:
        return ERR_INTENTS_FULL
    coid = int(pf[PF_NEXT_COID])
    pf[PF_NEXT_COID] = coid + 1
    mark_amend(orders, slot, coid, True)
    _put(records, count, Action.CANCEL, coid, target_client_order_id, strategy_id, symbol_id,
         orders[slot].side, OrderType.LIMIT, TimeInForce.GTC, orders[slot].price, orders[slot].leaves_qty,
         market_ts_ns, origin_ts_ns)
    pf[PF_INTENTS] += 1.0
    return coid


@njit(cache=True)
def send_replace(pf, orders, records, count, strategy_id, symbol_id, target_client_order_id, price, qty,
                 market_ts_ns, origin_ts_ns):
    """Queue a price/quantity change of an open order; the replace's client order id, 0 if the
    order is done or being cancelled, or an ERR_* code."""
    if not (qty > 0.0) or qty == math.inf or not (abs(price) < math.inf):
        return ERR_BAD_ORDER
    slot = find_order(orders, target_client_order_id)
    if slot < 0 or orders[slot].client_order_id != target_client_order_id:
        return 0
    if orders[slot].state == OrderState.PENDING_CANCEL or orders[slot].amend_client_order_id != 0:
        return 0
    if count[0] >= records.shape[0]:
        return ERR_INTENTS_FULL
    coid = int(pf[PF_NEXT_COID])
    pf[PF_NEXT_COID] = coid + 1
    mark_amend(orders, slot, coid, False)
    _put(records, count, Action.REPLACE, coid, target_client_order_id, strategy_id, symbol_id,
         orders[slot].side, OrderType.LIMIT, TimeInForce.GTC, price, qty, market_ts_ns, origin_ts_ns)
    pf[PF_INTENTS] += 1.0
    return coid
