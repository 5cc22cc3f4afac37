"""What the OMS kernels write, and the bookkeeping every transition shares (numba).

Constants of the argument bundles (``hftshm.oms.oms_nb`` documents them), the counters, and the
helpers that stage an order event, an order for the exchange or a report for strategies and risk,
arm an ack timer, refuse an event, retire a finished order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import Action, Reason, ReportEvent
from hftshm.codes import OrderEventKind as E
from hftshm.oms.order_table_nb import FLAG_ACKED, PENDING_NONE, PENDING_REPLACE, retire_slot
from hftshm.oms.reports_nb import write_report
from hftshm.runtime.warm_types import int64_scalars

ID_SHIFT = 40  # order and event ids: run epoch << 40 | counter (2**40 ids per run)
NO_DEADLINE = np.int64(2**62)

# ctl words
O_EPOCH = 0
O_NEXT_ORDER = 1  # last order counter used
O_NEXT_EVENT = 2  # last event counter used
O_TIMERS = 3  # entries in the timer list
O_NEXT_DEADLINE = 4  # earliest deadline in the timer list (a lower bound)
O_RECENT_NEXT = 5  # slots noted in the O_RECENT ring so far
# hints for the idle prefetch of the next orders' lines (hftshm.oms.next_lines_nb), never state:
HINT_CLIENTS = 16  # (strategy id, its last client order id) pairs, by strategy id modulo
HINT_RECENT = 16  # the last slots written (slot + 1; 0: none)
O_CLIENTS = 8
O_RECENT = O_CLIENTS + 2 * HINT_CLIENTS
O_WORDS = O_RECENT + HINT_RECENT

# out counts
C_ORDERS = 0
C_REPORTS = 1
C_EVENTS = 2

# event flags: what the order awaits after the event, and whether the exchange has seen it
EVENT_PENDING_MASK = 3
EVENT_FLAG_ACKED = 4

STAT_NAMES = (
    "orders_in",  # order records consumed from risk
    "reports_in",  # execution reports consumed from the exchange
    "orders_created",
    "duplicates",  # intents refused: the (strategy, client order id) already names an order
    "illegal_transitions",  # events refused: not legal in the order's state
    "stale_reports",  # fills already applied (a replay after a restart)
    "unknown_order_reports",  # reports for an order id the OMS does not know
    "rejects_sent",  # rejects the OMS itself sent to strategies and risk
    "resends",
    "retries_exhausted",  # alerts: a request never confirmed
    "table_full",
    "malformed",  # order or report records with unknown codes or bad numbers
    "events",
    "fills",
    "cancels_requested",
    "replaces_requested",
    "venue_sessions",  # new exchange sessions (after an exchange restart) the OMS logged on to
    "venue_cancels",  # orders cancelled because the exchange session they lived in ended
)
ST_ORDERS_IN = 0
ST_REPORTS_IN = 1
ST_CREATED = 2
ST_DUPLICATES = 3
ST_ILLEGAL = 4
ST_STALE = 5
ST_UNKNOWN_REPORTS = 6
ST_REJECTS = 7
ST_RESENDS = 8
ST_EXHAUSTED = 9
ST_TABLE_FULL = 10
ST_MALFORMED = 11
ST_EVENTS = 12
ST_FILLS = 13
ST_CANCELS = 14
ST_REPLACES = 15
ST_VENUE_SESSIONS = 16
ST_VENUE_CANCELS = 17
ST_WORDS = 18


@njit(cache=True, inline="always")
def staging_room(out, n_orders, n_reports, n_events):
    counts = out[3]
    return (counts[C_ORDERS] + n_orders <= out[0].shape[0] and counts[C_REPORTS] + n_reports <= out[1].shape[0]
            and counts[C_EVENTS] + n_events <= out[2].shape[0])


@int64_scalars
@njit(cache=True)
def emit_event(ctl, out, orders, slot, kind, prev_state, reason, exch_ts_ns, wall_ns, exec_price, exec_qty, fee):
    words = ctl[1]
    events = out[2]
    counts = out[3]
    k = counts[C_EVENTS]
    counts[C_EVENTS] = k + 1
    ctl[2][ST_EVENTS] += 1
    words[O_NEXT_EVENT] += 1
    o = orders[slot]
    ev = events[k]
    ev.event_id = (words[O_EPOCH] << ID_SHIFT) | words[O_NEXT_EVENT]
    ev.order_id = o.order_id
    ev.client_order_id = o.client_order_id
    ev.exch_ts_ns = exch_ts_ns
    ev.local_ts_ns = wall_ns
    ev.created_ts_ns = o.created_ts_ns
    ev.price = o.price
    ev.qty = o.qty
    ev.exec_price = exec_price
    ev.exec_qty = exec_qty
    ev.cum_qty = o.cum_qty
    ev.leaves_qty = o.leaves_qty
    ev.fee = fee
    ev.request_client_order_id = o.request_client_order_id
    ev.strategy_id = o.strategy_id
    ev.symbol_id = o.symbol_id
    ev.kind = kind
    ev.state = o.state
    ev.prev_state = prev_state
    ev.side = o.side
    ev.order_type = o.order_type
    ev.tif = o.tif
    ev.reason = reason
    ev.attempt = o.attempt
    flags = o.pending & EVENT_PENDING_MASK
    if o.flags & FLAG_ACKED:
        flags |= EVENT_FLAG_ACKED
    ev.flags = flags
    ev.pending_price = o.pending_price if o.pending == PENDING_REPLACE else np.nan
    ev.pending_qty = o.pending_qty if o.pending == PENDING_REPLACE else 0.0


@njit(cache=True)
def send_order(out, orders, slot, action, client_order_id, price, qty, now_ns):
    counts = out[3]
    k = counts[C_ORDERS]
    counts[C_ORDERS] = k + 1
    o = orders[slot]
    r = out[0][k]
    r.seq = 0
    r.ts_ns = now_ns
    r.origin_ts_ns = o.origin_ts_ns
    r.market_ts_ns = o.market_ts_ns
    r.order_id = o.order_id
    r.client_order_id = client_order_id
    if action == Action.NEW:
        r.target_order_id = 0
        r.target_client_order_id = 0
    else:
        r.target_order_id = o.order_id
        r.target_client_order_id = o.client_order_id
    r.price = price
    r.qty = qty
    r.strategy_id = o.strategy_id
    r.symbol_id = o.symbol_id
    r.action = action
    r.side = o.side
    r.order_type = o.order_type
    r.tif = o.tif
    r.attempt = o.attempt
    r.owner = o.owner
    r.flags = 0


@njit(cache=True)
def emit_report(ctl, out, event, order_id, client_order_id, strategy_id, symbol_id, side, price, qty, cum_qty,
            reason, origin_ts_ns, now_ns):
    """A report the OMS itself originates (its rejects) for the strategies and risk."""
    counts = out[3]
    k = counts[C_REPORTS]
    counts[C_REPORTS] = k + 1
    ctl[2][ST_REJECTS] += 1
    write_report(out[1], k, 0, 0, now_ns, origin_ts_ns, order_id, client_order_id, 0, price, qty, 0.0, cum_qty, 0.0,
                 strategy_id, symbol_id, event, side, reason, 0)


@njit(cache=True)
def reject_request(ctl, out, rec, order_id, reason, now_ns):
    emit_report(ctl, out, ReportEvent.REJECT, order_id, rec.client_order_id, rec.strategy_id, rec.symbol_id, rec.side,
            rec.price, rec.qty, 0.0, reason, rec.origin_ts_ns, now_ns)


@njit(cache=True)
def forward_report(out, rep, now_ns, event, reason, client_order_id):
    """An exchange report passed on to the strategies and risk, as ``event``/``reason``, naming the
    order by ``client_order_id`` (the report's own, or the order's when the report ends the order)."""
    counts = out[3]
    k = counts[C_REPORTS]
    counts[C_REPORTS] = k + 1
    write_report(out[1], k, 0, rep.exch_ts_ns, now_ns, rep.origin_ts_ns, rep.order_id, client_order_id,
                 rep.contra_order_id, rep.price, rep.qty, rep.leaves_qty, rep.cum_qty, rep.fee, rep.strategy_id,
                 rep.symbol_id, event, rep.side, reason, rep.flags)


@njit(cache=True)
def arm(ctl, orders, slot, pending, deadline_ns):
    """The order in ``slot`` now awaits confirmation of ``pending`` until ``deadline_ns``."""
    timers = ctl[0]
    words = ctl[1]
    orders[slot].pending = pending
    orders[slot].deadline_ns = deadline_ns
    if orders[slot].in_timers == 0:
        timers[words[O_TIMERS]] = slot
        words[O_TIMERS] += 1
        orders[slot].in_timers = 1
    if deadline_ns < words[O_NEXT_DEADLINE]:
        words[O_NEXT_DEADLINE] = deadline_ns


@njit(cache=True)
def finish(book, ctl, slot):
    """Bookkeeping after a transition: a terminal order stops waiting and is retired."""
    orders = book[0]
    if ctl[4][orders[slot].state]:
        orders[slot].pending = PENDING_NONE
        retire_slot(book[2], book[3], slot)


@njit(cache=True)
def refuse(ctl, out, orders, slot, reason, exch_ts_ns, wall_ns):
    stats = ctl[2]
    if reason == Reason.ILLEGAL_TRANSITION:
        stats[ST_ILLEGAL] += 1
    elif reason == Reason.STALE_REPORT:
        stats[ST_STALE] += 1
    elif reason == Reason.DUPLICATE_CLIENT_ORDER_ID:
        stats[ST_DUPLICATES] += 1
    state = orders[slot].state
    emit_event(ctl, out, orders, slot, E.REFUSED, state, reason, exch_ts_ns, wall_ns, np.nan, 0.0, 0.0)
