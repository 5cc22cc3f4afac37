"""Linear and inverse contract arithmetic for kernels: PnL, notional and average entry by market kind.

Spot and linear (USD-M): quantity in the base asset, PnL and notional in the quote (USDT).
Inverse (COIN-M): quantity in contracts of ``contract_size`` USD each, PnL and notional in the base coin:
a long's PnL is ``contracts * contract_size * (1/entry - 1/exit)``; its notional ``contracts *
contract_size / price``; adding to a position averages entry prices harmonically (equal USD per
contract, different coin). ``market`` is ``hftshm.symbols.Market`` (0 spot, 1 linear, 2 inverse).
Pure functions of scalars, for risk/portfolio kernels to call.
"""

from __future__ import annotations

from numba import njit

SPOT, LINEAR, INVERSE = 0, 1, 2  # hftshm.symbols.Market


@njit(cache=True)
def position_pnl(market, qty, entry_price, exit_price, contract_size):
    """PnL of a position of signed ``qty`` (long > 0) opened at ``entry_price``, valued at ``exit_price``:
    quote currency for spot/linear, the coin for inverse."""
    if market == INVERSE:
        return qty * contract_size * (1.0 / entry_price - 1.0 / exit_price)
    return qty * (exit_price - entry_price)


@njit(cache=True)
def notional(market, qty, price, contract_size):
    """|value| of ``qty`` at ``price``: quote currency for spot/linear, the coin for inverse."""
    value = qty * contract_size / price if market == INVERSE else qty * price
    return value if value >= 0.0 else -value


@njit(cache=True)
def average_entry(market, qty_a, price_a, qty_b, price_b):
    """Entry price of two same-side pieces together (``qty_a`` at ``price_a`` plus ``qty_b`` at
    ``price_b``): arithmetic weighting for spot/linear, harmonic for inverse (so the inverse PnL formula
    stays exact on the combined position)."""
    total = qty_a + qty_b
    if total == 0.0:
        return 0.0
    if market == INVERSE:
        return total / (qty_a / price_a + qty_b / price_b)
    return (qty_a * price_a + qty_b * price_b) / total
