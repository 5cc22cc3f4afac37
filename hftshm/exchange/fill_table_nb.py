"""The fill model's table of our orders: its columns and words, the reports it writes about an order,
and the list of our resting orders (time priority among ours).

Shared by the fill model's parts (``fill_model_nb`` entry and event pass, ``queue_position_nb``,
``consumed_liquidity_nb``); the state tuple ``S`` they all take is unpacked as in ``_emit``.
"""

from __future__ import annotations

from numba import njit

from hftshm.codes import Reason, ReportEvent
from hftshm.exchange.common_nb import (SC_LOT, SC_LOT_INV, SC_TICK, SC_TICK_INV, fill_fee, idmap_remove,
                                       reject_order, to_float, write_report)
from hftshm.exchange.latency_nb import draw

# report flags: how a fill happened
LIQ_TAKER = 1  # our order took visible liquidity
LIQ_QUEUE = 2  # a trade at our price reached us in the queue
LIQ_TRADE_THROUGH = 3  # a trade printed through our price
LIQ_BOOK_CROSS = 4  # the visible opposite book crossed our price

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


@njit(cache=True, _nrt=False)
def _passive_fill(S, out, j, slot, ts, lots, liquidity):
    """A resting order fills ``lots``: its report, and a fully filled order leaves the book (off the
    active list, its slot freed). Returns (next report index, 1 if it left the active list else 0):
    the callers walk that list and step back over the entry removed under them."""
    scale, so, sw, params = S[0], S[6], S[11], S[12]
    b = so[slot, SO_BOOK]
    so[slot, SO_LEAVES] -= lots
    so[slot, SO_CUM] += lots
    sw[SW_FILLS] += 1
    event = ReportEvent.FILL if so[slot, SO_LEAVES] == 0 else ReportEvent.PARTIAL
    price = to_float(so[slot, SO_PRICE], scale[b, SC_TICK], scale[b, SC_TICK_INV])
    j = _emit(S, out, j, slot, ts, event, price, lots, Reason.NONE, params[P_MAKER_BPS], liquidity)
    if so[slot, SO_LEAVES] == 0:
        _unlist(S, slot)
        _release(S, slot)
        return j, 1
    return j, 0


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
