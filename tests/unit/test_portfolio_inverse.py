"""A strategy's portfolio on an inverse (COIN-M) symbol: contracts, harmonic entry, PnL and fees in
the coin, against hand-computed cases; the same kernels the compiled backtest and the platform use."""

import pytest

from hftshm.codes import Side
from hftshm.strategies import portfolio_nb as nb
from hftshm.strategies.base import Param, resolve_params
from hftshm.strategies.portfolio import Portfolio
from hftshm.symbols import Market, Symbol


def fill(pf, side, price, qty, fee=0.0):
    nb.apply_fill(pf, side, price, qty, fee, 0)


def test_inverse_long_closed_at_a_higher_price_gains_the_hand_computed_coin():
    p = Portfolio(market=Market.INVERSE, contract_size=10.0)
    fill(p.pf, Side.BUY, 2500.0, 100.0, fee=100 * 10 / 2500 * 2e-4)  # 100 contracts = 1000 USD = 0.4 ETH
    fill(p.pf, Side.SELL, 2600.0, 100.0, fee=100 * 10 / 2600 * 2e-4)
    # 1000 USD * (1/2500 - 1/2600) = 0.0153846... ETH
    assert p.realized_pnl == pytest.approx(1000 * (1 / 2500 - 1 / 2600), rel=1e-12)
    assert p.realized_pnl == pytest.approx(0.015384615384615, rel=1e-12)
    assert p.position == 0.0
    assert p.fees == pytest.approx(0.4 * 2e-4 + 1000 / 2600 * 2e-4, rel=1e-12)
    assert p.traded_notional == pytest.approx(0.4 + 1000 / 2600, rel=1e-12)  # ETH
    assert p.market is Market.INVERSE


def test_inverse_short_averages_harmonically_and_marks_in_the_coin():
    p = Portfolio(market=Market.INVERSE, contract_size=100.0)  # BTCUSD_PERP: 100 USD contracts
    fill(p.pf, Side.SELL, 60_000.0, 3.0)
    fill(p.pf, Side.SELL, 50_000.0, 3.0)
    entry = 6 / (3 / 60_000 + 3 / 50_000)
    assert p.avg_price == pytest.approx(entry, rel=1e-12)
    p.mark(40_000.0)
    # short 600 USD: gains 600 * (1/40000 - 1/entry) BTC
    assert p.unrealized_pnl == pytest.approx(-6 * 100 * (1 / entry - 1 / 40_000), rel=1e-12)
    assert p.unrealized_pnl == pytest.approx(600 / 40_000 - 300 / 60_000 - 300 / 50_000, rel=1e-12)
    fill(p.pf, Side.BUY, 40_000.0, 2.0)
    assert p.realized_pnl == pytest.approx(-2 * 100 * (1 / entry - 1 / 40_000), rel=1e-12)
    assert p.avg_price == pytest.approx(entry, rel=1e-12)  # reducing keeps the entry


def test_linear_is_unchanged_by_the_instrument_fields():
    linear, default = Portfolio(market=Market.LINEAR), Portfolio()
    for p in (linear, default):
        fill(p.pf, Side.BUY, 100.0, 1.0)
        fill(p.pf, Side.SELL, 120.0, 0.5)
        p.mark(110.0)
    assert linear.realized_pnl == default.realized_pnl == 10.0
    assert linear.unrealized_pnl == default.unrealized_pnl == 5.0
    assert linear.traded_notional == 160.0


def test_bind_gives_the_portfolio_its_symbols_instrument():
    from hftshm.strategies.base import Strategy

    s = Strategy()
    s.bind("s", 1, Symbol("ETHUSD_PERP", 3, 0.01, 1.0, market="inverse", contract_size=10.0))
    assert s.portfolio.market is Market.INVERSE and s.portfolio.pf[nb.PF_CONTRACT_SIZE] == 10.0


def test_quantity_parameters_default_to_contracts_on_an_inverse_market():
    declared = {"qty": Param(0.01, "size", positive=True, contracts=1.0), "bps": Param(2.0, "spread")}
    assert resolve_params("s", declared, {}, "linear") == {"qty": 0.01, "bps": 2.0}
    assert resolve_params("s", declared, {}, "inverse") == {"qty": 1.0, "bps": 2.0}
    assert resolve_params("s", declared, {"qty": 3}, "inverse") == {"qty": 3.0, "bps": 2.0}
    assert resolve_params("s", declared, {}, None) == {"bps": 2.0}  # market not known yet: filled in later
