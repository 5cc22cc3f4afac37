"""A run of the whole platform on the COIN-M recording (ETHUSD_PERP, inverse, 10 USD contracts) with
the shipped config: the strategy's position is in contracts with its PnL and fees in ETH, risk's
account and the run summary in USD (the coin at its mark), each matching a hand computation from the
fills the OMS database holds, and every figure says its unit."""

from __future__ import annotations

import pytest

from hftshm.feed.binance import import_files
from hftshm.runtime.platform_run import build_summary

from .platform_harness import ROOT, e2e_config, run_platform

pytestmark = pytest.mark.slow

CONTRACT_USD = 10.0


@pytest.fixture(scope="module")
def coinm_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("coinm") / "ethusd_perp.csv.gz"
    stem = ROOT / "data" / "binance_coinm_ethusd_perp"
    import_files([stem.with_name(stem.name + "_20240808.gz"), stem.with_name(stem.name + "_20240809.gz")], data)
    run_dir = tmp_path_factory.mktemp("inverse-run") / "run"
    # the shipped market maker moved to the contract market, sized in contracts (the shipped 0.01 is BTC)
    mm = {"symbol": "ETHUSD_PERP", "quantity": 1.0, "max_inventory": 5.0, "spread_bps": 0.5,
          "min_requote_interval_ms": 5}
    # start: the feed builds the new file's event cache first (a minute on a shared machine)
    config = e2e_config(run_dir, {"feed": {"data": [str(data)]}, "strategies": {"market_maker": mm},
                                  "supervisor": {"start_timeout_s": 1200.0}})
    return run_platform(config, timeout_s=1800.0)


def _by_hand(fills, mark: float) -> tuple[float, float]:
    """(realized + unrealized, fees) in ETH: a contract bought at p and marked at M gains
    10 USD x (1/p - 1/M) ETH, sold the opposite; exact whatever the averaging."""
    pnl = fees = 0.0
    for f in fills:
        sign = 1.0 if int(f["side"]) == 1 else -1.0
        pnl += sign * float(f["qty"]) * CONTRACT_USD * (1.0 / float(f["price"]) - 1.0 / mark)
        fees += float(f["fee"] or 0.0)
    return pnl, fees


def test_the_strategy_position_is_in_contracts_and_its_pnl_in_eth_as_computed_by_hand(coinm_run):
    r = coinm_run
    assert len(r.fills) > 0
    (p,) = [p for p in r.snapshot.positions if p.symbol == "ETHUSD_PERP"]
    assert (p.market, p.qty_unit, p.pnl_unit) == ("inverse", "contracts (10 USD)", "ETH")
    position = sum((1 if int(f["side"]) == 1 else -1) * float(f["qty"]) for f in r.fills)
    assert p.quantity == position and all(float(f["qty"]).is_integer() for f in r.fills)
    pnl, fees = _by_hand(r.fills, p.mark_price)
    assert p.realized_pnl + p.unrealized_pnl == pytest.approx(pnl, rel=1e-9, abs=1e-14)
    assert p.fees == pytest.approx(fees, rel=1e-9)
    # every fee is the fill's ETH notional times the maker or taker rate
    for f in r.fills:
        bps = float(f["fee"]) / (float(f["qty"]) * CONTRACT_USD / float(f["price"])) * 1e4
        assert bps == pytest.approx(2.0) or bps == pytest.approx(5.0)


def test_risk_and_the_summary_account_in_usd_at_the_mark(coinm_run):
    r = coinm_run
    (p,) = [p for p in r.snapshot.positions if p.symbol == "ETHUSD_PERP"]
    mark = p.mark_price
    pnl, fees = _by_hand(r.fills, mark)
    control = r.control
    assert control["realized_pnl"] + control["unrealized_pnl"] == pytest.approx(pnl * mark, rel=1e-6, abs=1e-9)
    assert control["fees"] == pytest.approx(fees * mark, rel=1e-6)
    summary = build_summary(r.snapshot, r.elapsed_s, None)
    assert summary["pnl"]["unit"] == "USD"
    assert summary["pnl"]["total"] == pytest.approx((pnl - fees) * mark, rel=1e-6, abs=1e-9)
    assert summary["pnl"]["strategies_total"] == pytest.approx((pnl - fees) * mark, rel=1e-6, abs=1e-9)
    (row,) = [row for row in summary["positions"] if row["symbol"] == "ETHUSD_PERP"]
    assert (row["qty_unit"], row["pnl_unit"]) == ("contracts (10 USD)", "ETH")
