"""A strategy's position, PnL and open orders, as numba kernels over two small arrays.

This is the one implementation of that bookkeeping: the Python ``Portfolio`` (portfolio.py) and the
compiled backtest loop both call these kernels, so a strategy run as Python or as a kernel gets the
same numbers from the same execution reports.

State lives in

* ``pf``: float64 vector indexed by the ``PF_*`` constants (position, average price, PnL, fees,
  counters). Counters are floats so the whole state is one array; they stay exact below 2**53.
* ``orders``: structured array of ``OPEN_ORDER_DTYPE``, one slot per order the strategy has sent
  and not seen finish (state 0 = free slot). Small (tens of slots): a linear scan is cheaper than
  any hash table at that size and needs no allocation.

Average-cost accounting: a fill that extends the position moves the average price; a fill that
reduces it realizes the closed quantity's PnL (sign by side); a fill past flat opens the remainder at
the fill price. The instrument is part of the state (``PF_MARKET``, ``PF_CONTRACT_SIZE``, set once by
``new_state``): spot and linear (USD-M) realize ``closed_qty * (price - avg)`` in the quote currency;
inverse (COIN-M) quantities are contracts of ``contract_size`` USD and realize ``closed_qty *
contract_size * (1/avg - 1/price)`` in the coin, with a harmonic average entry
(``hftshm.instruments_nb``). Fees are in the same unit as the PnL (the exchange charges an inverse
fill in the coin).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hftshm import instruments_nb
from hftshm.codes import OrderState, ReportEvent, Side
from hftshm.runtime.warm_types import int64_scalars

PF_POSITION = 0
PF_AVG_PRICE = 1
PF_REALIZED = 2
PF_FEES = 3
PF_TRADED_QTY = 4
PF_TRADED_NOTIONAL = 5
PF_MID = 6
PF_FILLS = 7
PF_REJECTS = 8
PF_CANCELS = 9
PF_OPEN_ORDERS = 10
PF_INTENTS = 11
PF_SIGNALS = 12
PF_NEXT_COID = 13
PF_ACKS = 14
PF_BUY_QTY = 15
PF_SELL_QTY = 16
PF_LAST_FILL_TS = 17
PF_MAKER_FILLS = 18
PF_FAULT = 19  # a compiled strategy's first error code (intents_nb.ERR_*), 0 while healthy
PF_MARKET = 20  # hftshm.symbols.Market of the strategy's symbol (0 spot, 1 linear, 2 inverse)
PF_CONTRACT_SIZE = 21  # USD per contract on an inverse market (1 otherwise)
PF_NEW_ORDERS = 22  # new orders sent (PF_INTENTS counts cancels and replaces too)
PF_SIZE = 24

# position and quantities are snapped to this grid: lot sizes are >= 1e-8, and sums of float lots
# otherwise drift (0.1 + 0.2 != 0.3) until "flat" is 1e-17 and never exactly zero
QTY_EPS = 1e-9

OPEN_ORDER_DTYPE = np.dtype([
    ("client_order_id", "i8"),
    ("amend_client_order_id", "i8"),  # the cancel/replace intent in flight for this order (0: none)
    ("state", "i8"),  # hftshm.codes.OrderState; 0 = free slot
    ("side", "i8"),
    ("price", "f8"),
    ("qty", "f8"),
    ("leaves_qty", "f8"),
    ("sent_ts_ns", "i8"),  # market time the intent was created
])

# what apply_report did, for the caller's counters
APPLIED_NOTHING = 0
APPLIED_ACK = 1
APPLIED_REJECT = 2
APPLIED_FILL = 3
APPLIED_CANCEL = 4
APPLIED_REPLACE = 5
APPLIED_CANCEL_REJECTED = 6


def new_state(first_client_order_id: int = 1, market: int = instruments_nb.LINEAR,
              contract_size: float = 1.0) -> np.ndarray:
    pf = np.zeros(PF_SIZE, dtype=np.float64)
    pf[PF_AVG_PRICE] = np.nan
    pf[PF_MID] = np.nan
    pf[PF_NEXT_COID] = first_client_order_id
    pf[PF_MARKET] = int(market)
    pf[PF_CONTRACT_SIZE] = float(contract_size)
    return pf


def new_orders(capacity: int = 64) -> np.ndarray:
    return np.zeros(capacity, dtype=OPEN_ORDER_DTYPE)


@njit(cache=True, inline="always")
def snap_qty(qty: float) -> float:
    return round(qty, 9)


@njit(cache=True)
def apply_fill(pf, side, price, qty, fee, ts_ns):
    """Book one execution into position, average price, realized PnL and fees."""
    signed = qty if side == Side.BUY else -qty
    pos = pf[PF_POSITION]
    avg = pf[PF_AVG_PRICE]
    inverse = pf[PF_MARKET] == instruments_nb.INVERSE
    contract_size = pf[PF_CONTRACT_SIZE]
    if pos == 0.0 or (pos > 0.0) == (signed > 0.0):
        total = abs(pos) + qty
        if pos == 0.0:
            avg = price
        elif inverse:
            avg = instruments_nb.average_entry(instruments_nb.INVERSE, abs(pos), avg, qty, price)
        else:
            avg = (avg * abs(pos) + price * qty) / total
    else:
        closed = min(qty, abs(pos))
        direction = 1.0 if pos > 0.0 else -1.0
        if inverse:
            pf[PF_REALIZED] += instruments_nb.position_pnl(instruments_nb.INVERSE, closed * direction, avg, price,
                                                           contract_size)
        else:
            pf[PF_REALIZED] += closed * (price - avg) * direction
        if qty > abs(pos) + QTY_EPS:
            avg = price  # flipped: the remainder opens at this fill's price
    new_pos = snap_qty(pos + signed)
    pf[PF_POSITION] = new_pos
    pf[PF_AVG_PRICE] = avg if new_pos != 0.0 else np.nan
    pf[PF_FEES] += fee
    pf[PF_TRADED_QTY] += qty
    if inverse:
        pf[PF_TRADED_NOTIONAL] += instruments_nb.notional(instruments_nb.INVERSE, qty, price, contract_size)
    else:
        pf[PF_TRADED_NOTIONAL] += qty * price
    if side == Side.BUY:
        pf[PF_BUY_QTY] += qty
    else:
        pf[PF_SELL_QTY] += qty
    pf[PF_FILLS] += 1.0
    pf[PF_LAST_FILL_TS] = ts_ns


@njit(cache=True)
def unrealized(pf, mid):
    """The open position marked at ``mid`` (0 when flat or when there is no mid); the PnL unit of
    the instrument (quote currency, or the coin on an inverse market)."""
    pos = pf[PF_POSITION]
    if pos == 0.0 or math.isnan(mid):
        return 0.0
    if pf[PF_MARKET] == instruments_nb.INVERSE:
        return instruments_nb.position_pnl(instruments_nb.INVERSE, pos, pf[PF_AVG_PRICE], mid, pf[PF_CONTRACT_SIZE])
    return pos * (mid - pf[PF_AVG_PRICE])


@njit(cache=True)
def find_order(orders, client_order_id):
    """Slot of the open order with this client order id, or of the order a cancel/replace with
    this id acts on; -1 if none."""
    for i in range(orders.shape[0]):
        if orders[i].state != 0 and orders[i].client_order_id == client_order_id:
            return i
    for i in range(orders.shape[0]):
        if orders[i].state != 0 and orders[i].amend_client_order_id == client_order_id:
            return i
    return -1


@njit(cache=True)
def add_order(pf, orders, client_order_id, side, price, qty, ts_ns):
    """Record an order the strategy is sending; the slot, or -1 when the table is full."""
    for i in range(orders.shape[0]):
        if orders[i].state == 0:
            orders[i].client_order_id = client_order_id
            orders[i].amend_client_order_id = 0
            orders[i].state = OrderState.NEW
            orders[i].side = side
            orders[i].price = price
            orders[i].qty = qty
            orders[i].leaves_qty = qty
            orders[i].sent_ts_ns = ts_ns
            pf[PF_OPEN_ORDERS] += 1.0
            return i
    return -1


@njit(cache=True)
def mark_amend(orders, slot, amend_client_order_id, cancel):
    """A cancel (or replace) intent for the order in ``slot`` is in flight."""
    orders[slot].amend_client_order_id = amend_client_order_id
    if cancel:
        orders[slot].state = OrderState.PENDING_CANCEL


@njit(cache=True)
def _free(pf, orders, slot):
    orders[slot].state = 0
    orders[slot].client_order_id = 0
    orders[slot].amend_client_order_id = 0
    orders[slot].leaves_qty = 0.0
    pf[PF_OPEN_ORDERS] -= 1.0


@int64_scalars
@njit(cache=True)
def apply_report(pf, orders, event, client_order_id, side, price, qty, leaves_qty, fee, ts_ns, maker):
    """Apply one execution report; returns APPLIED_* saying what it was.

    A fill for an order not in the table (sent before a restart, say) still moves the position:
    the position must follow what the exchange did, whatever the strategy remembers.
    """
    slot = find_order(orders, client_order_id)
    if event == ReportEvent.ACK:
        pf[PF_ACKS] += 1.0
        if slot >= 0 and orders[slot].state == OrderState.NEW:
            orders[slot].state = OrderState.ACKNOWLEDGED
        return APPLIED_ACK
    if event == ReportEvent.PARTIAL or event == ReportEvent.FILL:
        fill_side = side
        if slot >= 0:
            fill_side = orders[slot].side
        apply_fill(pf, fill_side, price, qty, fee, ts_ns)
        if maker:
            pf[PF_MAKER_FILLS] += 1.0
        if slot >= 0:
            remaining = snap_qty(min(leaves_qty, orders[slot].leaves_qty - qty))
            if event == ReportEvent.FILL or remaining <= 0.0:
                _free(pf, orders, slot)
            else:
                orders[slot].leaves_qty = remaining
                if orders[slot].state != OrderState.PENDING_CANCEL:
                    orders[slot].state = OrderState.PARTIALLY_FILLED
        return APPLIED_FILL
    if event == ReportEvent.CANCEL:
        pf[PF_CANCELS] += 1.0
        if slot >= 0:
            _free(pf, orders, slot)
        return APPLIED_CANCEL
    if event == ReportEvent.REPLACE:
        if slot >= 0:
            orders[slot].price = price
            orders[slot].leaves_qty = qty
            orders[slot].qty = qty
            if orders[slot].amend_client_order_id == client_order_id:
                orders[slot].client_order_id = client_order_id
            orders[slot].amend_client_order_id = 0
            orders[slot].state = OrderState.ACKNOWLEDGED
            if qty <= 0.0:
                _free(pf, orders, slot)
        return APPLIED_REPLACE
    if event == ReportEvent.REJECT:
        pf[PF_REJECTS] += 1.0
        if slot < 0:
            return APPLIED_REJECT
        if orders[slot].client_order_id != client_order_id:
            # the cancel/replace was refused; the order itself still stands
            _drop_amend(orders, slot)
            return APPLIED_CANCEL_REJECTED
        _free(pf, orders, slot)
        return APPLIED_REJECT
    return APPLIED_NOTHING


@njit(cache=True)
def _drop_amend(orders, slot):
    orders[slot].amend_client_order_id = 0
    if orders[slot].state == OrderState.PENDING_CANCEL:
        full = orders[slot].leaves_qty >= orders[slot].qty
        orders[slot].state = OrderState.ACKNOWLEDGED if full else OrderState.PARTIALLY_FILLED


@njit(cache=True)
def forget_intent(pf, orders, client_order_id):
    """Undo the bookkeeping of an intent that will never be sent (its callback raised)."""
    pf[PF_INTENTS] -= 1.0
    slot = find_order(orders, client_order_id)
    if slot < 0:
        return
    if orders[slot].client_order_id == client_order_id:  # a new order's own id: it was a new order
        pf[PF_NEW_ORDERS] -= 1.0
        _free(pf, orders, slot)
    else:
        _drop_amend(orders, slot)


@njit(cache=True)
def open_qty(orders, side):
    """Quantity still open (not known filled or cancelled) on one side, pending cancels included:
    until the exchange confirms a cancel, the order can still fill."""
    total = 0.0
    for i in range(orders.shape[0]):
        if orders[i].state != 0 and orders[i].side == side:
            total += orders[i].leaves_qty
    return total
