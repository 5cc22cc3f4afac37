"""Imported execution reports: written once into the database (also across a writer restart), and
shown as positions and per-strategy fills by the web view of a monitor host."""

import math
from types import SimpleNamespace

import pytest

from hftshm.bridge.reports import ExecutionReportWriter, ImportedPositions, ImportedPositionsView, _Position
from hftshm.codes import ReportEvent, Side
from hftshm.metrics.snapshot import PlatformSnapshot
from hftshm.oms.config import OmsConfig
from hftshm.transport import layout
from hftshm.transport.testing import temporary_rings
from tests.bridge_helpers import context

REPORT = layout.load("execution_report")


def _reports(rows):
    out = REPORT.zeros(len(rows))
    for i, (strategy, event, side, qty, price, fee) in enumerate(rows):
        out[i]["seq"] = i
        out[i]["strategy_id"], out[i]["symbol_id"], out[i]["event"], out[i]["side"] = strategy, 1, event, side
        out[i]["qty"], out[i]["price"], out[i]["fee"] = qty, price, fee
    return out


FILL, ACK = int(ReportEvent.FILL), int(ReportEvent.ACK)
ROWS = [(1, ACK, Side.BUY, 1.0, 100.0, 0.0), (1, FILL, Side.BUY, 1.0, 100.0, 0.1),
        (1, FILL, Side.BUY, 1.0, 110.0, 0.1), (1, FILL, Side.SELL, 1.5, 120.0, 0.2),
        (2, FILL, Side.SELL, 0.5, 100.0, 0.05)]


def test_average_price_and_realized_pnl_follow_opening_reducing_and_flipping():
    p = _Position()
    p.fill(Side.BUY, 2.0, 100.0, 0.0)
    p.fill(Side.SELL, 3.0, 110.0, 0.0)  # closes 2 at +10 each, opens 1 short at 110
    assert p.realized_pnl == pytest.approx(20.0) and p.quantity == pytest.approx(-1.0) and p.avg_price == 110.0
    p.fill(Side.BUY, 1.0, 105.0, 0.0)
    assert p.quantity == 0.0 and math.isnan(p.avg_price) and p.realized_pnl == pytest.approx(25.0)


def test_an_inverse_position_counts_contracts_and_books_the_coin():
    p = _Position(market="inverse", contract_size=10.0)
    p.fill(Side.BUY, 100.0, 2500.0, 0.0)
    p.fill(Side.BUY, 100.0, 2600.0, 0.0)
    entry = 200 / (100 / 2500 + 100 / 2600)
    assert p.avg_price == pytest.approx(entry, rel=1e-12)
    p.fill(Side.SELL, 150.0, 2700.0, 0.0)
    assert p.realized_pnl == pytest.approx(150 * 10 * (1 / entry - 1 / 2700), rel=1e-12)
    assert p.quantity == 50.0 and p.last_price == 2700.0


def test_reports_are_written_once_across_a_restart_and_shown_as_positions(tmp_path):
    url = f"sqlite:///{tmp_path / 'oms.sqlite'}"
    config = SimpleNamespace(oms=OmsConfig(database_url=url))
    with temporary_rings({"oms.reports": ("execution_report", 64)}) as rings:
        ring = rings["oms.reports"]
        view = ring.claim(len(ROWS))
        view[:] = _reports(ROWS)
        ring.commit(len(ROWS))
        writer = ExecutionReportWriter(batch=3)
        writer.on_start(context("reports", config, tmp_path, inputs={"oms.reports": ring}))
        writer.ring.release = lambda n: None  # a writer killed after its commit, before releasing
        assert writer.do_work() == 3
        writer.on_close()
        del ring.release  # the successor releases as usual
        successor = ExecutionReportWriter(batch=64)
        successor.on_start(context("reports", config, tmp_path, inputs={"oms.reports": ring}))
        assert successor.do_work() == len(ROWS)
        assert not successor.ring.has_records()
        successor.on_close()
        assert int(successor.ctx.counters[4]) == 3  # skipped: its predecessor had written them
    positions = ImportedPositions(url)
    book = positions.refresh()
    assert book[(1, 1)].fills == 3 and book[(1, 1)].quantity == pytest.approx(0.5)
    assert book[(1, 1)].avg_price == pytest.approx(105.0) and book[(1, 1)].realized_pnl == pytest.approx(22.5)
    assert book[(2, 1)].quantity == pytest.approx(-0.5)

    class NoPositions:  # a monitor host's own view: no strategies, no risk stage
        control = None

        def snapshot(self):
            return PlatformSnapshot(running=True)

    snap = ImportedPositionsView(NoPositions(), positions, {1: "BTCUSDT"}).snapshot()
    assert [(p.strategy, p.symbol, round(p.quantity, 6)) for p in snap.positions] == [
        ("strategy-1", "BTCUSDT", 0.5), ("strategy-2", "BTCUSDT", -0.5)]
    assert {s.name: s.fills for s in snap.strategies} == {"strategy-1": 3, "strategy-2": 1}
    assert snap.total_pnl == pytest.approx(22.5 - 0.45)
    # what a monitor host's /api/positions answers
    import time

    import jwt

    from hftshm.web.app import create_app
    from hftshm.web.config import WebConfig

    secret = "reports-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG"
    now = int(time.time())
    token = jwt.encode({"sub": "tester", "role": "ops", "iss": "hftshm", "aud": "hftshm-api", "iat": now,
                        "exp": now + 300}, secret, algorithm="HS256")
    app = create_app(WebConfig(), ImportedPositionsView(NoPositions(), positions, {1: "BTCUSDT"}), jwt_secret=secret)
    answer = app.test_client().get("/api/positions", headers={"Authorization": "Bearer " + token})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert {p["strategy"]: p["quantity"] for p in answer.json["positions"]} == pytest.approx(
        {"strategy-1": 0.5, "strategy-2": -0.5})
