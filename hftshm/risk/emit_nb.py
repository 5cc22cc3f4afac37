"""Writing risk's decisions as records: approved intents as ``order`` records for the OMS, rejects as
``execution_report`` (event REJECT) for the strategies, and the kill switch's cancels.

Outputs are addressed like a ring (``records[seq & mask]``, ``rec.seq = seq``) so the worker writes
straight into claimed ring slots; a plain array with ``mask = -1`` and ``seq = 0`` works too.

How an approved intent maps to an ``order`` (order_id 0: the OMS assigns it):
NEW      client_order_id = the intent's
CANCEL   client_order_id = the cancel request's own id, target_client_order_id = the order to cancel,
         target_order_id = its platform id when risk has seen its ack (else 0: the OMS resolves it)
REPLACE  like CANCEL, with the new price and the new open quantity (the order keeps its ids)

Kill-switch cancels: action CANCEL with ``flags = ORDER_FLAG_KILL_SWITCH`` and a negative
client_order_id (strategies' own ids are positive), one per open order risk knows of.
"""

from __future__ import annotations

import math

from numba import njit

from hftshm.codes import Action, OrderType, ReportEvent, TimeInForce
from hftshm.oms.reports_nb import write_report

ORDER_FLAG_KILL_SWITCH = 1  # order.flags bit: a cancel the risk worker sent because of the kill switch


@njit(cache=True, nogil=True)
def emit_decisions(intents, start, mask, n, decisions, target_order_ids, orders, orders_mask, order_seq,
                   reports, reports_mask, report_seq, publish_ns):
    """Write the ``n`` intents ``intents[(start + i) & mask]`` by decision; returns the number of
    orders (the rest are reports)."""
    n_orders = 0
    n_reports = 0
    for k in range(n):
        it = intents[(start + k) & mask]
        if decisions[k] == 0:
            seq = order_seq + n_orders
            o = orders[seq & orders_mask]
            o.seq = seq
            o.ts_ns = publish_ns
            o.origin_ts_ns = it.origin_ts_ns
            o.market_ts_ns = it.market_ts_ns
            o.order_id = 0
            o.client_order_id = it.client_order_id
            o.price = it.price
            o.qty = it.qty
            o.strategy_id = it.strategy_id
            o.symbol_id = it.symbol_id
            o.action = it.action
            o.side = it.side
            o.order_type = it.order_type
            o.tif = it.tif
            o.attempt = 0
            o.owner = it.strategy_id
            o.flags = 0
            if it.action == Action.NEW:
                o.target_order_id = 0
                o.target_client_order_id = 0
            else:
                o.target_order_id = target_order_ids[k]
                o.target_client_order_id = it.target_client_order_id
            n_orders += 1
        else:
            seq = report_seq + n_reports
            write_report(reports, seq & reports_mask, seq, it.market_ts_ns, publish_ns, it.origin_ts_ns, 0,
                         it.client_order_id, 0, it.price, it.qty, 0.0, 0.0, 0.0, it.strategy_id, it.symbol_id,
                         ReportEvent.REJECT, it.side, decisions[k], 0)
            n_reports += 1
    return n_orders


@njit(cache=True, nogil=True)
def emit_kill_cancels(table, cursor, orders, orders_mask, order_seq, max_n, publish_ns, market_ts_ns,
                      first_client_order_id):
    """Cancels for open orders not yet being cancelled, scanning the table from ``cursor``.

    Writes at most ``max_n``; returns ``(next_cursor, written)``. ``next_cursor == len(table)``
    means the scan is complete. Client ids are ``first_client_order_id - i`` (negative, descending).
    """
    written = 0
    i = cursor
    while i < len(table) and written < max_n:
        e = table[i]
        if e.used != 0 and e.cancel_sent == 0:
            seq = order_seq + written
            o = orders[seq & orders_mask]
            o.seq = seq
            o.ts_ns = publish_ns
            o.origin_ts_ns = publish_ns
            o.market_ts_ns = market_ts_ns
            o.order_id = 0
            o.client_order_id = first_client_order_id - written
            o.target_order_id = e.order_id
            o.target_client_order_id = e.client_order_id
            o.price = e.price if e.price > 0.0 else math.nan
            o.qty = e.leaves
            o.strategy_id = e.strategy_id
            o.symbol_id = e.symbol_id
            o.action = Action.CANCEL
            o.side = e.side
            o.order_type = OrderType.LIMIT
            o.tif = TimeInForce.GTC
            o.attempt = 0
            o.owner = e.strategy_id
            o.flags = ORDER_FLAG_KILL_SWITCH
            e.cancel_sent = 1
            written += 1
        i += 1
    return i, written
