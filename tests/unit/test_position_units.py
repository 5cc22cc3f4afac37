"""An inverse position says its units wherever it is shown: the dashboard's JSON, /metrics and the
account totals (in USD: its coin PnL at its mark); a linear one beside it is unchanged."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hftshm.metrics.collector import PlatformCollector
from hftshm.metrics.snapshot import PlatformSnapshot, PositionSnapshot
from hftshm.symbols import Symbol, SymbolTable
from hftshm.units import units_by_id
from hftshm.web.dashboard import DashboardModel

SYMBOLS = SymbolTable([Symbol("BTCUSDT", 1, 0.1, 0.001),
                       Symbol("ETHUSD_PERP", 3, 0.01, 1.0, market="inverse", contract_size=10.0)])
UNITS = units_by_id(SYMBOLS)
SNAP = PlatformSnapshot(running=True, positions=[
    PositionSnapshot("mm-btc", "BTCUSDT", 0.01, 61_000.0, 5.0, 1.0, 0.5, 61_100.0, **UNITS[1]),
    PositionSnapshot("mm-eth", "ETHUSD_PERP", 7.0, 2500.0, 0.002, 0.001, 0.0001, 2600.0, **UNITS[3]),
])


class _View:
    def snapshot(self):
        return SNAP


def test_units_by_id_names_the_coin_and_the_contract():
    assert UNITS == {1: {"market": "linear", "qty_unit": "BTC", "pnl_unit": "USDT"},
                     3: {"market": "inverse", "qty_unit": "contracts (10 USD)", "pnl_unit": "ETH"}}


def test_account_total_converts_the_coin_pnl_at_the_mark():
    eth = (0.002 + 0.001 - 0.0001) * 2600.0
    assert SNAP.total_pnl == pytest.approx(5.5 + eth)


def test_dashboard_rows_carry_units_and_the_pnl_line_its_unit():
    d = DashboardModel().render(SNAP, [], [])
    assert d["pnl"]["unit"] == "USD"
    assert d["pnl"]["realized"] == pytest.approx(5.0 + 0.002 * 2600.0)
    rows = {p["symbol"]: p for p in d["positions"]}
    assert (rows["ETHUSD_PERP"]["qty_unit"], rows["ETHUSD_PERP"]["pnl_unit"]) == ("contracts (10 USD)", "ETH")
    assert rows["BTCUSDT"]["pnl_unit"] == "USDT"


def test_metrics_export_the_units_as_an_info_series():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(_View()))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}
    key = ("hftshm_position_units", (("market", "inverse"), ("pnl_unit", "ETH"), ("qty_unit", "contracts (10 USD)"),
                                     ("strategy", "mm-eth"), ("symbol", "ETHUSD_PERP")))
    assert samples[key] == 1.0
    assert samples[("hftshm_realized_pnl", (("strategy", "mm-eth"), ("symbol", "ETHUSD_PERP")))] == 0.002
    assert samples[("hftshm_pnl", ())] == pytest.approx(SNAP.total_pnl)
