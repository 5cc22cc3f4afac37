"""Prices on a symbol's tick grid and quantities on its lot grid.

Bids round down and asks round up, so rounding never makes a quote more aggressive than the
strategy asked for. The final ``round(.., 10)`` maps ``k * tick`` (which floats get slightly
wrong: 618003 * 0.1 = 61800.30000000001) to the double closest to the decimal price, the value an
exchange parsing "61800.3" would hold.
"""

from __future__ import annotations

import math

from numba import njit

# a price already on the grid may sit a hair below it after float division; don't push it a tick
_GRID_EPS = 1e-7


@njit(cache=True)
def floor_to_tick(price, tick):
    return round(math.floor(price / tick + _GRID_EPS) * tick, 10)


@njit(cache=True)
def ceil_to_tick(price, tick):
    return round(math.ceil(price / tick - _GRID_EPS) * tick, 10)


@njit(cache=True)
def nearest_tick(price, tick):
    return round(round(price / tick) * tick, 10)


@njit(cache=True)
def floor_to_lot(qty, lot):
    return round(math.floor(qty / lot + _GRID_EPS) * lot, 10)
