"""The compiled backtest loop: the one place the per-message sequence of a backtest is written.

Like vectorbt's ``simulate_nb`` taking the user's ``order_func_nb``, ``run`` takes the strategies'
compiled callbacks as parameters: ``slots`` is a tuple of ``StrategySlot`` bundles, one per strategy
(any number, any mix of strategy classes and symbols; ``hftshm.strategies.slots_nb``), each carrying its parameters, state,
portfolio and its callbacks as numba first-class functions (``hftshm.strategies.compiled``). Per
exchange message, in market time:

1. the message reaches the venue (orders arriving before each event are matched first); the L2
   book takes its levels in the same pass over the rows (a message with a depth, snapshot or clear
   event; nothing reads the book before step 4);
2. reports due by the message's time are delivered: the owner's portfolio takes each, then its
   ``on_report`` (a fill changes inventory);
3. the strategies of the message's symbol get ``on_trade`` per trade and ``on_events`` with the
   message; then timers due (``on_timer``);
4. if the message changed the L2 book, its top row is taken; risk marks the new mid and each
   strategy whose book changed gets ``on_book`` with its top;
5. the intents of 2-4 go to the venue, stamped with the message's market time;
6. equity (all strategies) is sampled on the market-time grid.

The Python-path loop (``engine.run_loop`` with ``StrategyHost``) follows the same sequence with
Python callbacks; the deterministic platform run follows it by protocol (``runtime.lockstep``).

A callback whose helper returned an error (``PF_FAULT``: intent flood, NaN price, full order table)
is paused here as the Python runtime pauses a strategy that raised: its intents of that callback
are dropped, its open orders cancelled, ``ids[ID_FAULT]`` keeps the code for the wrapper to report
with the strategy's name; the others keep trading. Nothing allocates inside the loop.
"""

from __future__ import annotations

from numba import literal_unroll, njit

from hftshm.backtest import venue_nb
from hftshm.book import l2_apply_nb
from hftshm.codes import Action, EventFlag, EventKind, ReportEvent
from hftshm.exchange import fill_model_nb as fm
from hftshm.oms import oms_nb
from hftshm.strategies import context_nb as cx
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.slots_nb import (deliver_events, HAS_BOOK, HAS_REPORT, ID_BOOK, ID_HAS, ID_NEXT_TIMER,
                                        ID_RUNNING, ID_STRATEGY, ID_SYMBOL, ID_TIMER_NS, M_ASK, M_BID, _ctx, _fault,
                                        equity_of)

# counters
C_NEXT_EVENT = 0  # where the loop stopped (== stop when done)
C_FILLS = 1
C_EQUITY = 2
C_ORDERS_SENT = 3
C_SUBMITTED_LOTS_E9 = 4  # submitted new-order quantity, in 1e-9 units (exact integer sum)
C_MESSAGES = 5
C_DECISIONS = 6
C_ORPHANS = 7  # reports for no strategy of this run
C_REJECT_COUNTS = 16  # + Reason code: rejects by reason (64 slots)
C_SIZE = 80

_LAST = int(EventFlag.LAST_IN_MESSAGE)
np_nan = float("nan")

# loop_state (float64): what the loop carries from one call to the next
L_MARKED_MID = 0
L_SHARE_UNITS = 1  # 1: the L2 book and the fill model's view have the same tick and lot per symbol (set by the caller)
L_SIZE = 4

@njit(cache=True)
def _send_intents(V, intents, icount, now_ns, counters):
    n = icount[0]
    for k in range(n):
        if intents[k].action == Action.NEW:
            counters[C_ORDERS_SENT] += 1
            counters[C_SUBMITTED_LOTS_E9] += round(intents[k].qty * 1e9)
    venue_nb.send(V, intents, n, now_ns)
    icount[0] = 0


@njit(cache=True, _nrt=False)
def run(events, start, stop, books, book_out, book_symbol, V, slots, intents, icount, reports, fills, equity_ts,
        equity, interval_ns, counters, loop_state):
    """Run ``slots`` over ``events[start:stop]``; see the module docstring.

    ``book_out`` = (meta, px, qty) scratch for the book kernel (>= 1 row: it writes at most one per
    message, at the message's last event); ``book_symbol[book index]`` = its symbol id; ``intents``/``icount`` the shared outbox.
    Stops early (``counters[C_NEXT_EVENT]`` < stop) only when ``fills`` or ``equity`` is full, at a
    message boundary; the caller grows them and calls again from there.
    """
    params = books[1]
    # unpacked once: reading arrays out of V per event would cost a refcount update each
    S, pend, pend_arrival, x_room = V[2]
    room = x_room[0]
    sq_reports, sq_times, sq_srcs, sq_ptr = V[3]
    lq_ptr = V[4][3]
    x_out = V[5][0]
    stats = V[6]
    oms_words = V[1][1][1]
    risk = V[0]
    snap, r_symbols, r_account, r_control = risk[9], risk[0], risk[2], risk[4]
    b_state, _, b_bw, b_aw, b_fbp, b_fbq, b_fap, b_faq, b_issues, _ = books
    b_meta, b_px, b_qty = book_out
    marked_mid = loop_state[L_MARKED_MID]
    share_units = loop_state[L_SHARE_UNITS] != 0.0
    if counters[C_EQUITY] > 0:
        next_sample = equity_ts[counters[C_EQUITY] - 1] + interval_ns
    else:
        next_sample = events[start].exch_ts_ns
    i = start
    while i < stop:
        if counters[C_FILLS] + reports.shape[0] > fills.shape[0] or counters[C_EQUITY] + 2 >= equity.shape[0]:
            break
        # 1. one exchange message: events up to the one flagged last
        end = i
        book_event = False  # any record that can change the L2 levels (not a trade, not a BBO)
        trades = False
        while True:
            kind = events[end].kind
            if kind == EventKind.TRADE:
                trades = True
            elif kind != EventKind.BBO:
                book_event = True
            if end >= stop - 1 or (events[end].flags & _LAST) != 0:
                break
            end += 1
        end += 1
        now = events[end - 1].exch_ts_ns
        origin = events[end - 1].publish_ts_ns
        symbol_id = events[i].symbol_id
        # the fill model's event pass, inlined here (forceinline) on the state unpacked once: a call per
        # message taking the state tuple cost more than the view's own work
        # the L2 book takes the message's events in the same pass (a message of trades or BBOs only leaves
        # its levels as they are and is not given to it); nothing reads the book before step 4
        k = i
        book_status = l2_apply_nb.APPLY_REJECTED
        book_b = -1
        while k < end:
            k, j, book_status, book_b = fm.run_events_and_book(S, pend, pend_arrival, events, k, end, x_out, 0, room,
                                                               books, book_event, share_units)
            if j > 0:
                venue_nb.exchange_out(x_out, j, sq_reports, sq_times, sq_srcs, sq_ptr, stats)
        # 2. reports due now
        while (lq_ptr[venue_nb.Q_HEAD] < lq_ptr[venue_nb.Q_TAIL] or venue_nb.due(sq_times, sq_ptr, now)
               or now >= oms_words[oms_nb.O_NEXT_DEADLINE]):
            n = venue_nb.deliver(V, now, reports, 0)
            for k in range(n):
                r = reports[k]
                event = r.event
                if event == ReportEvent.PARTIAL or event == ReportEvent.FILL:
                    f = fills[counters[C_FILLS]]
                    f.exch_ts_ns = r.exch_ts_ns
                    f.client_order_id = r.client_order_id
                    f.side = r.side
                    f.price = r.price
                    f.qty = r.qty
                    f.fee = r.fee
                    counters[C_FILLS] += 1
                elif event == ReportEvent.REJECT and r.reason < 64:
                    counters[C_REJECT_COUNTS + r.reason] += 1
                owned = False
                for s in literal_unroll(slots):
                    if s.ids[ID_STRATEGY] == r.strategy_id:
                        owned = True
                        pnb.apply_report(s.pf, s.orders, event, r.client_order_id, r.side, r.price, r.qty,
                                         r.leaves_qty, r.fee, r.exch_ts_ns, False)
                        if s.ids[ID_RUNNING] != 0 and s.ids[ID_HAS] & HAS_REPORT:
                            before = icount[0]
                            s.on_report(_ctx(s, intents, icount, now, 0), r)
                            if s.pf[pnb.PF_FAULT] != 0.0:
                                _fault(s, intents, icount, before, now)
                if not owned:
                    counters[C_ORPHANS] += 1
            if n < reports.shape[0]:
                break
        # 3. the message's events, then timers
        for s in literal_unroll(slots):
            if s.ids[ID_RUNNING] != 0 and s.ids[ID_SYMBOL] == symbol_id:
                deliver_events(s, intents, icount, now, origin, events, i, end, trades)
        for s in literal_unroll(slots):
            interval = s.ids[ID_TIMER_NS]
            if interval > 0 and s.ids[ID_RUNNING] != 0 and now >= s.ids[ID_NEXT_TIMER]:
                s.ids[ID_NEXT_TIMER] = now - now % interval + interval
                before = icount[0]
                s.on_timer(_ctx(s, intents, icount, now, origin), now)
                if s.pf[pnb.PF_FAULT] != 0.0:
                    _fault(s, intents, icount, before, now)
        # 4. the book (levels applied in step 1): a message that changed it ends with its top row
        rows = 0
        if book_event and book_status == l2_apply_nb.APPLY_BOOK_END:
            l2_apply_nb.message_end_top(b_state, b_bw, b_aw, b_fbp, b_fbq, b_fap, b_faq, b_issues, book_b, end - 1,
                                        b_meta, b_px, b_qty)
            rows = 1
        if rows > 0:
            last = rows - 1
            b = b_meta[last, 0]
            if b_meta[last, 4] != 0 and b_meta[last, 5] > 0 and b_meta[last, 6] > 0:
                mid = 0.5 * (b_px[last, 0, 0] * params[b, l2_apply_nb.BP_PX_NUM] / params[b, l2_apply_nb.BP_PX_DEN]
                             + b_px[last, 1, 0] * params[b, l2_apply_nb.BP_PX_NUM] / params[b, l2_apply_nb.BP_PX_DEN])
                if mid != marked_mid:
                    marked_mid = mid  # an unchanged mid leaves risk's marks as they are
                    venue_nb.mark_flat(snap, r_symbols, r_account, r_control, book_symbol[b], mid, b_meta[last, 1])
            for s in literal_unroll(slots):
                mine = s.ids[ID_BOOK]
                row = -1
                for k in range(rows):
                    if b_meta[k, 0] == mine:
                        row = k
                if row >= 0:
                    px_num = params[mine, l2_apply_nb.BP_PX_NUM]
                    px_den = params[mine, l2_apply_nb.BP_PX_DEN]
                    q_num = params[mine, l2_apply_nb.BP_QTY_NUM]
                    q_den = params[mine, l2_apply_nb.BP_QTY_DEN]
                    bid, bid_qty, ask, ask_qty, mid = np_nan, 0.0, np_nan, 0.0, np_nan
                    if b_meta[row, 5] > 0:
                        bid = b_px[row, 0, 0] * px_num / px_den
                        bid_qty = b_qty[row, 0, 0] * q_num / q_den
                    if b_meta[row, 6] > 0:
                        ask = b_px[row, 1, 0] * px_num / px_den
                        ask_qty = b_qty[row, 1, 0] * q_num / q_den
                    if b_meta[row, 5] > 0 and b_meta[row, 6] > 0:
                        mid = 0.5 * (bid + ask)
                        s.pf[pnb.PF_MID] = mid
                    s.market[M_BID] = bid
                    s.market[M_ASK] = ask
                    if s.ids[ID_RUNNING] != 0 and s.ids[ID_HAS] & HAS_BOOK:
                        counters[C_DECISIONS] += 1
                        before = icount[0]
                        s.on_book(_ctx(s, intents, icount, now, origin),
                                  cx.BookTop(b_meta[row, 1], bid, ask, bid_qty, ask_qty, mid, b_meta[row, 4]))
                        if s.pf[pnb.PF_FAULT] != 0.0:
                            _fault(s, intents, icount, before, now)
        # 5. intents out
        if icount[0] > 0:
            _send_intents(V, intents, icount, now, counters)
        # 6. equity
        while now >= next_sample:
            k = counters[C_EQUITY]
            equity_ts[k] = next_sample
            equity[k] = equity_of(slots)
            counters[C_EQUITY] = k + 1
            next_sample += interval_ns
        counters[C_MESSAGES] += 1
        i = end
    counters[C_NEXT_EVENT] = i
    loop_state[L_MARKED_MID] = marked_mid
    return i

