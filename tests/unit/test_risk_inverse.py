"""Risk's account on an inverse (COIN-M) symbol: positions in contracts, PnL and fees in the coin,
the account total in the quote currency (the coin at its mid), limits in contracts; a linear symbol
beside it books exactly as before."""

from __future__ import annotations

import pytest

from hftshm.codes import Reason, Side
from hftshm.config import Section
from hftshm.risk.config import RiskConfig
from hftshm.risk.engine import RiskEngine
from hftshm.risk.testing import fill, intents, reports, snapshots
from hftshm.symbols import Symbol, SymbolTable

BTC, ETHP = 1, 3
SYMBOLS = SymbolTable([Symbol("BTCUSDT", BTC, 0.1, 0.001),
                       Symbol("ETHUSD_PERP", ETHP, 0.01, 1.0, market="inverse", contract_size=10.0)])


def _engine(**overrides) -> RiskEngine:
    return RiskEngine(RiskConfig.from_section(Section("risk", dict(overrides)), SYMBOLS), SYMBOLS)


def _row(eng, name):
    return next(p for p in eng.state.positions() if p["symbol"] == name)


def test_inverse_round_trip_pnl_is_in_the_coin_and_matches_the_hand_computed_case():
    eng = _engine()
    # buy 100 contracts (10 USD each) at 2500 and 100 at 2600, sell 150 at 2700, mark the rest at 2550
    eng.on_reports(reports(fill(1, Side.BUY, 100.0, 2500.0, fee=0.0002, symbol_id=ETHP),
                           fill(2, Side.BUY, 100.0, 2600.0, fee=0.0002, symbol_id=ETHP),
                           fill(3, Side.SELL, 150.0, 2700.0, fee=0.0001, symbol_id=ETHP)))
    eng.on_marks(snapshots((ETHP, 2550.0)))
    entry = 200.0 / (100.0 / 2500.0 + 100.0 / 2600.0)  # harmonic: equal USD per contract
    realized = 150 * 10.0 * (1 / entry - 1 / 2700.0)
    unrealized = 50 * 10.0 * (1 / entry - 1 / 2550.0)
    fees = 0.0005
    row = _row(eng, "ETHUSD_PERP")
    assert row["position"] == 50.0
    assert row["avg_cost"] == pytest.approx(entry, rel=1e-12)
    assert row["realized"] == pytest.approx(realized, rel=1e-12)
    assert row["pnl"] == pytest.approx(realized + unrealized - fees, rel=1e-12)
    assert row["units"] == {"qty": "contracts", "pnl": "ETH", "notional": "ETH", "contract_usd": 10.0}
    # the account is in the quote currency: the coin's PnL at the mid
    summary = eng.state.summary()
    assert summary["unit"] == "USD"
    assert summary["total_pnl"] == pytest.approx((realized + unrealized - fees) * 2550.0, rel=1e-12)
    assert summary["realized_pnl"] == pytest.approx(realized * 2550.0, rel=1e-12)
    assert summary["fees"] == pytest.approx(fees * 2550.0, rel=1e-12)


def test_a_linear_symbol_beside_it_books_as_before_and_the_account_adds_both_in_the_quote():
    eng = _engine()
    eng.on_reports(reports(fill(1, Side.BUY, 0.5, 60_000.0, fee=1.0),
                           fill(2, Side.SELL, 0.5, 61_000.0, fee=1.0),
                           fill(3, Side.SELL, 30.0, 2500.0, symbol_id=ETHP)))
    eng.on_marks(snapshots((BTC, 61_000.0), (ETHP, 2400.0)))
    btc = _row(eng, "BTCUSDT")
    assert btc["realized"] == 500.0 and btc["pnl"] == 498.0
    assert btc["units"] == {"qty": "BTC", "pnl": "USDT", "notional": "USDT", "contract_usd": None}
    short = -30 * 10.0 * (1 / 2500.0 - 1 / 2400.0)  # a short gains in the coin when the price falls
    assert _row(eng, "ETHUSD_PERP")["pnl"] == pytest.approx(short, rel=1e-12) and short > 0
    assert eng.state.summary()["total_pnl"] == pytest.approx(498.0 + short * 2400.0, rel=1e-12)


def test_loss_limit_counts_an_inverse_loss_in_the_quote_currency():
    # 1000 contracts = 10,000 USD long from 2500, mid 2000: -1 ETH = -2000 USD, over a 1500 USD limit
    eng = _engine(max_daily_loss=1500.0, max_order_size=2000.0, max_position_per_symbol=5000.0)
    eng.on_reports(reports(fill(1, Side.BUY, 1000.0, 2500.0, symbol_id=ETHP)))
    eng.on_marks(snapshots((ETHP, 2000.0)))
    assert _row(eng, "ETHUSD_PERP")["pnl"] == pytest.approx(-1.0)
    assert eng.state.summary()["daily_pnl"] == pytest.approx(-2000.0)
    decisions = eng.check(intents({"symbol_id": ETHP, "price": 2000.0, "qty": 1.0}))
    assert decisions[0] == Reason.MAX_DAILY_LOSS


def test_size_limits_of_an_inverse_symbol_are_in_contracts_and_say_so():
    eng = _engine(max_order_size=20.0, max_position_per_symbol=50.0)
    eng.on_marks(snapshots((ETHP, 2500.0)))
    got = eng.check(intents({"symbol_id": ETHP, "price": 2500.0, "qty": 20.0},
                            {"symbol_id": ETHP, "price": 2500.0, "qty": 21.0},
                            {"symbol_id": ETHP, "price": 2500.0, "qty": 20.0},
                            {"symbol_id": ETHP, "price": 2500.0, "qty": 20.0}))
    assert list(got) == [0, Reason.MAX_ORDER_SIZE, 0, Reason.MAX_POSITION]
    limits = eng.state.limits()
    assert limits["max_daily_loss_unit"] == "USD"
    assert limits["symbols"]["ETHUSD_PERP"]["units"]["max_position_per_symbol"] == "contracts (10 USD)"
    assert limits["symbols"]["ETHUSD_PERP"]["units"]["price_band_min"] == "USD"
    assert limits["symbols"]["BTCUSDT"]["units"]["max_order_size"] == "BTC"
