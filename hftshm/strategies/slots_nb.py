"""A compiled strategy as the compiled loops see it: ``StrategySlot``, one bundle per strategy.

``StrategySlot`` (a NamedTuple) carries a strategy's arrays and its callbacks as numba first-class
functions (typed by signature, see ``hftshm.strategies.compiled``); a tuple of slots, iterated with
``literal_unroll``, is how a compiled loop runs several strategies of different classes. Both the
backtest loop (``hftshm.backtest.simulate_nb``) and the platform step (``step_nb``) take slots.
"""

from __future__ import annotations

from typing import NamedTuple

from numba import literal_unroll, njit

from hftshm.codes import EventKind
from hftshm.strategies import context_nb as cx
from hftshm.strategies import portfolio_nb as pnb

# StrategySlot.ids (int64)
ID_STRATEGY, ID_SYMBOL, ID_BOOK, ID_RUNNING, ID_TIMER_NS, ID_NEXT_TIMER, ID_FAULT, ID_HAS = 0, 1, 2, 3, 4, 5, 6, 7
ID_SIZE = 8
# ID_HAS bits: which callbacks the strategy defines (the others are not called)
HAS_BOOK, HAS_TRADE, HAS_EVENTS, HAS_REPORT, HAS_TIMER = 1, 2, 4, 8, 16
# StrategySlot.market (float64): the book top the strategy last saw, its grid
M_BID, M_ASK, M_TICK, M_LOT = 0, 1, 2, 3
M_SIZE = 4


class StrategySlot(NamedTuple):
    params: object  # 1-record array of the strategy's PARAMS
    state: object  # 1-record array of its STATE
    pf: object
    orders: object
    ids: object
    market: object
    on_book: object
    on_trade: object
    on_events: object
    on_report: object
    on_timer: object


@njit(cache=True, inline="always")
def _ctx(s, intents, icount, now, origin):
    m = s.market
    return cx.StrategyContext(s.params[0], s.state[0], s.pf, s.orders, intents, icount, s.ids[ID_STRATEGY],
                              s.ids[ID_SYMBOL], m[M_TICK], m[M_LOT], now, origin, m[M_BID], m[M_ASK])


@njit(cache=True)
def _fault(s, intents, icount, before, now):
    """The callback just run left an error: pause the strategy (see the module docstring)."""
    pf = s.pf
    for k in range(before, icount[0]):
        pnb.forget_intent(pf, s.orders, intents[k].client_order_id)
    icount[0] = before
    s.ids[ID_FAULT] = int(pf[pnb.PF_FAULT])
    s.ids[ID_RUNNING] = 0
    pf[pnb.PF_FAULT] = 0.0
    cx.cancel_all(_ctx(s, intents, icount, now, 0))
    pf[pnb.PF_FAULT] = 0.0



@njit(cache=True, inline="always")
def deliver_events(s, intents, icount, now, origin, events, i, end, trades):
    """``events[i:end]`` (one symbol's, this strategy's) to the strategy: ``on_trade`` per trade (when
    ``trades``: the caller knows the run holds some), then ``on_events`` with the run; a callback that
    leaves an error pauses the strategy at once. The same step for the backtest loop and the platform."""
    if trades and s.ids[ID_HAS] & HAS_TRADE:
        for k in range(i, end):
            if events[k].kind == EventKind.TRADE and s.ids[ID_RUNNING] != 0:
                before = icount[0]
                s.on_trade(_ctx(s, intents, icount, now, origin), events[k])
                if s.pf[pnb.PF_FAULT] != 0.0:
                    _fault(s, intents, icount, before, now)
    if s.ids[ID_HAS] & HAS_EVENTS and s.ids[ID_RUNNING] != 0:
        before = icount[0]
        s.on_events(_ctx(s, intents, icount, now, origin), events[i:end])
        if s.pf[pnb.PF_FAULT] != 0.0:
            _fault(s, intents, icount, before, now)


@njit(cache=True)
def equity_of(slots):
    total = 0.0
    for s in literal_unroll(slots):
        pf = s.pf
        total += pf[pnb.PF_REALIZED] - pf[pnb.PF_FEES] + pnb.unrealized(pf, pf[pnb.PF_MID])
    return total
