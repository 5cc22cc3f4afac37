"""VWAP execution's decisions, as compiled callbacks (``VwapExecution``'s ``on_events``, ``on_timer``,
``on_report``); the rules are in ``vwap.py``'s docstring.

The market's traded quantity of a message is summed as numpy sums it (pairwise), so the volume the
schedule follows is bit for bit the Python version's.
"""

from __future__ import annotations

import math

from numba import njit

from hftshm.codes import EventKind, ReportEvent
from hftshm.strategies import context_nb as cx
from hftshm.strategies.builtin.mean_reversion_nb import pairwise_sum

GATHER = 1024  # trades of one message summed in one pairwise pass (a message rarely holds more)

# rejects: child orders refused (by risk or the exchange); backoff: 1 from a refusal to the next timer
STATE = {"start_ns": 0, "done_ns": 0, "target": 0.0, "market_qty": 0.0, "market_notional": 0.0,
         "fill_qty": 0.0, "fill_notional": 0.0, "rejects": 0, "backoff": 0}


@njit(cache=True)
def remaining(ctx):
    return cx.round_qty(ctx, ctx.state.target - ctx.state.fill_qty + 1e-12)


@njit(cache=True)
def _send(ctx, qty, market):
    cx.signal(ctx)
    buying = ctx.params.side == 0
    if market:
        if buying:
            cx.buy_market(ctx, qty)
        else:
            cx.sell_market(ctx, qty)
    elif buying and ctx.best_ask == ctx.best_ask:
        cx.buy(ctx, ctx.best_ask, qty, cx.IOC)
    elif not buying and ctx.best_bid == ctx.best_bid:
        cx.sell(ctx, ctx.best_bid, qty, cx.IOC)


@njit(cache=True)
def work(ctx):
    s, p = ctx.state, ctx.params
    if s.done_ns or s.start_ns == 0 or s.backoff or cx.open_orders(ctx):
        return
    left = remaining(ctx)
    if left < ctx.lot:
        return
    elapsed = ctx.now_ns - s.start_ns
    finish_ns = p.finish_fraction * int(p.horizon_s * 1e9)
    if elapsed >= finish_ns:
        _send(ctx, left, True)
        return
    by_volume = p.participation * s.market_qty
    by_time = s.target * elapsed / finish_ns
    wanted = min(s.target, max(by_volume, by_time))
    child = cx.round_qty(ctx, min(wanted - s.fill_qty, p.max_slice, left))
    if child >= ctx.lot:
        _send(ctx, child, False)


@njit(cache=True)
def on_events(ctx, events):
    s = ctx.state
    if s.start_ns == 0:
        s.start_ns = events[0].exch_ts_ns
    if s.done_ns:
        return
    gathered = s.gather
    n = 0
    for k in range(events.shape[0]):
        e = events[k]
        if e.kind == EventKind.TRADE:
            gathered[n] = e.qty
            s.market_notional += e.qty * e.price
            n += 1
            if n == GATHER:
                s.market_qty += pairwise_sum(gathered, 0, n)
                n = 0
    if n:
        s.market_qty += pairwise_sum(gathered, 0, n)
    work(ctx)


@njit(cache=True)
def on_timer(ctx, now_ns):
    ctx.state.backoff = 0
    work(ctx)


@njit(cache=True)
def on_report(ctx, report):
    if report.event == ReportEvent.REJECT:
        # a refused child is not sent again at the next event (what refused it, a limit or the
        # kill switch, still holds then: each event would bring one more refusal) but at the next
        # timer, at most one try per TIMER_INTERVAL_NS
        ctx.state.rejects += 1
        ctx.state.backoff = 1
        return
    if report.qty > 0 and (report.event == ReportEvent.PARTIAL or report.event == ReportEvent.FILL):
        s = ctx.state
        s.fill_qty += report.qty
        s.fill_notional += report.qty * report.price
        if remaining(ctx) < ctx.lot and not s.done_ns:
            s.done_ns = ctx.now_ns


_ = math
