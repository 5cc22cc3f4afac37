"""The built-in market maker on a 10 ms decision clock: the like-for-like peer of hftbacktest's.

``tools/hftbacktest_peer.py`` runs hftbacktest's market maker as ``while hbt.elapse(10 ms)``: it
decides once per 10 ms of market time on the book as it stands then, and not on fills. This is the
same ``MarketMaker`` (its parameters, its quoting rule ``market_maker_nb.quote``) deciding in
``on_timer`` every ``TIMER_INTERVAL_NS`` instead of at every book change and every fill, so
``hftshm bench backtest`` can time both loops on the same decision clock (``backtest-warm-10ms``)
beside the every-book-change version (``backtest-warm``).

The timer fires at the first message at or after each 10 ms boundary, before that message reaches
the book (``simulate_nb``'s sequence): the decision sees the book as of the boundary, as
hftbacktest's ``elapse`` leaves it.
"""

from __future__ import annotations

from numba import njit

from hftshm.strategies.builtin import market_maker_nb as mm
from hftshm.strategies.builtin.market_maker import MarketMaker

DECISION_INTERVAL_NS = 10_000_000


@njit(cache=True)
def on_timer(ctx, now_ns):
    if ctx.best_bid == ctx.best_bid:  # no book top yet: nothing to quote around
        mm.quote(ctx, ctx.best_bid, ctx.best_ask)


class TimedMarketMaker(MarketMaker):
    """``MarketMaker`` deciding every 10 ms of market time (``on_timer``), not per book change or fill."""

    KERNELS = {}  # not the parent's on_book / on_report: the clock alone drives the decisions
    TIMER_INTERVAL_NS = DECISION_INTERVAL_NS
    on_timer = on_timer
