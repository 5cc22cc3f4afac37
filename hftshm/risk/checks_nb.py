"""The pre-trade check kernel: one call checks a whole batch of ``order_intent`` records.

Each intent gets a decision: 0 (approved) or the ``hftshm.codes.Reason`` it is rejected for.
Checks, in order (the first failing one names the reason):

1. UNKNOWN_SYMBOL     symbol id not configured (cancels too)
   -- cancels stop here and pass: they only ever reduce risk --
2. MALFORMED_INTENT   action, side or order type is not a known code
3. KILL_SWITCH        the control block's kill switch is on (read for every intent, so a switch
                      set mid-batch stops the very next check)
4. TRADING_HALTED     state HALTED (the reason is the block's halt_reason: MAX_DAILY_LOSS when the
                      loss limit halted it)
5. BAD_QTY / BAD_PRICE   qty NaN, inf or <= 0; limit price NaN, inf or <= 0
6. MAX_ORDER_SIZE     qty > the symbol's max_order_size
7. PRICE_BAND         no valid mid yet, limit price outside [band_min, band_max], or farther than
                      band_bps from the mid (fat finger)
8. UNKNOWN_ORDER      a replace of an order risk does not know (MALFORMED_INTENT if side/symbol differ)
9. REDUCE_ONLY        state REDUCING and the order would not reduce the position (a replace counts
                      by its net change: shrinking an order always passes)
10. MAX_POSITION      position + same-side open exposure + this order would exceed max_position
11. MAX_DAILY_LOSS    daily PnL is below -max_daily_loss and the order does not reduce
12. DUPLICATE_CLIENT_ORDER_ID / MAX_OPEN_ORDERS   a NEW's client id is already open / the
                      open-order table is full
13. THROTTLE          the strategy's token bucket, then the global one, is empty (checked last so
                      a rejected order does not spend a token)

An approved NEW reserves its quantity as open exposure at once, so the next intent in the same batch
already sees it. Every decision is counted in the control block (``checks``, ``approved``,
``rejected``, ``reject_counts[reason]``).
"""

from __future__ import annotations

import math

from numba import njit

from hftshm.codes import Action, OrderType, Reason, Side, TradingState
from hftshm.risk import orders_nb
from hftshm.risk.control import (APPROVED_WORD, CHECKS_WORD, HALT_REASON_WORD, KILL_SWITCH_WORD, REJECT_COUNTS_LEN,
                                 REJECT_COUNTS_WORD, REJECTED_WORD, TRADING_STATE_WORD)
from hftshm.risk.state_nb import daily_pnl
from hftshm.transport.atomics import load_acquire, store_release

_BAND_REL_EPS = 1e-12  # a price exactly on the band edge passes despite float rounding


@njit(cache=True, inline="always")
def _refill(bucket_tokens, last_ns, now_ns, rate_per_ns, burst):
    if now_ns > last_ns:
        bucket_tokens = min(burst, bucket_tokens + (now_ns - last_ns) * rate_per_ns)
        last_ns = now_ns
    return bucket_tokens, last_ns


@njit(cache=True)
def check_one(it, now_ns, symbols, strategies, acct, table, control_words, target_order_ids, k):
    """Decision for one intent; approval side effects (reservation, tokens) included.

    ``target_order_ids[k]`` receives the platform order id a cancel/replace acts on (0 if not yet acked).
    """
    target_order_ids[k] = 0
    sid = it.symbol_id
    if sid >= len(symbols) or symbols[sid].known == 0:
        return Reason.UNKNOWN_SYMBOL
    sym = symbols[sid]
    action = it.action
    if action == Action.CANCEL:
        slot = orders_nb.find(table, it.strategy_id, it.target_client_order_id)
        if slot >= 0:
            table[slot].cancel_sent = 1
            target_order_ids[k] = table[slot].order_id
        return Reason.NONE
    if action != Action.NEW and action != Action.REPLACE:
        return Reason.MALFORMED_INTENT
    # atomic loads: never hoisted out of the batch loop, so a switch set mid-batch stops the next check
    if load_acquire(control_words, KILL_SWITCH_WORD) != 0:
        return Reason.KILL_SWITCH
    state = load_acquire(control_words, TRADING_STATE_WORD)
    if state == TradingState.HALTED:
        halt_reason = control_words[HALT_REASON_WORD]
        if halt_reason > 0 and halt_reason < REJECT_COUNTS_LEN:
            return halt_reason
        return Reason.TRADING_HALTED
    side = it.side
    if side != Side.BUY and side != Side.SELL:
        return Reason.MALFORMED_INTENT
    order_type = it.order_type
    if order_type != OrderType.LIMIT and order_type != OrderType.MARKET:
        return Reason.MALFORMED_INTENT
    qty = it.qty
    if not (qty > 0.0) or math.isinf(qty):
        return Reason.BAD_QTY
    price = it.price
    if order_type == OrderType.LIMIT and (not (price > 0.0) or math.isinf(price)):
        return Reason.BAD_PRICE
    eps = sym.qty_eps
    if qty > sym.max_order_size + eps:
        return Reason.MAX_ORDER_SIZE
    mid = sym.mid
    if not (mid > 0.0):
        return Reason.PRICE_BAND  # no reference price: no fat-finger bound, so no trade
    if order_type == OrderType.LIMIT:
        if price < sym.band_min_px or price > sym.band_max_px:
            return Reason.PRICE_BAND
        if abs(price - mid) * 1e4 > mid * sym.band_bps * (1.0 + _BAND_REL_EPS):
            return Reason.PRICE_BAND

    target = -1
    added = qty  # net exposure this intent adds on its side
    if action == Action.REPLACE:
        target = orders_nb.find(table, it.strategy_id, it.target_client_order_id)
        if target < 0:
            return Reason.UNKNOWN_ORDER
        if table[target].symbol_id != sid or table[target].side != side:
            return Reason.MALFORMED_INTENT
        added = qty - table[target].leaves

    position = sym.position
    if side == Side.BUY:
        pending = sym.pending_buy
        exposure_after = position + pending + added
        reducing = added <= eps or (position < 0.0 and pending + added <= -position + eps)
    else:
        pending = sym.pending_sell
        exposure_after = pending + added - position
        reducing = added <= eps or (position > 0.0 and pending + added <= position + eps)
    if state == TradingState.REDUCING and not reducing:
        return Reason.REDUCE_ONLY
    if not reducing and exposure_after > sym.max_position + eps:
        return Reason.MAX_POSITION
    if not reducing and daily_pnl(acct) < -acct.max_daily_loss:
        return Reason.MAX_DAILY_LOSS
    if action == Action.NEW:
        if orders_nb.find(table, it.strategy_id, it.client_order_id) >= 0:
            return Reason.DUPLICATE_CLIENT_ORDER_ID
        if acct.open_orders * 8 >= len(table) * 7:
            return Reason.MAX_OPEN_ORDERS

    clock_ns = it.market_ts_ns if acct.use_market_clock != 0 else now_ns
    bucket = strategies[it.strategy_id]
    strategy_tokens, strategy_last = _refill(bucket.tokens, bucket.last_ns, clock_ns,
                                             acct.strategy_rate_per_ns, acct.strategy_burst)
    global_tokens, global_last = _refill(acct.global_tokens, acct.global_last_ns, clock_ns,
                                         acct.global_rate_per_ns, acct.global_burst)
    bucket.tokens = strategy_tokens
    bucket.last_ns = strategy_last
    acct.global_tokens = global_tokens
    acct.global_last_ns = global_last
    if strategy_tokens < 1.0 or global_tokens < 1.0:
        return Reason.THROTTLE
    bucket.tokens = strategy_tokens - 1.0
    acct.global_tokens = global_tokens - 1.0

    if action == Action.NEW:
        slot = orders_nb.insert(table, it.strategy_id, it.client_order_id, acct.open_orders)
        entry = table[slot]
        entry.symbol_id = sid
        entry.side = side
        entry.leaves = qty
        entry.price = price
        acct.open_orders += 1
    else:
        # a replace changes the order in place (it keeps its ids). An increase is reserved now; a
        # decrease is released when the OMS confirms it, so exposure is never under-counted.
        entry = table[target]
        entry.price = price
        target_order_ids[k] = entry.order_id
        if added > 0.0:
            entry.leaves += added
        else:
            added = 0.0
    if side == Side.BUY:
        sym.pending_buy += added
    else:
        sym.pending_sell += added
    return Reason.NONE


@njit(cache=True, nogil=True)
def check_intents(intents, start, mask, n, decisions, target_order_ids, now_ns, symbols, strategies, account, table,
                  control_words):
    """Check the ``n`` intents ``intents[(start + i) & mask]`` (a ring's slots; ``0, -1`` for a plain
    array); ``decisions[i]`` = 0 or a Reason. Returns the number approved.

    ``now_ns`` is the throttle clock when ``account.use_market_clock`` is 0 (monotonic, live);
    otherwise each intent's ``market_ts_ns`` is (simulated market time, replays and backtests).
    ``control_words`` is the control block as int64 words (``ControlBlock.words``).
    """
    acct = account[0]
    approved = 0
    for k in range(n):
        reason = check_one(intents[(start + k) & mask], now_ns, symbols, strategies, acct, table, control_words,
                           target_order_ids, k)
        decisions[k] = reason
        if reason == 0:
            approved += 1
        elif reason < REJECT_COUNTS_LEN:
            control_words[REJECT_COUNTS_WORD + reason] += 1
        # per check, released: an observer (another process) sees progress within a batch
        store_release(control_words, CHECKS_WORD, control_words[CHECKS_WORD] + 1)
    control_words[APPROVED_WORD] += approved
    control_words[REJECTED_WORD] += n - approved
    return approved
