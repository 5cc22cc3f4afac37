"""The matching loop: a batch of ``order`` records in, ``execution_report`` records out.

One call processes orders ``[start, stop)`` and stops early (returning where it stopped) only when
the output buffer might not hold the next order's reports: an order can at most execute against,
or self-trade-cancel, every resting order on the other side (two reports per execution, one per
STP cancel), plus its ack/replace and a final cancel. The caller drains the buffer and calls again.

Semantics (the CLI contract in ``hftshm.cli.exchange`` spells them out for users):
- every execution reports both sides at the resting order's price; ``partial`` while quantity
  remains, ``fill`` when none does; aggressor's report first, then the resting order's.
- self-trade prevention: a resting order of the aggressor's owner is cancelled (reason STP) and
  matching continues behind it; FOK counts only liquidity it may trade with.
- a replace's ``qty`` is the new OPEN quantity: a decrease at the same price keeps time priority,
  a price change or an increase goes to the back of the (new) level.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import Action, OrderType, Reason, ReportEvent, TimeInForce
from hftshm.exchange.order_book_nb import (BK_ORDERS, LV_COUNT, LV_HEAD, LV_PRICE, LV_TOTAL, OR_BOOK, OR_CLIENT_ID, OR_CUM,
                                     OR_ID, OR_LEAVES, OR_LEVEL, OR_NEXT, OR_ORIGIN_TS, OR_OWNER, OR_PRICE,
                                     OR_SIDE, OR_STRATEGY, OR_SYMBOL, OR_TIF, add_order, alloc_order,
                                     best_level, free_order, level_at_rank, unlink_order)
from hftshm.exchange.common_nb import (MAX_PRICE_TICKS, MAX_QTY_LOTS, SC_LOT, SC_LOT_INV, SC_TICK, SC_TICK_INV,
                                       check_codes, fill_fee, idmap_find, idmap_insert, idmap_remove, reject_order,
                                       to_float, to_units, write_report)

# engine statistics (stats[ST_*])
ST_SEQ = 0  # next report sequence number
ST_ORDERS = 1  # order records processed
ST_REJECTS = 2
ST_EXECUTIONS = 3
ST_STP_CANCELS = 4
ST_CANCELS = 5  # cancel requests that cancelled something
ST_REPLACES = 6
STATS_COLS = 8
STAT_NAMES = ("reports", "orders", "rejects", "executions", "stp_cancels", "cancels", "replaces")

MARKET_BUY_LIMIT = MAX_PRICE_TICKS * 4  # a market order's "limit": beyond every valid price
NO_ROOM = -1


@njit(cache=True, _nrt=False, inline="always")
def _crosses(side, limit_ticks, level_price):
    # side 0 buys: crosses asks priced at or below its limit
    return level_price <= limit_ticks if side == 0 else level_price >= limit_ticks


@njit(cache=True, _nrt=False, inline="always")
def _fok_available(orders, levels, ladder, book_i64, b, side, limit_ticks, owner, want_lots):
    """Lots the aggressor could trade (its own owner's orders excluded), stopping once ``want_lots`` is reached."""
    opp = 1 - side
    got = 0
    rank = 0
    while got < want_lots:
        lvl = level_at_rank(ladder, book_i64, b, opp, rank)
        if lvl < 0 or not _crosses(side, limit_ticks, levels[lvl, LV_PRICE]):
            break
        slot = levels[lvl, LV_HEAD]
        while slot != -1 and got < want_lots:
            if orders[slot, OR_OWNER] != owner:
                got += orders[slot, OR_LEAVES]
            slot = orders[slot, OR_NEXT]
        rank += 1
    return got


@njit(cache=True, _nrt=False, inline="always")
def _reject(out, j, stats, o, order_id, reason):
    reject_order(out, j, stats[ST_SEQ], o.ts_ns, o, reason)
    out[j].order_id = order_id
    stats[ST_SEQ] += 1
    stats[ST_REJECTS] += 1
    return j + 1


@njit(cache=True, _nrt=False)
def _match(ts_ns, order_id, client_id, origin_ts, strategy, symbol, owner, b, side, limit_ticks,
           leaves, cum, out, j, stats, scale, maker_bps, taker_bps,
           orders, levels, ladder, book_i64, free_orders, free_levels, id_table):
    """Trade an aggressor against the other side; returns (leaves, cum, j)."""
    opp = 1 - side
    tick = scale[b, SC_TICK]
    tick_inv = scale[b, SC_TICK_INV]
    lot = scale[b, SC_LOT]
    lot_inv = scale[b, SC_LOT_INV]
    while leaves > 0:
        lvl = best_level(ladder, book_i64, b, opp)
        if lvl < 0:
            break
        level_ticks = levels[lvl, LV_PRICE]
        if not _crosses(side, limit_ticks, level_ticks):
            break
        price = to_float(level_ticks, tick, tick_inv)
        slot = levels[lvl, LV_HEAD]
        # when the last order of the level goes, unlink_order frees the level and the outer loop
        # reads the new best; nothing adds levels in here, so lvl stays valid while orders remain
        while slot != -1 and leaves > 0:
            nxt = orders[slot, OR_NEXT]
            rest_leaves = orders[slot, OR_LEAVES]
            if orders[slot, OR_OWNER] == owner:
                write_report(out, j, stats[ST_SEQ], ts_ns, orders[slot, OR_ORIGIN_TS], orders[slot, OR_ID],
                             orders[slot, OR_CLIENT_ID], 0, price, to_float(rest_leaves, lot, lot_inv), 0.0,
                             to_float(orders[slot, OR_CUM], lot, lot_inv), 0.0, orders[slot, OR_STRATEGY],
                             orders[slot, OR_SYMBOL], ReportEvent.CANCEL, opp + 1, Reason.STP)
                j += 1
                stats[ST_SEQ] += 1
                stats[ST_STP_CANCELS] += 1
                unlink_order(orders, levels, ladder, book_i64, free_levels, slot)
                idmap_remove(id_table, orders[slot, OR_ID])
                free_order(book_i64, free_orders, b, slot)
                slot = nxt
                continue
            exec_lots = min(leaves, rest_leaves)
            leaves -= exec_lots
            cum += exec_lots
            qty = to_float(exec_lots, lot, lot_inv)
            write_report(out, j, stats[ST_SEQ], ts_ns, origin_ts, order_id, client_id, orders[slot, OR_ID],
                         price, qty, to_float(leaves, lot, lot_inv), to_float(cum, lot, lot_inv),
                         fill_fee(scale, b, price, qty, taker_bps), strategy, symbol,
                         ReportEvent.FILL if leaves == 0 else ReportEvent.PARTIAL, side + 1, Reason.NONE)
            rest_leaves -= exec_lots
            rest_cum = orders[slot, OR_CUM] + exec_lots
            write_report(out, j + 1, stats[ST_SEQ] + 1, ts_ns, orders[slot, OR_ORIGIN_TS], orders[slot, OR_ID],
                         orders[slot, OR_CLIENT_ID], order_id, price, qty, to_float(rest_leaves, lot, lot_inv),
                         to_float(rest_cum, lot, lot_inv), fill_fee(scale, b, price, qty, maker_bps),
                         orders[slot, OR_STRATEGY], orders[slot, OR_SYMBOL],
                         ReportEvent.FILL if rest_leaves == 0 else ReportEvent.PARTIAL, opp + 1, Reason.NONE)
            j += 2
            stats[ST_SEQ] += 2
            stats[ST_EXECUTIONS] += 1
            if rest_leaves == 0:
                unlink_order(orders, levels, ladder, book_i64, free_levels, slot)
                idmap_remove(id_table, orders[slot, OR_ID])
                free_order(book_i64, free_orders, b, slot)
            else:
                orders[slot, OR_LEAVES] = rest_leaves
                orders[slot, OR_CUM] = rest_cum
                levels[lvl, LV_TOTAL] -= exec_lots
            slot = nxt
    return leaves, cum, j


@njit(cache=True, _nrt=False, inline="always")
def _new_order(o, out, j, stats, sym_to_book, scale, maker_bps, taker_bps,
               orders, levels, ladder, book_i64, free_orders, free_levels, id_table):
    ts_ns = o.ts_ns
    b = sym_to_book[o.symbol_id]
    if b < 0:
        return _reject(out, j, stats, o, o.order_id, Reason.UNKNOWN_SYMBOL)
    reason = check_codes(o.action, o.side, o.order_type, o.tif)
    if reason != Reason.NONE:
        return _reject(out, j, stats, o, o.order_id, reason)
    side = np.int64(o.side) - 1
    is_market = o.order_type == OrderType.MARKET
    tif = TimeInForce.IOC if is_market else np.int64(o.tif)
    if is_market:
        limit_ticks = MARKET_BUY_LIMIT if side == 0 else -MARKET_BUY_LIMIT
    else:
        limit_ticks = to_units(o.price, scale[b, SC_TICK], scale[b, SC_TICK_INV], MAX_PRICE_TICKS)
        if limit_ticks < 0:
            return _reject(out, j, stats, o, o.order_id, Reason.BAD_PRICE)
    qty_lots = to_units(o.qty, scale[b, SC_LOT], scale[b, SC_LOT_INV], MAX_QTY_LOTS)
    if qty_lots < 0:
        return _reject(out, j, stats, o, o.order_id, Reason.BAD_QTY)
    if o.order_id <= 0:
        return _reject(out, j, stats, o, o.order_id, Reason.UNKNOWN_ORDER)
    if idmap_find(id_table, o.order_id) >= 0:
        return _reject(out, j, stats, o, o.order_id, Reason.DUPLICATE_ORDER_ID)
    rests = tif == TimeInForce.GTC or tif == TimeInForce.POST_ONLY
    slot = -1
    if rests:
        slot = alloc_order(book_i64, free_orders, b)
        if slot < 0:
            return _reject(out, j, stats, o, o.order_id, Reason.BOOK_FULL)
    opp_best = best_level(ladder, book_i64, b, 1 - side)
    if tif == TimeInForce.POST_ONLY and opp_best >= 0 and _crosses(side, limit_ticks, levels[opp_best, LV_PRICE]):
        free_order(book_i64, free_orders, b, slot)
        return _reject(out, j, stats, o, o.order_id, Reason.POST_ONLY_WOULD_CROSS)
    if tif == TimeInForce.FOK and _fok_available(orders, levels, ladder, book_i64, b, side, limit_ticks,
                                                  o.owner, qty_lots) < qty_lots:
        return _reject(out, j, stats, o, o.order_id, Reason.FOK_CANNOT_FILL)
    lot = scale[b, SC_LOT]
    lot_inv = scale[b, SC_LOT_INV]
    price = np.nan if is_market else to_float(limit_ticks, scale[b, SC_TICK], scale[b, SC_TICK_INV])
    qty = to_float(qty_lots, lot, lot_inv)
    write_report(out, j, stats[ST_SEQ], ts_ns, o.origin_ts_ns, o.order_id, o.client_order_id, 0, price, qty, qty,
                 0.0, 0.0, o.strategy_id, o.symbol_id, ReportEvent.ACK, side + 1, Reason.NONE)
    j += 1
    stats[ST_SEQ] += 1
    leaves = qty_lots
    cum = 0
    if opp_best >= 0:
        leaves, cum, j = _match(ts_ns, o.order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id,
                                o.symbol_id, o.owner, b, side, limit_ticks, leaves, cum, out, j, stats, scale,
                                maker_bps, taker_bps, orders, levels, ladder, book_i64, free_orders,
                                free_levels, id_table)
    if leaves == 0:
        if slot >= 0:
            free_order(book_i64, free_orders, b, slot)
        return j
    if not rests:
        write_report(out, j, stats[ST_SEQ], ts_ns, o.origin_ts_ns, o.order_id, o.client_order_id, 0, price,
                     to_float(leaves, lot, lot_inv), 0.0, to_float(cum, lot, lot_inv), 0.0, o.strategy_id,
                     o.symbol_id, ReportEvent.CANCEL, side + 1, Reason.IOC_REMAINDER)
        stats[ST_SEQ] += 1
        return j + 1
    orders[slot, OR_ID] = o.order_id
    orders[slot, OR_CLIENT_ID] = o.client_order_id
    orders[slot, OR_ORIGIN_TS] = o.origin_ts_ns
    orders[slot, OR_LEAVES] = leaves
    orders[slot, OR_CUM] = cum
    orders[slot, OR_BOOK] = b
    orders[slot, OR_OWNER] = o.owner
    orders[slot, OR_TIF] = tif
    orders[slot, OR_STRATEGY] = o.strategy_id
    orders[slot, OR_SYMBOL] = o.symbol_id
    add_order(orders, levels, ladder, book_i64, free_levels, b, side, limit_ticks, slot)
    idmap_insert(id_table, o.order_id, slot)
    return j


@njit(cache=True, _nrt=False, inline="always")
def _target_id(o):
    # a cancel/replace names its order in target_order_id; order_id alone is accepted too
    return o.target_order_id if o.target_order_id != 0 else o.order_id


@njit(cache=True, _nrt=False, inline="always")
def _cancel(o, out, j, stats, scale, orders, levels, ladder, book_i64, free_orders, free_levels, id_table):
    target = _target_id(o)
    slot = idmap_find(id_table, target) if target > 0 else -1
    if slot < 0:
        return _reject(out, j, stats, o, target, Reason.UNKNOWN_ORDER)
    b = orders[slot, OR_BOOK]
    lot = scale[b, SC_LOT]
    lot_inv = scale[b, SC_LOT_INV]
    write_report(out, j, stats[ST_SEQ], o.ts_ns, orders[slot, OR_ORIGIN_TS], target, orders[slot, OR_CLIENT_ID], 0,
                 to_float(orders[slot, OR_PRICE], scale[b, SC_TICK], scale[b, SC_TICK_INV]),
                 to_float(orders[slot, OR_LEAVES], lot, lot_inv), 0.0, to_float(orders[slot, OR_CUM], lot, lot_inv),
                 0.0, orders[slot, OR_STRATEGY], orders[slot, OR_SYMBOL], ReportEvent.CANCEL,
                 orders[slot, OR_SIDE] + 1, Reason.USER_CANCEL)
    stats[ST_SEQ] += 1
    stats[ST_CANCELS] += 1
    unlink_order(orders, levels, ladder, book_i64, free_levels, slot)
    idmap_remove(id_table, target)
    free_order(book_i64, free_orders, b, slot)
    return j + 1


@njit(cache=True, _nrt=False, inline="always")
def _replace(o, out, j, stats, scale, maker_bps, taker_bps,
             orders, levels, ladder, book_i64, free_orders, free_levels, id_table):
    target = _target_id(o)
    slot = idmap_find(id_table, target) if target > 0 else -1
    if slot < 0:
        return _reject(out, j, stats, o, target, Reason.UNKNOWN_ORDER)
    b = orders[slot, OR_BOOK]
    side = orders[slot, OR_SIDE]
    new_ticks = to_units(o.price, scale[b, SC_TICK], scale[b, SC_TICK_INV], MAX_PRICE_TICKS)
    if new_ticks < 0:
        return _reject(out, j, stats, o, target, Reason.BAD_PRICE)
    new_leaves = to_units(o.qty, scale[b, SC_LOT], scale[b, SC_LOT_INV], MAX_QTY_LOTS)
    if new_leaves < 0:
        return _reject(out, j, stats, o, target, Reason.BAD_QTY)
    opp_best = best_level(ladder, book_i64, b, 1 - side)
    crosses = opp_best >= 0 and _crosses(side, new_ticks, levels[opp_best, LV_PRICE])
    if crosses and orders[slot, OR_TIF] == TimeInForce.POST_ONLY:
        return _reject(out, j, stats, o, target, Reason.POST_ONLY_WOULD_CROSS)
    lot = scale[b, SC_LOT]
    lot_inv = scale[b, SC_LOT_INV]
    owner = orders[slot, OR_OWNER]
    write_report(out, j, stats[ST_SEQ], o.ts_ns, orders[slot, OR_ORIGIN_TS], target, orders[slot, OR_CLIENT_ID], 0,
                 to_float(new_ticks, scale[b, SC_TICK], scale[b, SC_TICK_INV]), to_float(new_leaves, lot, lot_inv),
                 to_float(new_leaves, lot, lot_inv), to_float(orders[slot, OR_CUM], lot, lot_inv), 0.0,
                 orders[slot, OR_STRATEGY], orders[slot, OR_SYMBOL], ReportEvent.REPLACE, side + 1, Reason.NONE)
    j += 1
    stats[ST_SEQ] += 1
    stats[ST_REPLACES] += 1
    old_leaves = orders[slot, OR_LEAVES]
    if new_ticks == orders[slot, OR_PRICE] and new_leaves <= old_leaves:
        # a decrease keeps time priority: shrink in place
        levels[orders[slot, OR_LEVEL], LV_TOTAL] -= old_leaves - new_leaves
        orders[slot, OR_LEAVES] = new_leaves
        return j
    unlink_order(orders, levels, ladder, book_i64, free_levels, slot)
    leaves = new_leaves
    cum = orders[slot, OR_CUM]
    if crosses:
        leaves, cum, j = _match(o.ts_ns, target, orders[slot, OR_CLIENT_ID], orders[slot, OR_ORIGIN_TS],
                                orders[slot, OR_STRATEGY], orders[slot, OR_SYMBOL], owner, b, side, new_ticks,
                                leaves, cum, out, j, stats, scale, maker_bps, taker_bps, orders, levels, ladder,
                                book_i64, free_orders, free_levels, id_table)
    if leaves == 0:
        idmap_remove(id_table, target)
        free_order(book_i64, free_orders, b, slot)
        return j
    orders[slot, OR_LEAVES] = leaves
    orders[slot, OR_CUM] = cum
    add_order(orders, levels, ladder, book_i64, free_levels, b, side, new_ticks, slot)
    return j


@njit(cache=True, _nrt=False)
def reports_needed(o, sym_to_book, orders, book_i64, id_table):
    """Upper bound on the reports one order can produce (see the module docstring)."""
    if o.action == Action.CANCEL:
        return 1
    if o.action == Action.NEW:
        b = sym_to_book[o.symbol_id]
    else:
        target = _target_id(o)
        slot = idmap_find(id_table, target) if target > 0 else -1
        if slot < 0:
            return 1
        b = orders[slot, OR_BOOK]
    if b < 0:
        return 1
    return 2 * (book_i64[b, BK_ORDERS] + book_i64[b, BK_ORDERS + 1]) + 4


@njit(cache=True, _nrt=False)
def process_orders(orders_in, start, stop, out, j, stats, sym_to_book, scale, maker_bps, taker_bps,
                   orders, levels, ladder, book_i64, free_orders, free_levels, id_table):
    """Process ``orders_in[start:stop]`` writing reports from ``out[j]``; returns (next order, next j)."""
    cap = len(out)
    i = start
    while i < stop:
        o = orders_in[i]
        if cap - j < reports_needed(o, sym_to_book, orders, book_i64, id_table):
            break
        if o.action == Action.NEW:
            j = _new_order(o, out, j, stats, sym_to_book, scale, maker_bps, taker_bps,
                           orders, levels, ladder, book_i64, free_orders, free_levels, id_table)
        elif o.action == Action.CANCEL:
            j = _cancel(o, out, j, stats, scale, orders, levels, ladder, book_i64, free_orders, free_levels,
                        id_table)
        elif o.action == Action.REPLACE:
            j = _replace(o, out, j, stats, scale, maker_bps, taker_bps,
                         orders, levels, ladder, book_i64, free_orders, free_levels, id_table)
        else:
            j = _reject(out, j, stats, o, o.order_id, Reason.MALFORMED_ORDER)
        stats[ST_ORDERS] += 1
        i += 1
    return i, j


@njit(cache=True, _nrt=False)
def top_levels(levels, ladder, book_i64, b, side, n, out_ticks, out_lots, out_count):
    """Best ``n`` levels of one side: price ticks, lots and order count; returns how many exist."""
    k = 0
    while k < n:
        lvl = level_at_rank(ladder, book_i64, b, side, k)
        if lvl < 0:
            break
        out_ticks[k] = levels[lvl, LV_PRICE]
        out_lots[k] = levels[lvl, LV_TOTAL]
        out_count[k] = levels[lvl, LV_COUNT]
        k += 1
    return k
