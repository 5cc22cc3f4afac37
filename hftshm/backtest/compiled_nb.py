"""The compiled backtest loop for a strategy with a kernel (the built-in market maker).

Same sequence, per exchange message, as the Python loop (engine.run_loop), so both paths give the
same fills for the same strategy:

1. the message reaches the venue (orders arriving before each event are matched first);
2. reports due by the message's time are delivered: risk and the portfolio take them, and each one
   lets the strategy requote (a fill changes inventory);
3. the L2 book takes the message; if it changed, risk marks the new mid and the strategy decides;
4. the intents of 2 and 3 go to the venue, stamped with the message's market time;
5. equity is sampled on the market-time grid.

Everything is arrays and scalars; nothing allocates inside the loop. ``counters`` (C_*) and the
fills/equity outputs are filled in place; the caller sizes outputs for the whole run (the
Python wrapper grows them and resumes from ``C_NEXT_EVENT`` if one runs out).
"""

from __future__ import annotations

import math

from numba import njit

from hftshm.backtest import venue_nb
from hftshm.book import book_nb
from hftshm.codes import Action, EventFlag, EventKind, ReportEvent
from hftshm.oms import oms_nb
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.builtin import market_maker_nb as mm_nb

# counters
C_NEXT_EVENT = 0  # where the loop stopped (== stop when done)
C_FILLS = 1
C_EQUITY = 2
C_ORDERS_SENT = 3
C_SUBMITTED_LOTS_E9 = 4  # submitted new-order quantity, in 1e-9 units (exact integer sum)
C_MESSAGES = 5
C_DECISIONS = 6
C_REJECT_COUNTS = 16  # + Reason code: rejects by reason (64 slots)
C_SIZE = 80

# loop_state (float64): what the loop carries from one call to the next
L_BEST_BID, L_BEST_ASK, L_MARKED_MID = 0, 1, 2
L_SIZE = 4

_LAST = int(EventFlag.LAST_IN_MESSAGE)


@njit(cache=True)
def _equity(pf, mid):
    return pf[pnb.PF_REALIZED] - pf[pnb.PF_FEES] + pnb.unrealized(pf, mid)


@njit(cache=True)
def _send_intents(V, intents, icount, now_ns, counters):
    n = icount[0]
    if n == 0:
        return
    for k in range(n):
        if intents[k].action == Action.NEW:
            counters[C_ORDERS_SENT] += 1
            counters[C_SUBMITTED_LOTS_E9] += round(intents[k].qty * 1e9)
    venue_nb.send(V, intents, n, now_ns)
    icount[0] = 0


@njit(cache=True)
def run_market_maker(events, start, stop, books, book_out, V, mm_params, mm_state, pf, orders, intents, icount, ids,
                     grid, reports, fills, equity_ts, equity, interval_ns, counters, loop_state):
    """Run the market maker over ``events[start:stop]``; see the module docstring.

    ``ids`` = [strategy_id, symbol_id, book index of the symbol]; ``grid`` = [tick, lot]; ``book_out`` =
    (meta, px, qty) scratch for the book kernel (meta rows >= events in the longest message). Stops early
    (``counters[C_NEXT_EVENT]`` < stop) only when ``fills`` or ``equity`` is full, at a message boundary.
    """
    strategy_id = ids[0]
    symbol_id = ids[1]
    mine = ids[2]
    tick = grid[0]
    lot = grid[1]
    state = books[0]
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
    b_state, b_params, b_bw, b_aw, b_fbp, b_fbq, b_fap, b_faq, b_issues, b_of = books
    b_meta, b_px, b_qty = book_out
    # carried across calls (the wrapper runs the data in chunks): the book top the strategy last saw
    best_bid = loop_state[L_BEST_BID]
    best_ask = loop_state[L_BEST_ASK]
    marked_mid = loop_state[L_MARKED_MID]
    if counters[C_EQUITY] > 0:
        next_sample = equity_ts[counters[C_EQUITY] - 1] + interval_ns
    else:
        next_sample = events[start].exch_ts_ns
    i = start
    while i < stop:
        if counters[C_FILLS] + reports.shape[0] > fills.shape[0] or counters[C_EQUITY] + 2 >= equity.shape[0]:
            break
        # one exchange message: events up to the one flagged last
        end = i
        book_event = False  # any record that can change the L2 levels (not a trade, not a BBO)
        while True:
            kind = events[end].kind
            if kind != EventKind.TRADE and kind != EventKind.BBO:
                book_event = True
            if end >= stop - 1 or (events[end].flags & _LAST) != 0:
                break
            end += 1
        end += 1
        now = events[end - 1].exch_ts_ns
        venue_nb.market_flat(events, i, end, S, pend, pend_arrival, room, x_out, sq_reports, sq_times, sq_srcs, sq_ptr,
                             stats)
        # 2. reports due now
        n = 0
        if (lq_ptr[venue_nb.Q_HEAD] < lq_ptr[venue_nb.Q_TAIL] or venue_nb.due(sq_times, sq_ptr, now)
                or now >= oms_words[oms_nb.O_NEXT_DEADLINE]):
            n = venue_nb.deliver(V, now, reports, 0)
        for k in range(n):
            r = reports[k]
            event = r.event
            pnb.apply_report(pf, orders, event, r.client_order_id, r.side, r.price, r.qty, r.leaves_qty, r.fee,
                             r.exch_ts_ns, False)
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
            if best_bid == best_bid:
                mm_nb.on_book(mm_params, mm_state, pf, orders, intents, icount, strategy_id, symbol_id, tick, lot,
                              now, events[end - 1].publish_ts_ns, best_bid, best_ask)
        # 3. the book: its per-message kernel on unpacked arrays (one call, no per-event tuple unpacking)
        changed = False
        rows = 0
        if book_event:  # a message of trades or BBOs only leaves the L2 levels as they are
            _, rows, _, _, _ = book_nb._run(b_state, b_params, b_bw, b_aw, b_fbp, b_fbq, b_fap, b_faq, b_issues, b_of,
                                            events, i, end, 1, b_meta, b_px, b_qty, None, b_meta.shape[0])
        for r in range(rows):
            if b_meta[r, 0] == mine:
                changed = True
        if changed:
            bid_t = state[mine, book_nb.BS_BEST_BID]
            ask_t = state[mine, book_nb.BS_BEST_ASK]
            if bid_t != book_nb.NO_BID and ask_t != book_nb.NO_ASK:
                best_bid = bid_t * params[mine, book_nb.BP_PX_NUM] / params[mine, book_nb.BP_PX_DEN]
                best_ask = ask_t * params[mine, book_nb.BP_PX_NUM] / params[mine, book_nb.BP_PX_DEN]
                mid = 0.5 * (best_bid + best_ask)
                pf[pnb.PF_MID] = mid
                if state[mine, book_nb.BS_VALID] != 0 and mid != marked_mid:
                    marked_mid = mid  # an unchanged mid leaves risk's marks as they are
                    venue_nb.mark_flat(snap, r_symbols, r_account, r_control, symbol_id, mid, now)
                counters[C_DECISIONS] += 1
                mm_nb.on_book(mm_params, mm_state, pf, orders, intents, icount, strategy_id, symbol_id, tick, lot,
                              now, events[end - 1].publish_ts_ns, best_bid, best_ask)
        # 4. intents out (checked here: a call that takes V costs a refcount update per array in it)
        if icount[0] > 0:
            _send_intents(V, intents, icount, now, counters)
        # 5. equity
        while now >= next_sample:
            k = counters[C_EQUITY]
            equity_ts[k] = next_sample
            equity[k] = _equity(pf, pf[pnb.PF_MID])
            counters[C_EQUITY] = k + 1
            next_sample += interval_ns
        counters[C_MESSAGES] += 1
        i = end
    counters[C_NEXT_EVENT] = i
    loop_state[L_BEST_BID] = best_bid
    loop_state[L_BEST_ASK] = best_ask
    loop_state[L_MARKED_MID] = marked_mid
    return i
