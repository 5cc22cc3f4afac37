"""The OMS hot path (numba): orders from risk, execution reports from the exchange, ack timeouts.

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
  (``hftshm.oms.book_nb``)
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
from hftshm.metrics.histogram_nb import record as record_latency
from hftshm.oms.book_nb import (
    FLAG_ACKED,
    PENDING_CANCEL,
    PENDING_NEW,
    PENDING_NONE,
    PENDING_REPLACE,
    S_OPEN,
    allocate_slot,
    index_find,
    index_insert,
    retire_slot,
)

ID_SHIFT = 40  # order and event ids: run epoch << 40 | counter (2**40 ids per run)
NO_DEADLINE = np.int64(2**62)

# ctl words
O_EPOCH = 0
O_NEXT_ORDER = 1  # last order counter used
O_NEXT_EVENT = 2  # last event counter used
O_TIMERS = 3  # entries in the timer list
O_NEXT_DEADLINE = 4  # earliest deadline in the timer list (a lower bound)
O_WORDS = 8

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
ST_WORDS = 16


@njit(cache=True, inline="always")
def _room(out, n_orders, n_reports, n_events):
    counts = out[3]
    return (counts[C_ORDERS] + n_orders <= out[0].shape[0] and counts[C_REPORTS] + n_reports <= out[1].shape[0]
            and counts[C_EVENTS] + n_events <= out[2].shape[0])


@njit(cache=True)
def _event(ctl, out, orders, slot, kind, prev_state, reason, exch_ts_ns, wall_ns, exec_price, exec_qty, fee):
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
def _send(out, orders, slot, action, client_order_id, price, qty, now_ns):
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
def _report(ctl, out, event, order_id, client_order_id, strategy_id, symbol_id, side, price, qty, cum_qty,
            reason, origin_ts_ns, now_ns):
    """A report the OMS itself originates (its rejects) for the strategies and risk."""
    counts = out[3]
    k = counts[C_REPORTS]
    counts[C_REPORTS] = k + 1
    ctl[2][ST_REJECTS] += 1
    r = out[1][k]
    r.seq = 0
    r.exch_ts_ns = 0
    r.local_ts_ns = now_ns
    r.origin_ts_ns = origin_ts_ns
    r.order_id = order_id
    r.client_order_id = client_order_id
    r.contra_order_id = 0
    r.price = price
    r.qty = qty
    r.leaves_qty = 0.0
    r.cum_qty = cum_qty
    r.fee = 0.0
    r.strategy_id = strategy_id
    r.symbol_id = symbol_id
    r.event = event
    r.side = side
    r.reason = reason
    r.flags = 0


@njit(cache=True)
def _reject_request(ctl, out, rec, order_id, reason, now_ns):
    _report(ctl, out, ReportEvent.REJECT, order_id, rec.client_order_id, rec.strategy_id, rec.symbol_id, rec.side,
            rec.price, rec.qty, 0.0, reason, rec.origin_ts_ns, now_ns)


@njit(cache=True)
def _forward(out, rep, now_ns, event, reason):
    counts = out[3]
    k = counts[C_REPORTS]
    counts[C_REPORTS] = k + 1
    r = out[1][k]
    r.seq = 0
    r.exch_ts_ns = rep.exch_ts_ns
    r.local_ts_ns = now_ns
    r.origin_ts_ns = rep.origin_ts_ns
    r.order_id = rep.order_id
    r.client_order_id = rep.client_order_id
    r.contra_order_id = rep.contra_order_id
    r.price = rep.price
    r.qty = rep.qty
    r.leaves_qty = rep.leaves_qty
    r.cum_qty = rep.cum_qty
    r.fee = rep.fee
    r.strategy_id = rep.strategy_id
    r.symbol_id = rep.symbol_id
    r.event = event
    r.side = rep.side
    r.reason = reason
    r.flags = rep.flags


@njit(cache=True)
def _arm(ctl, orders, slot, pending, deadline_ns):
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
def _finish(book, ctl, slot):
    """Bookkeeping after a transition: a terminal order stops waiting and is retired."""
    orders = book[0]
    if ctl[4][orders[slot].state]:
        orders[slot].pending = PENDING_NONE
        retire_slot(book[2], book[3], slot)


@njit(cache=True)
def _refuse(ctl, out, orders, slot, reason, exch_ts_ns, wall_ns):
    stats = ctl[2]
    if reason == Reason.ILLEGAL_TRANSITION:
        stats[ST_ILLEGAL] += 1
    elif reason == Reason.STALE_REPORT:
        stats[ST_STALE] += 1
    elif reason == Reason.DUPLICATE_CLIENT_ORDER_ID:
        stats[ST_DUPLICATES] += 1
    state = orders[slot].state
    _event(ctl, out, orders, slot, E.REFUSED, state, reason, exch_ts_ns, wall_ns, np.nan, 0.0, 0.0)


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
        _reject_request(ctl, out, rec, 0, reason, now_ns)
        return
    existing = index_find(cid_a, cid_b, cid_v, np.int64(rec.strategy_id), rec.client_order_id)
    if existing >= 0:
        # the same intent again (a resend after a crash, say): one order, and the sender is told
        _refuse(ctl, out, orders, existing, Reason.DUPLICATE_CLIENT_ORDER_ID, 0, wall_ns)
        _reject_request(ctl, out, rec, 0, Reason.DUPLICATE_CLIENT_ORDER_ID, now_ns)
        return
    slot = allocate_slot(orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v)
    if slot < 0:
        stats[ST_TABLE_FULL] += 1
        _reject_request(ctl, out, rec, 0, Reason.OMS_TABLE_FULL, now_ns)
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
    _arm(ctl, orders, slot, PENDING_NEW, now_ns + ctl[5][0])
    _event(ctl, out, orders, slot, E.CREATED, 0, Reason.NONE, 0, wall_ns, np.nan, 0.0, 0.0)
    _send(out, orders, slot, Action.NEW, o.client_order_id, o.price, o.qty, now_ns)


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
        _reject_request(ctl, out, rec, rec.target_order_id, Reason.BAD_QTY if not (rec.qty > 0.0) else Reason.BAD_PRICE,
                        now_ns)
        return
    slot = _target(book, rec)
    if slot < 0:
        _reject_request(ctl, out, rec, rec.target_order_id, Reason.UNKNOWN_ORDER, now_ns)
        return
    o = orders[slot]
    kind = np.int64(E.CANCEL_REQUESTED) if is_cancel else np.int64(E.REPLACE_REQUESTED)
    prev = o.state
    nxt = np.int64(ctl[3][prev, kind])
    if nxt == 0:
        # the refused event names the refused request; the pending one (if any) keeps its id
        pending_request = o.request_client_order_id
        o.request_client_order_id = rec.client_order_id
        _refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, 0, wall_ns)
        o.request_client_order_id = pending_request
        _reject_request(ctl, out, rec, o.order_id, Reason.ILLEGAL_TRANSITION, now_ns)
        return
    o.state = nxt
    o.request_client_order_id = rec.client_order_id
    o.attempt = 0
    if is_cancel:
        stats[ST_CANCELS] += 1
        _arm(ctl, orders, slot, PENDING_CANCEL, now_ns + ctl[5][0])
        _event(ctl, out, orders, slot, kind, prev, Reason.NONE, 0, wall_ns, np.nan, 0.0, 0.0)
        _send(out, orders, slot, Action.CANCEL, rec.client_order_id, o.price, o.leaves_qty, now_ns)
    else:
        stats[ST_REPLACES] += 1
        o.pending_price = rec.price
        o.pending_qty = rec.qty
        _arm(ctl, orders, slot, PENDING_REPLACE, now_ns + ctl[5][0])
        _event(ctl, out, orders, slot, kind, prev, Reason.NONE, 0, wall_ns, np.nan, 0.0, 0.0)
        _send(out, orders, slot, Action.REPLACE, rec.client_order_id, rec.price, rec.qty, now_ns)


@njit(cache=True)
def on_orders(book, ctl, out, records, n, now_ns, wall_ns):
    """Apply ``records[:n]`` (``order`` records from risk); returns how many were consumed."""
    stats = ctl[2]
    i = 0
    while i < n:
        if not _room(out, 1, 1, 2):
            break
        rec = records[i]
        stats[ST_ORDERS_IN] += 1
        if rec.action == Action.NEW:
            _new(book, ctl, out, rec, now_ns, wall_ns)
        elif rec.action == Action.CANCEL or rec.action == Action.REPLACE:
            _amend(book, ctl, out, rec, now_ns, wall_ns)
        else:
            stats[ST_MALFORMED] += 1
            _reject_request(ctl, out, rec, rec.order_id, Reason.MALFORMED_INTENT, now_ns)
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
            _refuse(ctl, out, orders, slot, Reason.STALE_REPORT, exch_ts, wall_ns)
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
        _refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, exch_ts, wall_ns)
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
    _event(ctl, out, orders, slot, kind, prev, reason, exch_ts, wall_ns, exec_price, exec_qty, fee)
    _finish(book, ctl, slot)
    if kind != E.ACK or first_ack:
        _forward(out, rep, now_ns, forward_event, forward_reason)


@njit(cache=True)
def on_reports(book, ctl, out, records, n, now_ns, wall_ns):
    """Apply ``records[:n]`` (execution reports from the exchange); returns how many were consumed."""
    orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v = book
    stats = ctl[2]
    i = 0
    while i < n:
        if not _room(out, 0, 1, 1):
            break
        rep = records[i]
        stats[ST_REPORTS_IN] += 1
        slot = index_find(oid_a, oid_b, oid_v, rep.order_id, 0)
        if slot < 0:
            stats[ST_UNKNOWN_REPORTS] += 1
        else:
            _apply_report(book, ctl, out, rep, slot, now_ns, wall_ns)
        i += 1
    return i


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
            _refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, 0, wall_ns)
            return
        stats[ST_RESENDS] += 1
        o.attempt += 1
        o.deadline_ns = now_ns + timeouts[o.attempt]
        if o.deadline_ns < ctl[1][O_NEXT_DEADLINE]:
            ctl[1][O_NEXT_DEADLINE] = o.deadline_ns
        _event(ctl, out, orders, slot, E.RESENT, prev, Reason.NONE, 0, wall_ns, np.nan, 0.0, 0.0)
        if o.pending == PENDING_NEW:
            _send(out, orders, slot, Action.NEW, o.client_order_id, o.price, o.qty, now_ns)
        elif o.pending == PENDING_CANCEL:
            _send(out, orders, slot, Action.CANCEL, o.request_client_order_id, o.price, o.leaves_qty, now_ns)
        else:
            _send(out, orders, slot, Action.REPLACE, o.request_client_order_id, o.pending_price, o.pending_qty,
                  now_ns)
        return
    stats[ST_EXHAUSTED] += 1
    pending = o.pending
    nxt = ctl[3][prev, E.RETRIES_EXHAUSTED]
    o.pending = PENDING_NONE
    if nxt == 0:
        _refuse(ctl, out, orders, slot, Reason.ILLEGAL_TRANSITION, 0, wall_ns)
        return
    o.state = nxt
    if nxt == S.REJECTED:
        o.leaves_qty = 0.0
    _event(ctl, out, orders, slot, E.RETRIES_EXHAUSTED, prev, Reason.RETRIES_EXHAUSTED, 0, wall_ns, np.nan, 0.0, 0.0)
    o.attempt = 0
    _finish(book, ctl, slot)
    # the strategy and risk hear of it: the order rejected, or its cancel/replace refused
    client_id = o.client_order_id if pending == PENDING_NEW else o.request_client_order_id
    _report(ctl, out, ReportEvent.REJECT, o.order_id, client_id, o.strategy_id, o.symbol_id, o.side, o.price, o.qty,
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
        if not _room(out, 1, 1, 1):
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
            _arm(ctl, orders, slot, row.pending, now_ns + timeouts[attempt])
        loaded += 1
    return loaded


@njit(cache=True)
def record_hops(histogram, sent_ts_ns, now_ns):
    """Latency of one hop per record: ``now_ns`` minus each upstream publish stamp (0: unstamped)."""
    for i in range(sent_ts_ns.shape[0]):
        if sent_ts_ns[i] > 0:
            record_latency(histogram, now_ns - sent_ts_ns[i])
