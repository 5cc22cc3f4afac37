"""The OMS hot path (numba): orders from risk and execution reports from the exchange.

Ack timeouts and recovery loads are in ``hftshm.oms.timers_nb``, a new exchange session (the
exchange restarted) in ``hftshm.oms.session_nb``; the ring-to-ring duty cycle that calls them is
``hftshm.oms.cycle_nb``.

Each kernel reads a batch of input records and writes its results into three preallocated staging
arrays (``out``): ``order`` records for the exchange, ``execution_report`` records for the
strategies and risk, and ``order_event`` records for the audit trail. The caller publishes them to
rings; a kernel stops early (returning how many inputs it consumed) when the staging arrays lack
room for the worst case of one more input, so nothing is ever half-applied.

Every state change goes through ``NEXT_STATE`` (``hftshm.oms.states``, passed in as ``table`` so a
kernel cached on disk never keeps a stale copy). An event illegal in the order's state is refused:
recorded as a REFUSED event with reason ``illegal_transition``, counted, and not forwarded.

Argument bundles (tuples, unpacked at the top of each kernel):

- ``book``: ``(orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v)``
  (``hftshm.oms.order_table_nb``)
- ``ctl``: ``(timers, words, stats, table, terminal, timeouts_ns)``: the timer list (slots awaiting
  confirmation), the ``O_*`` words, the ``ST_*`` counters, the transition table, the terminal-state
  flags and the ack timeout of each attempt (``timeouts_ns[k]``: wait after the k-th send;
  ``len - 1`` is the number of retries)
- ``out``: ``(out_orders, out_reports, out_events, counts)``; ``counts[C_*]`` records written
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hftshm.codes import Action, OrderType, Reason, ReportEvent, Side, TimeInForce
from hftshm.codes import OrderEventKind as E
from hftshm.codes import OrderState as S
from hftshm.oms.order_table_nb import (
    FLAG_ACKED,
    PENDING_CANCEL,
    PENDING_NEW,
    PENDING_NONE,
    PENDING_REPLACE,
    S_OPEN,
    allocate_slot,
    index_find,
    index_insert,
)
from hftshm.oms.emit_nb import (  # noqa: F401  (constants re-exported: callers know them as oms_nb.X)
    C_EVENTS,
    C_ORDERS,
    C_REPORTS,
    EVENT_FLAG_ACKED,
    EVENT_PENDING_MASK,
    ID_SHIFT,
    NO_DEADLINE,
    O_EPOCH,
    O_NEXT_DEADLINE,
    O_NEXT_EVENT,
    O_NEXT_ORDER,
    O_TIMERS,
    O_WORDS,
    ST_CANCELS,
    ST_CREATED,
    ST_DUPLICATES,
    ST_EVENTS,
    ST_EXHAUSTED,
    ST_FILLS,
    ST_ILLEGAL,
    ST_MALFORMED,
    ST_ORDERS_IN,
    ST_REJECTS,
    ST_REPLACES,
    ST_REPORTS_IN,
    ST_RESENDS,
    ST_STALE,
    ST_TABLE_FULL,
    ST_UNKNOWN_REPORTS,
    ST_VENUE_CANCELS,
    ST_VENUE_SESSIONS,
    ST_WORDS,
    STAT_NAMES,
    arm,
    emit_event,
    finish,
    forward_report,
    refuse,
    reject_request,
    send_order,
    staging_room,
)
from hftshm.oms.next_lines_nb import note_client, note_slot
from hftshm.oms.session_nb import on_session


@njit(cache=True)
def _valid_new(rec):
    if rec.side != Side.BUY and rec.side != Side.SELL:
        return Reason.MALFORMED_INTENT
    if rec.order_type != OrderType.LIMIT and rec.order_type != OrderType.MARKET:
        return Reason.MALFORMED_INTENT
    if rec.tif < TimeInForce.GTC or rec.tif > TimeInForce.POST_ONLY:
        return Reason.MALFORMED_INTENT
    if not (rec.qty > 0.0) or rec.qty == math.inf:
        return Reason.BAD_QTY
    if rec.order_type == OrderType.LIMIT and not (rec.price > 0.0 and rec.price < math.inf):
        return Reason.BAD_PRICE
    return Reason.NONE


@njit(cache=True)
def _new(book, ctl, out, rec, now_ns, wall_ns):
    orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v = book
    words = ctl[1]
    stats = ctl[2]
    reason = _valid_new(rec)
    if reason != Reason.NONE:
        stats[ST_MALFORMED] += 1
        reject_request(ctl, out, rec, 0, reason, now_ns)
        return
    existing = index_find(cid_a, cid_b, cid_v, np.int64(rec.strategy_id), rec.client_order_id)
    if existing >= 0:
        # the same intent again (a resend after a crash, say): one order, and the sender is told
        refuse(ctl, out, orders, existing, Reason.DUPLICATE_CLIENT_ORDER_ID, 0, wall_ns)
        reject_request(ctl, out, rec, 0, Reason.DUPLICATE_CLIENT_ORDER_ID, now_ns)
        return
    slot = allocate_slot(orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v)
    if slot < 0:
        stats[ST_TABLE_FULL] += 1
        reject_request(ctl, out, rec, 0, Reason.OMS_TABLE_FULL, now_ns)
        return
    words[O_NEXT_ORDER] += 1
    o = orders[slot]
    o.order_id = (words[O_EPOCH] << ID_SHIFT) | words[O_NEXT_ORDER]
    o.client_order_id = rec.client_order_id
    o.created_ts_ns = wall_ns
    o.origin_ts_ns = rec.origin_ts_ns
    o.market_ts_ns = rec.market_ts_ns
    o.request_client_order_id = 0
    o.pending_price = np.nan
    o.pending_qty = 0.0
    o.price = rec.price if rec.order_type == OrderType.LIMIT else np.nan
    o.qty = rec.qty
    o.cum_qty = 0.0
    o.leaves_qty = rec.qty
    o.strategy_id = rec.strategy_id
    o.symbol_id = rec.symbol_id
    o.owner = rec.owner if rec.owner != 0 else rec.strategy_id
    o.attempt = 0
    o.side = rec.side
    o.order_type = rec.order_type
    o.tif = rec.tif
    o.state = S.NEW
    o.flags = 0
    index_insert(oid_a, oid_b, oid_v, o.order_id, 0, slot)
    index_insert(cid_a, cid_b, cid_v, np.int64(rec.strategy_id), rec.client_order_id, slot)
    slot_words[S_OPEN] += 1
    stats[ST_CREATED] += 1
    note_client(words, rec.strategy_id, rec.client_order_id)
    note_slot(words, slot)
    arm(ctl, orders, slot, PENDING_NEW, now_ns + ctl[5][0])
    emit_event(ctl, out, orders, slot, E.CREATED, 0, Reason.NONE, 0, wall_ns, np.nan, 0.0, 0.0)
    send_order(out, orders, slot, Action.NEW, o.client_order_id, o.price, o.qty, now_ns)


@njit(cache=True)
def _target(book, rec):
    """Slot of the order a cancel/replace acts on (by order id, else by the strategy's client id); -1."""
    orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v = book
    if rec.target_order_id != 0:
        slot = index_find(oid_a, oid_b, oid_v, rec.target_order_id, 0)
    else:
        slot = index_find(cid_a, cid_b, cid_v, np.int64(rec.strategy_id), rec.target_client_order_id)
    if slot >= 0 and orders[slot].strategy_id != rec.strategy_id:
        return np.int32(-1)  # a strategy acts on its own orders only
    return slot


@njit(cache=True)
def _amend(book, ctl, out, rec, now_ns, wall_ns):
    """A cancel or replace request from a strategy."""
    orders = book[0]
    stats = ctl[2]
    is_cancel = rec.action == Action.CANCEL
    if not is_cancel and (not (rec.qty > 0.0) or rec.qty == math.inf or not (rec.price > 0.0 and rec.price < math.inf)):
        stats[ST_MALFORMED] += 1
        reject_request(ctl, out, rec, rec.target_order_id, Reason.BAD_QTY if not (rec.qty > 0.0) else Reason.BAD_PRICE,
                        now_ns)
        return
    slot = _target(book, rec)
    if slot < 0:
        reject_request(ctl, out, rec, rec.target_order_id, Reason.UNKNOWN_ORDER, now_ns)
        return
    o = orders[slot]
    kind = np.int64(E.CANCEL_REQUESTED) if is_cancel else np.int64(E.REPLACE_REQUESTED)
    prev = o.state
    nxt = np.int64(ctl[3][prev, kind])
    if nxt == 0:
        # the refused event names the refused request; the pending one (if any) keeps its id
        pending_request = o.request_client_order_id
        o.request_client_order_id = rec.client_order_id
        refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, 0, wall_ns)
        o.request_client_order_id = pending_request
        reject_request(ctl, out, rec, o.order_id, Reason.ILLEGAL_TRANSITION, now_ns)
        return
    o.state = nxt
    o.request_client_order_id = rec.client_order_id
    o.attempt = 0
    note_client(ctl[1], rec.strategy_id, rec.client_order_id)
    note_slot(ctl[1], slot)
    if is_cancel:
        stats[ST_CANCELS] += 1
        arm(ctl, orders, slot, PENDING_CANCEL, now_ns + ctl[5][0])
        emit_event(ctl, out, orders, slot, kind, prev, Reason.NONE, 0, wall_ns, np.nan, 0.0, 0.0)
        send_order(out, orders, slot, Action.CANCEL, rec.client_order_id, o.price, o.leaves_qty, now_ns)
    else:
        stats[ST_REPLACES] += 1
        o.pending_price = rec.price
        o.pending_qty = rec.qty
        arm(ctl, orders, slot, PENDING_REPLACE, now_ns + ctl[5][0])
        emit_event(ctl, out, orders, slot, kind, prev, Reason.NONE, 0, wall_ns, np.nan, 0.0, 0.0)
        send_order(out, orders, slot, Action.REPLACE, rec.client_order_id, rec.price, rec.qty, now_ns)


@njit(cache=True)
def on_orders(book, ctl, out, records, n, now_ns, wall_ns):
    """Apply ``records[:n]`` (``order`` records from risk); returns how many were consumed."""
    stats = ctl[2]
    i = 0
    while i < n:
        if not staging_room(out, 1, 1, 2):
            break
        rec = records[i]
        stats[ST_ORDERS_IN] += 1
        if rec.action == Action.NEW:
            _new(book, ctl, out, rec, now_ns, wall_ns)
        elif rec.action == Action.CANCEL or rec.action == Action.REPLACE:
            _amend(book, ctl, out, rec, now_ns, wall_ns)
        else:
            stats[ST_MALFORMED] += 1
            reject_request(ctl, out, rec, rec.order_id, Reason.MALFORMED_INTENT, now_ns)
        i += 1
    return i


@njit(cache=True)
def _apply_report(book, ctl, out, rep, slot, now_ns, wall_ns):
    orders = book[0]
    stats = ctl[2]
    o = orders[slot]
    event = np.int64(rep.event)
    reason = np.int64(rep.reason)
    forward_event = event
    forward_reason = reason
    exch_ts = rep.exch_ts_ns
    if event == ReportEvent.ACK:
        kind = np.int64(E.ACK)
    elif event == ReportEvent.REJECT:
        if reason == Reason.DUPLICATE_ORDER_ID:
            # a resend the exchange already holds: as good as an ack
            kind = np.int64(E.ACK)
            forward_event = np.int64(ReportEvent.ACK)
            forward_reason = np.int64(Reason.NONE)
        elif (o.pending == PENDING_CANCEL or o.pending == PENDING_REPLACE) and (
                (o.flags & FLAG_ACKED) != 0 or o.state != S.PENDING_CANCEL):
            kind = np.int64(E.REQUEST_REJECTED)
        else:
            kind = np.int64(E.REJECT)
    elif event == ReportEvent.PARTIAL or event == ReportEvent.FILL:
        tolerance = 1e-9 * max(1.0, o.qty)
        if rep.cum_qty > 0.0 and rep.cum_qty <= o.cum_qty + tolerance:
            refuse(ctl, out, orders, slot, Reason.STALE_REPORT, exch_ts, wall_ns)
            return
        kind = np.int64(E.PARTIAL) if event == ReportEvent.PARTIAL else np.int64(E.FILL)
    elif event == ReportEvent.CANCEL:
        kind = np.int64(E.CANCELLED)
    elif event == ReportEvent.REPLACE:
        kind = np.int64(E.REPLACED)
    else:
        stats[ST_MALFORMED] += 1
        return
    prev = o.state
    nxt = np.int64(ctl[3][prev, kind])
    if nxt == 0:
        if ctl[4][prev] and (kind == E.REJECT or (kind == E.ACK and prev != S.REJECTED)):
            # news about a finished order: the exchange refusing a cancel that came too late, or
            # re-acking a resend. Not applied, but no alarm either (unlike an ack after we gave up)
            refuse(ctl, out, orders, slot, Reason.STALE_REPORT, exch_ts, wall_ns)
        else:
            refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, exch_ts, wall_ns)
        return
    first_ack = (o.flags & FLAG_ACKED) == 0
    exec_price = np.nan
    exec_qty = 0.0
    fee = 0.0
    if kind == E.ACK:
        o.flags |= FLAG_ACKED
        if o.pending == PENDING_NEW:
            o.pending = PENDING_NONE
    elif kind == E.PARTIAL or kind == E.FILL:
        stats[ST_FILLS] += 1
        o.flags |= FLAG_ACKED
        if o.pending == PENDING_NEW:
            o.pending = PENDING_NONE
        o.cum_qty = rep.cum_qty if rep.cum_qty > 0.0 else o.cum_qty + rep.qty
        o.leaves_qty = 0.0 if kind == E.FILL else max(rep.leaves_qty, 0.0)
        exec_price = rep.price
        exec_qty = rep.qty
        fee = rep.fee
    elif kind == E.CANCELLED:
        exec_qty = rep.qty
        o.leaves_qty = 0.0
        o.pending = PENDING_NONE
    elif kind == E.REPLACED:
        o.price = rep.price
        o.leaves_qty = rep.leaves_qty
        o.qty = o.cum_qty + rep.leaves_qty
        exec_price = rep.price
        exec_qty = rep.leaves_qty
        if o.pending == PENDING_REPLACE:
            o.pending = PENDING_NONE
    elif kind == E.REQUEST_REJECTED:
        o.pending = PENDING_NONE
    elif kind == E.REJECT:
        o.leaves_qty = 0.0
        o.pending = PENDING_NONE
    if nxt == S.ACKNOWLEDGED and o.cum_qty > 0.0:
        nxt = np.int64(S.PARTIALLY_FILLED)  # states.normalize: the table cannot see fills
    o.state = nxt
    if o.pending == PENDING_NONE:
        o.attempt = 0
    emit_event(ctl, out, orders, slot, kind, prev, reason, exch_ts, wall_ns, exec_price, exec_qty, fee)
    finish(book, ctl, slot)
    if kind != E.ACK or first_ack:
        # a reject of the order itself names the order, even when the exchange refused our cancel
        # (UNKNOWN_ORDER: it lost the order before acking it) and its report names the cancel:
        # risk and the strategies find orders by client order id and would keep this one open
        client_id = o.client_order_id if kind == E.REJECT else rep.client_order_id
        forward_report(out, rep, now_ns, forward_event, forward_reason, client_id)


@njit(cache=True)
def on_reports(book, ctl, out, records, n, now_ns, wall_ns):
    """Apply ``records[:n]`` (execution reports from the exchange); returns how many were consumed."""
    orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v = book
    stats = ctl[2]
    i = 0
    while i < n:
        if not staging_room(out, 0, 1, 1):
            break
        rep = records[i]
        if rep.event == ReportEvent.SESSION:
            # the exchange restarted: taken alone at the head of a batch, with the whole batch's output
            # budget, and consumed only once every open order is cancelled and the LOGON staged
            if i == 0 and on_session(book, ctl, out, rep, n, now_ns, wall_ns):
                stats[ST_REPORTS_IN] += 1
                i += 1
            break
        stats[ST_REPORTS_IN] += 1
        slot = index_find(oid_a, oid_b, oid_v, rep.order_id, 0)
        if slot < 0:
            stats[ST_UNKNOWN_REPORTS] += 1
        else:
            _apply_report(book, ctl, out, rep, slot, now_ns, wall_ns)
        i += 1
    return i


# the clock-driven kernels live in timers_nb; callers (the backtest venue, the engine) know them here too
from hftshm.oms.timers_nb import on_timers, restore  # noqa: E402,F401
