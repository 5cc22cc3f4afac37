"""A new exchange session: the OMS cancels every order of the ended one, then logs on (numba).

The exchange announces a session after a restart (``hftshm.exchange.session``: a report with
``event = ReportEvent.SESSION``, ``client_order_id`` = the session number). Its predecessor's
resting orders died with it, and it ignores every order sent before the OMS's answer. So the OMS:

1. cancels every order it holds open (CANCELLED, reason ``venue_restart``; an order event each,
   and a CANCEL report under the order's own client order id, so risk and the strategies close it
   too; both stamped ``exch_ts_ns`` = the session's start, by which recovery finds them again).
   That covers the orders sent after the restart but before the announcement was read: the
   exchange ignores them as well. Their ack timers stop with them (nothing is pending any more).
2. sends ``Action.LOGON`` with the session number: from that record on, the exchange takes orders.

An order table can hold more open orders than one batch may produce records for, so ``on_session``
works within a budget (``budget`` inputs' worth of outputs: the caller sized the batch so that
every input may produce one report, one order and two events) and returns 0 while orders are left
open: the caller keeps the announcement unreleased and calls again. Replays are harmless: a
cancelled order is terminal and skipped, and the exchange ignores a LOGON it already has.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import Action, Reason, ReportEvent
from hftshm.codes import OrderEventKind as E
from hftshm.oms.order_table_nb import PENDING_NONE, S_OPEN
from hftshm.oms.emit_nb import (
    C_ORDERS,
    C_REPORTS,
    ST_VENUE_CANCELS,
    ST_VENUE_SESSIONS,
    emit_event,
    finish,
    refuse,
    staging_room,
)
from hftshm.oms.reports_nb import write_report


@njit(cache=True)
def _report_cancelled(out, orders, slot, qty, exch_ts_ns, now_ns):
    """The CANCEL risk and the strategies see: the order's own ids, what was left open."""
    counts = out[3]
    k = counts[C_REPORTS]
    counts[C_REPORTS] = k + 1
    o = orders[slot]
    write_report(out[1], k, 0, exch_ts_ns, now_ns, o.origin_ts_ns, o.order_id, o.client_order_id, 0, o.price, qty, 0.0,
                 o.cum_qty, 0.0, o.strategy_id, o.symbol_id, ReportEvent.CANCEL, o.side, Reason.VENUE_RESTART, 0)


@njit(cache=True)
def _stage_logon(out, session, now_ns):
    counts = out[3]
    k = counts[C_ORDERS]
    counts[C_ORDERS] = k + 1
    r = out[0][k]
    r.seq = 0
    r.ts_ns = now_ns
    r.origin_ts_ns = 0
    r.market_ts_ns = 0
    r.order_id = 0
    r.client_order_id = session
    r.target_order_id = 0
    r.target_client_order_id = 0
    r.price = np.nan
    r.qty = 0.0
    r.strategy_id = 0
    r.symbol_id = 0
    r.action = Action.LOGON
    r.side = 0
    r.order_type = 0
    r.tif = 0
    r.attempt = 0
    r.owner = 0
    r.flags = 0


@njit(cache=True)
def on_session(book, ctl, out, rep, budget, now_ns, wall_ns):
    """Handle a ``ReportEvent.SESSION`` report; 1 when done (LOGON staged), 0 when orders are left."""
    orders = book[0]
    slot_words = book[3]
    stats = ctl[2]
    terminal = ctl[4]
    exch_ts = rep.exch_ts_ns
    cancelled = 0
    slot = 0
    while slot_words[S_OPEN] > 0 and slot < orders.shape[0]:
        o = orders[slot]
        if o.state == 0 or terminal[o.state]:
            slot += 1
            continue
        if cancelled >= budget or not staging_room(out, 0, 1, 1):
            return 0
        prev = o.state
        nxt = np.int64(ctl[3][prev, E.CANCELLED])
        if nxt == 0:  # every open state may be cancelled (states.py); refuse rather than loop on one
            refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, exch_ts, wall_ns)
        else:
            left = o.leaves_qty
            o.leaves_qty = 0.0
            o.pending = PENDING_NONE
            o.attempt = 0
            o.state = nxt
            stats[ST_VENUE_CANCELS] += 1
            emit_event(ctl, out, orders, slot, E.CANCELLED, prev, Reason.VENUE_RESTART, exch_ts, wall_ns, np.nan,
                       left, 0.0)
            finish(book, ctl, slot)
            _report_cancelled(out, orders, slot, left, exch_ts, now_ns)
        cancelled += 1
        slot += 1
    if not staging_room(out, 1, 0, 0):
        return 0
    _stage_logon(out, rep.client_order_id, now_ns)
    stats[ST_VENUE_SESSIONS] += 1
    return 1
