"""The run summary's account line (runtime/platform_run.account_pnl): its total is its own parts."""

from __future__ import annotations

import pytest

from hftshm.metrics.snapshot import PlatformSnapshot, PositionSnapshot, RiskSnapshot
from hftshm.runtime.platform_run import account_pnl


def test_total_is_realized_plus_unrealized_minus_fees_of_the_account_even_when_strategy_rows_differ():
    # after a restart the strategies' rows were rebuilt on their own: fees 2.65 where risk has 15.45
    snapshot = PlatformSnapshot(
        risk=RiskSnapshot(realized_pnl=-5.0, unrealized_pnl=-1.64, fees=15.45),
        positions=[PositionSnapshot("market_maker", "BTCUSDT", 0.006, realized_pnl=2.0, unrealized_pnl=-1.4,
                                    fees=2.65)])
    line = account_pnl(snapshot)
    assert line["total"] == pytest.approx(-5.0 - 1.64 - 15.45)
    assert line["total"] == pytest.approx(line["realized"] + line["unrealized"] - line["fees"])
    assert line["strategies_total"] == pytest.approx(2.0 - 1.4 - 2.65)  # shown beside it, not mixed in


def test_without_risk_the_total_comes_from_the_positions():
    snapshot = PlatformSnapshot(positions=[PositionSnapshot("a", "BTCUSDT", 1.0, realized_pnl=3.0, fees=1.0)])
    assert account_pnl(snapshot)["total"] == pytest.approx(2.0)
