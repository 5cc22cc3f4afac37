"""The OMS's clock-driven work (numba): ack timeouts with resends and backoff, and recovery loads.

Orders awaiting a confirmation (a new order's ack, a cancel's or replace's outcome) sit in the
timer list (``ctl[0]``) with a deadline. ``on_timers`` resends each request past its deadline with
the same order id and ``attempt + 1``, waiting ``timeouts_ns[attempt]`` for the next one, and gives
up after the last: a new order is then REJECTED (retries_exhausted), a cancel or replace stays
unconfirmed with an alert; strategies and risk get a reject either way. See ``hftshm.oms.oms_nb``
for the argument bundles.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import Action, Reason, ReportEvent
from hftshm.codes import OrderEventKind as E
from hftshm.codes import OrderState as S
from hftshm.oms.order_table_nb import (
    PENDING_CANCEL,
    PENDING_NEW,
    PENDING_NONE,
    S_OPEN,
    allocate_slot,
    index_find,
    index_insert,
    retire_slot,
)
from hftshm.oms.emit_nb import (
    NO_DEADLINE,
    O_NEXT_DEADLINE,
    O_TIMERS,
    ST_EXHAUSTED,
    ST_RESENDS,
    arm,
    emit_event,
    emit_report,
    finish,
    refuse,
    send_order,
    staging_room,
)


@njit(cache=True)
def _expire(book, ctl, out, slot, now_ns, wall_ns):
    """The pending request of ``slot`` timed out: send it again, or give up after the last retry."""
    orders = book[0]
    stats = ctl[2]
    timeouts = ctl[5]
    o = orders[slot]
    prev = o.state
    if o.attempt + 1 < timeouts.shape[0]:
        nxt = ctl[3][prev, E.RESENT]
        if nxt == 0:  # cannot happen for a pending request; never resend from a state that forbids it
            o.pending = PENDING_NONE
            refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, 0, wall_ns)
            return
        stats[ST_RESENDS] += 1
        o.attempt += 1
        o.deadline_ns = now_ns + timeouts[o.attempt]
        if o.deadline_ns < ctl[1][O_NEXT_DEADLINE]:
            ctl[1][O_NEXT_DEADLINE] = o.deadline_ns
        emit_event(ctl, out, orders, slot, E.RESENT, prev, Reason.NONE, 0, wall_ns, np.nan, 0.0, 0.0)
        if o.pending == PENDING_NEW:
            send_order(out, orders, slot, Action.NEW, o.client_order_id, o.price, o.qty, now_ns)
        elif o.pending == PENDING_CANCEL:
            send_order(out, orders, slot, Action.CANCEL, o.request_client_order_id, o.price, o.leaves_qty, now_ns)
        else:
            send_order(out, orders, slot, Action.REPLACE, o.request_client_order_id, o.pending_price, o.pending_qty,
                  now_ns)
        return
    stats[ST_EXHAUSTED] += 1
    pending = o.pending
    nxt = ctl[3][prev, E.RETRIES_EXHAUSTED]
    o.pending = PENDING_NONE
    if nxt == 0:
        refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, 0, wall_ns)
        return
    o.state = nxt
    if nxt == S.REJECTED:
        o.leaves_qty = 0.0
    emit_event(ctl, out, orders, slot, E.RETRIES_EXHAUSTED, prev, Reason.RETRIES_EXHAUSTED, 0, wall_ns, np.nan, 0.0,
               0.0)
    o.attempt = 0
    finish(book, ctl, slot)
    # the strategy and risk hear of it: the order rejected, or its cancel/replace refused
    client_id = o.client_order_id if pending == PENDING_NEW else o.request_client_order_id
    emit_report(ctl, out, ReportEvent.REJECT, o.order_id, client_id, o.strategy_id, o.symbol_id, o.side, o.price, o.qty,
            o.cum_qty, Reason.RETRIES_EXHAUSTED, o.origin_ts_ns, now_ns)


@njit(cache=True)
def on_timers(book, ctl, out, now_ns, wall_ns):
    """Resend or give up on requests past their deadline; returns how many were handled."""
    orders = book[0]
    timers = ctl[0]
    words = ctl[1]
    if now_ns < words[O_NEXT_DEADLINE]:
        return 0
    n = words[O_TIMERS]
    next_deadline = NO_DEADLINE
    handled = 0
    i = 0
    while i < n:
        slot = timers[i]
        o = orders[slot]
        if o.pending == PENDING_NONE or o.state == 0:
            o.in_timers = 0
            n -= 1
            timers[i] = timers[n]
            continue
        if o.deadline_ns > now_ns:
            if o.deadline_ns < next_deadline:
                next_deadline = o.deadline_ns
            i += 1
            continue
        if not staging_room(out, 1, 1, 1):
            next_deadline = now_ns  # out of staging room: carry on in the next call
            break
        _expire(book, ctl, out, slot, now_ns, wall_ns)
        handled += 1
        if o.pending != PENDING_NONE and o.deadline_ns < next_deadline:
            next_deadline = o.deadline_ns
        i += 1
    words[O_TIMERS] = n
    words[O_NEXT_DEADLINE] = next_deadline
    return handled


@njit(cache=True)
def restore(book, ctl, rows, n, now_ns):
    """Load orders recovered from the database (``ORDER_SLOT_DTYPE`` rows, oldest first).

    Terminal orders are retired at once (they only serve duplicate detection and late-report
    refusal); open orders that await a confirmation get a fresh deadline, so a request lost in the
    crash is sent again after one timeout. Returns how many rows were loaded (short: table full).
    """
    orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v = book
    timeouts = ctl[5]
    loaded = 0
    for i in range(n):
        row = rows[i]
        if index_find(oid_a, oid_b, oid_v, row.order_id, 0) >= 0:
            continue
        slot = allocate_slot(orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v)
        if slot < 0:
            break
        in_timers = orders[slot].in_timers
        orders[slot] = row
        orders[slot].in_timers = in_timers
        index_insert(oid_a, oid_b, oid_v, row.order_id, 0, slot)
        index_insert(cid_a, cid_b, cid_v, np.int64(row.strategy_id), row.client_order_id, slot)
        slot_words[S_OPEN] += 1
        if ctl[4][row.state]:
            orders[slot].pending = PENDING_NONE
            retire_slot(retired, slot_words, slot)
        elif row.pending != PENDING_NONE:
            attempt = min(np.int64(row.attempt), timeouts.shape[0] - 1)
            arm(ctl, orders, slot, row.pending, now_ns + timeouts[attempt])
        loaded += 1
    return loaded
