"""Inverse and linear PnL/notional against hand-computed cases."""

from __future__ import annotations

import pytest

from hftshm.instruments_nb import average_entry, notional, position_pnl
from hftshm.symbols import Market


def test_inverse_long_and_short_pnl_are_in_the_coin():
    # 100 ETHUSD_PERP contracts (10 USD each) long from 2500 to 2600:
    # 1000 USD * (1/2500 - 1/2600) = 1000 * 100 / (2500 * 2600) = 0.015384615... ETH
    assert position_pnl(Market.INVERSE, 100.0, 2500.0, 2600.0, 10.0) == pytest.approx(1000 * 100 / (2500 * 2600))
    assert position_pnl(Market.INVERSE, 100.0, 2500.0, 2600.0, 10.0) == pytest.approx(0.0153846153846)
    assert position_pnl(Market.INVERSE, -100.0, 2500.0, 2600.0, 10.0) == pytest.approx(-0.0153846153846)
    # BTCUSD_PERP: 100 USD contracts; 3 contracts long 60000 -> 50000 lose 300*(1/50000-1/60000) = 0.001 BTC
    assert position_pnl(Market.INVERSE, 3.0, 60000.0, 50000.0, 100.0) == pytest.approx(-0.001)


def test_linear_and_spot_pnl_are_in_the_quote():
    assert position_pnl(Market.LINEAR, 0.5, 60000.0, 61000.0, 1.0) == pytest.approx(500.0)
    assert position_pnl(Market.SPOT, -2.0, 2500.0, 2400.0, 1.0) == pytest.approx(200.0)


def test_notional():
    assert notional(Market.INVERSE, -100.0, 2500.0, 10.0) == pytest.approx(0.4)  # 1000 USD = 0.4 ETH
    assert notional(Market.LINEAR, -0.5, 60000.0, 1.0) == pytest.approx(30000.0)


def test_inverse_average_entry_is_harmonic_and_keeps_pnl_exact():
    entry = average_entry(Market.INVERSE, 100.0, 2500.0, 100.0, 2600.0)
    assert entry == pytest.approx(200 / (100 / 2500 + 100 / 2600))
    # the combined position's PnL equals the sum of the pieces' PnL
    whole = position_pnl(Market.INVERSE, 200.0, entry, 2700.0, 10.0)
    pieces = (position_pnl(Market.INVERSE, 100.0, 2500.0, 2700.0, 10.0)
              + position_pnl(Market.INVERSE, 100.0, 2600.0, 2700.0, 10.0))
    assert whole == pytest.approx(pieces, rel=1e-12)
    assert average_entry(Market.LINEAR, 1.0, 100.0, 3.0, 200.0) == pytest.approx(175.0)
