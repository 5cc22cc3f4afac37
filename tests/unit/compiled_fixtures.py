"""Compiled strategies for tests: a well-behaved one and two that misbehave."""

from __future__ import annotations

import math

from numba import njit

from hftshm.strategies import Array, CompiledStrategy, Param
from hftshm.strategies import context_nb as cx


@njit(cache=True)
def _buy_once(ctx, book):
    if ctx.state.sent == 0 and book.ask == book.ask:
        ctx.state.sent = 1
        ctx.state.seen[0] = book.ask
        cx.buy(ctx, book.ask, ctx.params.qty, cx.IOC)


class CompiledBuyOnce(CompiledStrategy):
    """Takes the ask once."""

    PARAMS = {"qty": Param(0.01, "size"), "side": Param("buy", "which side", choices=("buy", "sell")),
              "slots": Param(3, "state array size", min=1)}
    STATE = {"sent": 0, "seen": Array("slots", math.nan)}
    on_book = _buy_once


@njit(cache=True)
def _nan_price(ctx, book):
    cx.buy(ctx, math.nan, 0.01)


class NanPricer(CompiledStrategy):
    """Sends a NaN price: paused with the error named."""

    on_book = _nan_price


@njit(cache=True)
def _flood(ctx, book):
    for _ in range(100_000):
        if cx.buy(ctx, cx.round_bid(ctx, book.bid - 100.0), 0.001) < 0:
            break


class Flooder(CompiledStrategy):
    """Floods intents: paused when the outbox or its order table is full."""

    on_book = _flood


@njit(cache=True)
def _index_past_the_end(ctx, book):
    # one past the end of its STATE array: numba checks no bounds by default, so without the
    # runtime's bounds check this write would land in whatever memory follows the record
    ctx.state.seen[ctx.params.slots] = book.bid
    cx.buy(ctx, cx.round_bid(ctx, book.bid - 100.0), 0.001)


class IndexPastTheEnd(CompiledStrategy):
    """Writes past the end of its state array: paused with the error named, nothing overwritten."""

    PARAMS = {"slots": Param(2, "state array size", min=1)}
    STATE = {"seen": Array("slots", 0.0), "after": 7.0}
    on_book = _index_past_the_end
