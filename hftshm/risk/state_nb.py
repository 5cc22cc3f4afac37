"""Risk state as numpy structured arrays, and the small njit helpers the check and accounting kernels share.

Three arrays hold everything the hot path reads or writes (allocated once by ``hftshm.risk.state``):

``symbols``    one row per symbol id (index = symbol id): limits, position, average cost, PnL parts,
               the current mid, and open-order exposure per side. Quantities, limits and PnL are in
               the symbol's own units (``hftshm.units``): base asset and quote currency on spot and
               linear markets, contracts and the coin on inverse (COIN-M) ones.
``strategies`` one token bucket per strategy id (65,536 rows, the whole u2 range, so no id can miss).
``account``    one row: the global token bucket, throttle rates, daily-loss limit and PnL totals.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm import instruments_nb
from hftshm.codes import Reason, TradingState
from hftshm.risk.control import EPOCH_WORD, HALT_REASON_WORD, TRADING_STATE_WORD
from hftshm.transport.atomics import store_release

SYMBOL_DTYPE = np.dtype(
    [
        ("known", "i8"),  # 1 when the id is configured in [symbols]
        ("max_order_size", "f8"),
        ("max_position", "f8"),
        ("band_min_px", "f8"),
        ("band_max_px", "f8"),
        ("band_bps", "f8"),
        ("qty_eps", "f8"),  # quantities closer than this are equal (a millionth of a lot)
        ("market", "i8"),  # hftshm.symbols.Market: 0 spot, 1 linear, 2 inverse
        ("contract_size", "f8"),  # USD per contract (inverse), 1 otherwise
        ("position", "f8"),  # signed, all strategies: base units, or contracts (inverse)
        ("avg_cost", "f8"),  # average entry price of the open position (0 when flat); harmonic for inverse
        ("realized", "f8"),  # realized PnL before fees: quote units, or the coin (inverse)
        ("fees", "f8"),  # same unit as realized
        ("mid", "f8"),  # last valid mid (NaN until the first valid book)
        ("pnl", "f8"),  # realized - fees + the open position's PnL at mid, same unit as realized
        ("last_price", "f8"),  # price of the last fill: values an inverse PnL before the first mid
        ("pnl_account", "f8"),  # pnl in the account's unit (quote; an inverse symbol's coin at its mid)
        ("pending_buy", "f8"),  # open buy quantity risk has approved and not seen end
        ("pending_sell", "f8"),
        ("fills", "i8"),
        ("volume", "f8"),  # base units traded
    ]
)

BUCKET_DTYPE = np.dtype([("tokens", "f8"), ("last_ns", "i8")])
STRATEGY_SLOTS = 1 << 16  # strategy_id is u2

ACCOUNT_DTYPE = np.dtype(
    [
        ("global_tokens", "f8"),
        ("global_last_ns", "i8"),
        ("global_rate_per_ns", "f8"),
        ("global_burst", "f8"),
        ("strategy_rate_per_ns", "f8"),
        ("strategy_burst", "f8"),
        ("use_market_clock", "i8"),  # 1: throttle on intents' market_ts_ns; 0: on the now_ns passed in
        ("max_daily_loss", "f8"),
        ("total_pnl", "f8"),  # sum of symbols.pnl_account (quote currency)
        ("day_start_pnl", "f8"),  # total_pnl when the trading day began: daily PnL = total - this
        ("loss_halt_armed", "i8"),  # 1: the next loss-limit breach halts trading (re-armed once back within it)
        ("open_orders", "i8"),
        ("reports", "i8"),
        ("reports_unknown_order", "i8"),  # reports for orders not in the table (fills still count)
        ("reports_bad", "i8"),  # malformed reports (unknown symbol, NaN fill) counted and skipped
        ("marks", "i8"),
        ("last_market_ns", "i8"),  # newest exchange time seen in a mark: the day roll's clock in replays
        ("reports_replayed", "i8"),  # fill reports a restart found already booked from the OMS's record
    ]
)


@njit(cache=True, inline="always")
def daily_pnl(acct):
    return acct.total_pnl - acct.day_start_pnl


@njit(cache=True, inline="always")
def account_rate(sym):
    """Account units (quote currency) per unit of the symbol's PnL: 1, or the coin's price for an
    inverse symbol (its mid, the last fill price before the first mid, 0 before either)."""
    if sym.market != instruments_nb.INVERSE:
        return 1.0
    if sym.mid > 0.0:
        return sym.mid
    if sym.last_price > 0.0:
        return sym.last_price
    return 0.0


@njit(cache=True)
def refresh_symbol_pnl(sym):
    unrealized = 0.0
    if sym.position != 0.0 and sym.mid > 0.0:
        if sym.market == instruments_nb.INVERSE:
            unrealized = instruments_nb.position_pnl(instruments_nb.INVERSE, sym.position, sym.avg_cost, sym.mid,
                                                     sym.contract_size)
        else:
            unrealized = sym.position * (sym.mid - sym.avg_cost)
    sym.pnl = sym.realized - sym.fees + unrealized
    sym.pnl_account = sym.pnl * account_rate(sym)


@njit(cache=True)
def refresh_totals_and_loss(symbols, account, control_words):
    """Sum symbol PnL into the account; a fresh loss-limit breach halts trading once (edge-triggered).

    Edge-triggered so an operator who sets REDUCING after the halt is not overridden by the next
    mark; rejects of position-increasing orders stay level-triggered in the check kernel.
    """
    acct = account[0]
    total = 0.0
    for i in range(len(symbols)):
        if symbols[i].known != 0:
            total += symbols[i].pnl_account
    acct.total_pnl = total
    if daily_pnl(acct) < -acct.max_daily_loss:
        if acct.loss_halt_armed != 0:
            acct.loss_halt_armed = 0
            store_release(control_words, HALT_REASON_WORD, np.int64(Reason.MAX_DAILY_LOSS))
            store_release(control_words, TRADING_STATE_WORD, np.int64(TradingState.HALTED))
            store_release(control_words, EPOCH_WORD, control_words[EPOCH_WORD] + 1)
    else:
        acct.loss_halt_armed = 1


@njit(cache=True)
def refresh_symbol_pnl_all(symbols):
    for i in range(len(symbols)):
        if symbols[i].known != 0:
            refresh_symbol_pnl(symbols[i])
