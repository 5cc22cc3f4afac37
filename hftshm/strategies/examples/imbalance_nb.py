"""The README's compiled example, as a module (``hftshm bench backtest`` runs it; a test keeps it
identical to the README's block)."""

from numba import njit

from hftshm.strategies import CompiledStrategy, Param
from hftshm.strategies import context_nb as cx


@njit(cache=True)
def on_book(ctx, book):
    if cx.open_orders(ctx):
        return  # one order at a time
    position = cx.position(ctx)
    if position == 0 and cx.imbalance(book) > ctx.params.threshold:
        cx.signal(ctx)
        cx.buy(ctx, cx.round_bid(ctx, book.mid), ctx.params.qty)
    elif position > 0 and cx.imbalance(book) < 0:
        cx.sell(ctx, cx.round_ask(ctx, book.mid), position)


class ImbalanceTaker(CompiledStrategy):
    PARAMS = {"qty": Param(0.01, "order size, BTC", positive=True),
              "threshold": Param(0.8, "book imbalance that triggers", min=0.0, max=1.0)}
    on_book = on_book
