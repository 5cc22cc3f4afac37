"""Kernels shared by the matching engine and the replay fill model.

Prices and quantities live as integers inside the exchange (``price_ticks``, ``qty_lots``): fills
then conserve quantity exactly, and a level's total is a sum of integers, not of floats that drift.
They turn back into floats only when a report is written, by dividing by an integral ``1/tick``
when there is one (``618001 / 10`` is exactly the double nearest 61800.1, ``618001 * 0.1`` is not).

The order-id map is an open-addressing hash table (linear probing, backward-shift deletion, so no
tombstones pile up under a long cancel-heavy run). Key 0 marks an empty slot: order ids are > 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import Action, OrderType, Reason, Side, TimeInForce
from hftshm.oms.reports_nb import write_report as write_any_report

# Beyond these an order is "huge": rejected, so totals of many orders cannot overflow int64.
MAX_PRICE_TICKS = 1_000_000_000_000_000
MAX_QTY_LOTS = 1_000_000_000_000
# How far off the tick/lot grid a float may be and still count as on it (float noise, not intent).
GRID_TOLERANCE = 1e-6

# columns of the per-symbol scale table (float64 [n_books, SCALE_COLS])
SC_TICK = 0  # tick size
SC_TICK_INV = 1  # 1/tick when that is an integer, else 0
SC_LOT = 2
SC_LOT_INV = 3
SC_CONTRACT_USD = 4  # inverse (COIN-M): USD per contract, fees in the coin; 0 for spot/linear
SCALE_COLS = 5

INVALID = -1  # a conversion that failed (off grid, NaN, <= 0, huge)


@njit(cache=True, _nrt=False, inline="always")
def fill_fee(scale, b, price, qty, fee_bps):
    """The fee of a fill in the unit the venue charges it: the quote currency (price x qty) on spot and
    linear markets, the coin (contracts x contract size / price) on inverse ones."""
    if fee_bps == 0.0:
        return 0.0
    contract_usd = scale[b, SC_CONTRACT_USD]
    if contract_usd > 0.0:
        return qty * contract_usd / price * fee_bps * 1e-4
    return price * qty * fee_bps * 1e-4


@njit(cache=True, _nrt=False, inline="always")
def to_units(value, unit, unit_inv, max_units):
    """``value`` as a whole number of ``unit`` (ticks or lots), or INVALID."""
    if not (value > 0.0) or value != value or value > 1e300:
        return INVALID
    if unit_inv > 0.0:
        exact = value * unit_inv
    else:
        exact = value / unit
    if exact > max_units:
        return INVALID
    units = np.int64(np.floor(exact + 0.5))
    if units <= 0 or abs(exact - units) > GRID_TOLERANCE * max(1.0, exact * 1e-9):
        return INVALID
    return units


@njit(cache=True, _nrt=False, inline="always")
def to_float(units, unit, unit_inv):
    """Back to a float, as the double nearest the decimal value when 1/unit is integral."""
    if unit_inv > 0.0:
        return units / unit_inv
    return units * unit


@njit(cache=True, _nrt=False, inline="always")
def nearest_units(value, unit, unit_inv):
    """Round a market quantity/price to the grid (market data is trusted, not validated)."""
    if not (value > 0.0) or value > 1e300:
        return 0
    exact = value * unit_inv if unit_inv > 0.0 else value / unit
    if exact > MAX_QTY_LOTS * 1000.0:
        return 0
    return np.int64(np.floor(exact + 0.5))


@njit(cache=True, _nrt=False, inline="always")
def check_codes(action, side, order_type, tif):
    """Reason.NONE if the enum fields of a new order are known codes, else MALFORMED_ORDER."""
    if side != Side.BUY and side != Side.SELL:
        return Reason.MALFORMED_ORDER
    if order_type != OrderType.LIMIT and order_type != OrderType.MARKET:
        return Reason.MALFORMED_ORDER
    if order_type == OrderType.LIMIT and (tif < TimeInForce.GTC or tif > TimeInForce.POST_ONLY):
        return Reason.MALFORMED_ORDER
    return Reason.NONE


@njit(cache=True, _nrt=False, inline="always")
def is_known_action(action):
    return action == Action.NEW or action == Action.CANCEL or action == Action.REPLACE


# ---------------------------------------------------------------- order id -> slot hash map
# One int64 table of (key, value) rows, so a lookup touches one cache line, not two. The home slot
# keeps runs of 16 consecutive ids together (ids from one OMS counter are consecutive, and the
# live ones are mostly recent: their entries share cache lines) while the block number is
# scrambled, so strided or adversarial ids still spread over the table.

BLOCK_BITS = 4


@njit(cache=True, _nrt=False, inline="always")
def _home(key, mask):
    block = np.uint64(key) >> np.uint64(BLOCK_BITS)
    h = block * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    mixed = (h << np.uint64(BLOCK_BITS)) | (np.uint64(key) & np.uint64((1 << BLOCK_BITS) - 1))
    return np.int64(mixed & np.uint64(mask))


@njit(cache=True, _nrt=False, inline="always")
def idmap_find(table, key):
    """Value stored for ``key`` or -1."""
    mask = len(table) - 1
    i = _home(key, mask)
    while True:
        k = table[i, 0]
        if k == key:
            return table[i, 1]
        if k == 0:
            return -1
        i = (i + 1) & mask


@njit(cache=True, _nrt=False, inline="always")
def idmap_insert(table, key, value):
    """Insert or overwrite; the table is sized so it never fills (see idmap_new)."""
    mask = len(table) - 1
    i = _home(key, mask)
    while table[i, 0] != 0 and table[i, 0] != key:
        i = (i + 1) & mask
    table[i, 0] = key
    table[i, 1] = value


@njit(cache=True, _nrt=False, inline="always")
def idmap_remove(table, key):
    mask = len(table) - 1
    i = _home(key, mask)
    while True:
        if table[i, 0] == key:
            break
        if table[i, 0] == 0:
            return False
        i = (i + 1) & mask
    # backward shift: pull later entries of the probe run into the hole when their home allows it
    j = i
    while True:
        j = (j + 1) & mask
        k = table[j, 0]
        if k == 0:
            break
        home = _home(k, mask)
        if i <= j:
            stays = i < home <= j
        else:
            stays = home > i or home <= j
        if stays:
            continue
        table[i, 0] = k
        table[i, 1] = table[j, 1]
        i = j
    table[i, 0] = 0
    table[i, 1] = -1
    return True


def idmap_new(n_slots: int) -> np.ndarray:
    """An empty table for up to ``n_slots`` live keys: a power of two >= 4 * n_slots rows (load <= 1/4
    keeps probe runs short even though ids arrive in blocks)."""
    size = 64
    while size < 4 * n_slots:
        size *= 2
    table = np.zeros((size, 2), dtype=np.int64)
    table[:, 1] = -1
    return table


# ---------------------------------------------------------------- reports

@njit(cache=True, _nrt=False, inline="always")
def write_report(out, j, seq, exch_ts_ns, origin_ts_ns, order_id, client_order_id, contra_order_id,
                 price, qty, leaves_qty, cum_qty, fee, strategy_id, symbol_id, event, side, reason):
    """The exchange's reports through the layout's one writer (``oms.reports_nb``): the venue sets
    no local time (the receiver does) and no flags."""
    write_any_report(out, j, seq, exch_ts_ns, 0, origin_ts_ns, order_id, client_order_id, contra_order_id, price,
                     qty, leaves_qty, cum_qty, fee, strategy_id, symbol_id, event, side, reason, 0)


@njit(cache=True, _nrt=False, inline="always")
def reject_order(out, j, seq, exch_ts_ns, o, reason):
    """A reject echoes what was sent (price/qty as given, NaN included); nothing is open after it."""
    write_report(out, j, seq, exch_ts_ns, o.origin_ts_ns, o.order_id, o.client_order_id, 0,
                 o.price, o.qty, 0.0, 0.0, 0.0, o.strategy_id, o.symbol_id, 2, o.side, reason)
