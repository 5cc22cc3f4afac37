"""An inverse position says its units wherever it is shown: the dashboard's JSON, /metrics, the API and
the summary's PnL line. Beside a linear (USDT) position, the totals are per settlement currency (USDT,
ETH), each the sum of its symbols' figures, and no figure adds the two currencies; risk's account at the
marks (its daily loss measure) stays apart, labelled as a conversion. One currency: as before."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hftshm.metrics.collector import PlatformCollector
from hftshm.metrics.snapshot import PlatformSnapshot, PositionSnapshot
from hftshm.symbols import Symbol, SymbolTable
from hftshm.runtime.platform_run import account_pnl, status_line
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


BTC_PNL = 5.0 + 1.0 - 0.5  # realized + unrealized - fees, USDT
ETH_PNL = 0.002 + 0.001 - 0.0001  # ETH
CROSS_SUMS = (BTC_PNL + ETH_PNL, 5.0 + 0.002)  # what adding the two currencies would show


def _no_cross_sum(values) -> None:
    for value in values:
        assert all(value != pytest.approx(bad) for bad in CROSS_SUMS), value


def test_the_totals_are_per_currency_each_its_symbols_sum():
    totals = SNAP.pnl_by_currency()
    assert list(totals) == ["ETH", "USDT"] and SNAP.several_currencies
    assert totals["USDT"]["symbols"] == ["BTCUSDT"] and totals["ETH"]["symbols"] == ["ETHUSD_PERP"]
    rows = SNAP.by_symbol()
    for currency, total in totals.items():
        for key in ("realized_pnl", "unrealized_pnl", "fees", "pnl"):
            assert total[key] == pytest.approx(sum(rows[s][key] for s in total["symbols"]))
    assert totals["USDT"]["pnl"] == pytest.approx(BTC_PNL) and totals["ETH"]["pnl"] == pytest.approx(ETH_PNL)


def test_the_summary_line_has_no_total_across_currencies():
    line = account_pnl(SNAP)
    assert line["total"] is None and line["realized"] is None and line["unit"] is None
    assert {c: r["pnl"] for c, r in line["by_currency"].items()} == pytest.approx({"USDT": BTC_PNL, "ETH": ETH_PNL})
    # risk's daily-loss measure is a conversion at the marks, kept apart and named so
    converted = line["risk_account_at_mark"]
    assert converted["unit"] == "USD" and "converted at its mark" in converted["what"]
    assert converted["total"] == pytest.approx(BTC_PNL + ETH_PNL * 2600.0)
    text = status_line(SNAP, 1.0)
    assert "+5.5 USDT" in text and "ETH" in text
    # one currency: the line as before, with its by_currency beside it
    one = PlatformSnapshot(running=True, positions=SNAP.positions[:1])
    line = account_pnl(one)
    assert line["total"] == pytest.approx(BTC_PNL) and line["unit"] == "USD"
    assert line["by_currency"]["USDT"]["pnl"] == pytest.approx(BTC_PNL)


def test_dashboard_rows_carry_units_and_the_pnl_line_is_per_currency():
    model = DashboardModel()
    model.sample(SNAP)
    d = model.render(SNAP, [], [])
    assert d["pnl"]["total"] is None and d["pnl"]["unit"] is None
    assert d["pnl"]["by_currency"]["ETH"]["pnl"] == pytest.approx(ETH_PNL)
    assert d["pnl"]["by_currency"]["USDT"]["pnl"] == pytest.approx(BTC_PNL)
    assert d["history"][0]["pnl"] is None
    assert d["history"][0]["pnl_by_currency"] == pytest.approx({"USDT": BTC_PNL, "ETH": ETH_PNL})
    _no_cross_sum(v for row in d["pnl"]["by_currency"].values() for v in (row["pnl"], row["realized_pnl"]))
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
    assert ("hftshm_pnl", ()) not in samples  # no one total of two currencies
    assert samples[("hftshm_currency_pnl", (("currency", "USDT"),))] == pytest.approx(BTC_PNL)
    assert samples[("hftshm_currency_pnl", (("currency", "ETH"),))] == pytest.approx(ETH_PNL)
    assert samples[("hftshm_symbol_pnl", (("currency", "ETH"), ("symbol", "ETHUSD_PERP")))] == pytest.approx(ETH_PNL)
    _no_cross_sum(samples.values())


def test_the_api_gives_totals_per_currency_and_no_total_across_them():
    from tests.unit.test_web_api import SECRET, bearer
    from hftshm.web.app import create_app
    from hftshm.web.config import WebConfig

    app = create_app(WebConfig(), _View(), jwt_secret=SECRET)
    try:
        client = app.test_client()
        body = client.get("/api/positions", headers=bearer("dev")).json
        assert body["pnl_total"] is None and body["pnl_total_unit"] is None
        assert {c: r["pnl"] for c, r in body["pnl_by_currency"].items()} == pytest.approx(
            {"USDT": BTC_PNL, "ETH": ETH_PNL})
        assert body["symbols"]["ETHUSD_PERP"]["currency"] == "ETH"
        status = client.get("/api/metrics/data", headers=bearer("dev")).json
        assert status["pnl_total"] is None and set(status["pnl_by_currency"]) == {"USDT", "ETH"}
        _no_cross_sum(r["pnl"] for r in status["pnl_by_currency"].values())
    finally:
        jobs = app.extensions["hftshm"].get("jobs")
        if jobs is not None:
            jobs.shutdown()
