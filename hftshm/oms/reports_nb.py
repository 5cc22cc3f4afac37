"""The one writer of an ``execution_report`` record, for every kernel that makes one (risk, the OMS, the exchange).

Every field of the layout (layouts/execution_report.toml) is set here, in layout order, so a
report never leaves with a field left over from the ring slot's previous record, and a field added
to the layout has one place to be filled. Inlined into the caller (numba IR inlining): no call.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True, inline="always")
def write_report(records, k, seq, exch_ts_ns, local_ts_ns, origin_ts_ns, order_id, client_order_id,
                 contra_order_id, price, qty, leaves_qty, cum_qty, fee, strategy_id, symbol_id, event, side, reason,
                 flags):
    """``records[k]`` = the report with these fields (all 18 of the layout)."""
    r = records[k]
    r.seq = seq
    r.exch_ts_ns = exch_ts_ns
    r.local_ts_ns = local_ts_ns
    r.origin_ts_ns = origin_ts_ns
    r.order_id = order_id
    r.client_order_id = client_order_id
    r.contra_order_id = contra_order_id
    r.price = price
    r.qty = qty
    r.leaves_qty = leaves_qty
    r.cum_qty = cum_qty
    r.fee = fee
    r.strategy_id = strategy_id
    r.symbol_id = symbol_id
    r.event = event
    r.side = side
    r.reason = reason
    r.flags = flags
