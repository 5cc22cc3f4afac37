"""The web app wired to a platform: run discovery through the manifest, the last run's values,
orders/trades from a real OMS database, kill switch and strategy pause through real shared memory."""

from __future__ import annotations

import os
import types

import numpy as np
import pytest
from sqlalchemy import text

from hftshm.codes import ControlKind, OrderState, Side
from hftshm.metrics.discovery import LAST_RUN_FILE, LastRunRecorder, ManifestView, declared_snapshot, fallback_for
from hftshm.metrics.rig import MonitoringRig
from hftshm.runtime.manifest import RingEntry, manifest_path
from hftshm.runtime.topology import Topology
from hftshm.symbols import DEFAULT_SYMBOLS
from hftshm.transport.ring import Ring
from hftshm.web.oms_reader import OmsReader
from hftshm.web.provider import Unavailable, UnknownStrategy
from hftshm.web.wiring import BacktestRunner, PlatformTradingProvider


@pytest.fixture
def rig():
    with MonitoringRig() as rig:
        rig.step()
        yield rig


def test_manifest_view_follows_the_platform(rig, tmp_path):
    view = ManifestView(tmp_path, symbol_names={1: "BTCUSDT"})
    assert view.snapshot().running is False and view.control is None
    rig.manifest(tmp_path).write()
    snap = view.snapshot()
    assert snap.running and snap.run_id == rig.prefix
    assert {w.name for w in snap.workers} == {"feed", "strategies", "risk", "oms", "exchange"}
    assert snap.worker("feed").counters["events_published"] == rig.status.counters(0)[0]
    assert {r.name for r in snap.rings} >= {"md.strategies", "intents"}
    assert "risk.hop" in snap.histograms and snap.histograms["risk.hop"].sum() > 0
    assert [s.name for s in snap.strategies] == ["mm-btc", "momo-btc"] and snap.strategies[0].worker == "strategies"
    assert snap.positions[0].symbol == "BTCUSDT"
    assert view.control is not None and snap.risk is not None
    os.unlink(manifest_path(tmp_path))  # the run ends
    assert view.snapshot().running is False and view.control is None
    view.close()


def test_manifest_of_a_dead_supervisor_is_not_followed(rig, tmp_path):
    manifest = rig.manifest(tmp_path)
    manifest.supervisor_pid = 2**22 + 12345  # beyond pid_max defaults: not running
    manifest.write()
    assert ManifestView(tmp_path).snapshot().running is False


def test_last_run_is_recorded_and_served_when_the_platform_stops(rig, tmp_path):
    path = tmp_path / LAST_RUN_FILE
    recorder = LastRunRecorder(rig.view(), path, interval_s=0.0)
    live = recorder.snapshot()
    assert path.exists()
    fallback = fallback_for(None, tmp_path)
    last = fallback()
    assert last.running is False
    assert last.worker("feed").counters == live.worker("feed").counters
    assert np.array_equal(last.histograms["oms.hop"], live.histograms["oms.hop"])
    path.write_text("{not json")
    assert fallback_for(None, tmp_path)() is None


def test_after_the_run_the_app_serves_the_final_values(rig, tmp_path):
    from hftshm.web.app import create_app
    from hftshm.web.config import WebConfig
    from hftshm.web.wiring import record_last_run

    view = rig.view()
    recorder = LastRunRecorder(view, tmp_path / LAST_RUN_FILE, interval_s=3600)
    app = create_app(WebConfig(), recorder, jwt_secret="wiring-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
                     fallback=fallback_for(None, tmp_path))
    client = app.test_client()
    assert client.get("/healthz").json["platform_running"] is True
    rig.step()
    final = view.snapshot()
    record_last_run(app, final)
    view.status_words = None  # what close() does: the run is over
    view.rings, view.metrics = (), None
    after = client.get("/metrics").get_data(as_text=True)
    assert "hftshm_platform_running 0.0" in after
    events = final.worker("feed").counters["events_published"]
    assert f'hftshm_events_published_total{{worker="feed"}} {float(events)}' in after
    assert 'hftshm_ring_capacity_records{consumer="strategies",producer="feed",ring="md.strategies"} 4096.0' in after
    assert fallback_for(None, tmp_path)().worker("feed").counters["events_published"] == events


def test_declared_zeros_cover_every_worker_counter_and_ring():
    raw = {"workers": {"src": {"class": "hftshm.runtime.soak:SequenceSource"},
                       "sink": {"class": "hftshm.runtime.soak:SequenceSink"},
                       "ghost": {"class": "no.such.module:Worker"}},
           "rings": [{"name": "a", "layout": "market_event", "from": "src", "to": "sink", "capacity": 1024}]}
    config = types.SimpleNamespace(topology=Topology.from_config(raw))
    snap = declared_snapshot(config)
    assert snap.running is False
    assert snap.worker("src").counters == {"published": 0}
    assert snap.worker("sink").counters["received"] == 0
    assert snap.worker("ghost").counters == {}  # unimportable class: the worker row still exists
    assert snap.rings[0].name == "a" and snap.rings[0].capacity == 1024 and snap.rings[0].occupancy == 0


def _config(run_dir, url=""):
    oms = types.SimpleNamespace(database_url=url, database_schema="",
                                database_url_for=lambda d: url or f"sqlite:///{d}/oms.sqlite")
    return types.SimpleNamespace(platform=types.SimpleNamespace(run_dir=run_dir), symbols=DEFAULT_SYMBOLS, oms=oms,
                                 raw={})


def test_kill_switch_trading_state_and_pause_reach_shared_memory(rig, tmp_path):
    control_ring = Ring.create(f"{rig.prefix}control.strategies", "control_message", 16)
    try:
        entry = RingEntry("control.strategies", control_ring.name, "control_message", "web", "strategies", 16, "block")
        rig.manifest(tmp_path, extra_rings=(entry,)).write()
        view = ManifestView(tmp_path)
        provider = PlatformTradingProvider(_config(tmp_path), view)
        view.snapshot()
        provider.set_kill_switch(True, actor="test")
        assert rig.control.kill_switch is True
        provider.set_trading_state("reducing", actor="test")
        assert rig.control.trading_state.name == "REDUCING"
        provider.set_strategy_paused("momo-btc", True, actor="test")
        message = control_ring.poll(4).copy()
        assert len(message) == 1
        assert message[0]["kind"] == ControlKind.STRATEGY_PAUSE and message[0]["target_id"] == 2
        with pytest.raises(UnknownStrategy):
            provider.set_strategy_paused("ghost", True, actor="test")
        os.unlink(manifest_path(tmp_path))
        view.snapshot()
        with pytest.raises(Unavailable, match="not running"):
            provider.set_kill_switch(False, actor="test")
        view.close()
    finally:
        control_ring.unlink()
        control_ring.close()


def _fill_oms_tables(url: str, schema: str = ""):
    from hftshm.oms.store import Store

    store = Store(url, schema=schema)
    with store.engine.begin() as conn:
        for i in range(1, 26):
            conn.execute(text(
                "INSERT INTO orders (order_id, client_order_id, strategy_id, symbol_id, side, order_type, tif, price, qty, "
                "cum_qty, leaves_qty, state, attempt, flags, pending_price, pending_qty, request_client_order_id, "
                "created_ts_ns, updated_ts_ns, last_event_id) VALUES (:i, :i, :s, 1, :side, 1, 1, 60000.5, 0.01, :cum, "
                ":leaves, :state, 0, 0, NULL, NULL, 0, :t, :t, :i)"),
                {"i": i, "s": 1 + i % 2, "side": int(Side.BUY if i % 3 else Side.SELL),
                 "cum": 0.01 if i % 5 == 0 else 0.0, "leaves": 0.0 if i % 5 == 0 else 0.01,
                 "state": int(OrderState.FILLED if i % 5 == 0 else OrderState.ACKNOWLEDGED), "t": 1_700_000_000_000_000_000 + i})
            if i % 5 == 0:
                conn.execute(text(
                    "INSERT INTO fills (event_id, order_id, strategy_id, symbol_id, side, price, qty, fee, cum_qty, "
                    "leaves_qty, exch_ts_ns, local_ts_ns) VALUES (:e, :i, :s, 1, 1, 60000.5, 0.01, 0.12, 0.01, 0, :t, :t)"),
                    {"e": 1000 + i, "i": i, "s": 1 + i % 2, "t": 1_700_000_000_000_000_000 + i})
    return store


def _check_reader(reader: OmsReader):
    rows, total = reader.orders(limit=10, offset=0)
    assert total == 25 and len(rows) == 10 and rows[0]["order_id"] == 25
    assert rows[0]["strategy"] == "mm-btc" and rows[0]["symbol"] == "BTCUSDT" and rows[0]["state"] == "filled"
    assert rows[1]["side"] in ("buy", "sell")
    page2, _ = reader.orders(limit=10, offset=20)
    assert [r["order_id"] for r in page2] == [5, 4, 3, 2, 1]
    filled, n_filled = reader.orders(state="filled")
    assert n_filled == 5 and all(r["state"] == "filled" for r in filled)
    mine, n_mine = reader.orders(strategy="momo-btc")
    assert n_mine == 12 and all(r["strategy"] == "momo-btc" for r in mine)
    assert reader.orders(strategy="nobody") == ([], 0)
    assert reader.orders(symbol="DOGEUSDT") == ([], 0)
    trades, n_trades = reader.trades(limit=2)
    assert n_trades == 5 and len(trades) == 2 and trades[0]["trade_id"] == 1025 and trades[0]["fee"] == 0.12


def test_oms_reader_pages_a_real_sqlite_database(tmp_path):
    url = f"sqlite:///{tmp_path}/oms.sqlite"
    store = _fill_oms_tables(url)
    reader = OmsReader(url, strategy_names=lambda: {1: "momo-btc", 2: "mm-btc"}, symbol_names={1: "BTCUSDT"})
    try:
        _check_reader(reader)
    finally:
        reader.close()
        store.close()


def test_oms_reader_before_the_oms_made_its_tables_and_when_the_database_is_down(tmp_path):
    empty = OmsReader(f"sqlite:///{tmp_path}/none.sqlite")
    assert empty.orders() == ([], 0) and empty.trades() == ([], 0)
    down = OmsReader("postgresql://nobody@127.0.0.1:1/none", connect_timeout_s=1)
    with pytest.raises(Unavailable, match="unavailable"):
        down.orders()


def test_backtest_runner_validates_before_queueing(tmp_path):
    runner = BacktestRunner(_config(tmp_path))
    with pytest.raises(ValueError, match="strategy"):
        runner.validate({})
    with pytest.raises(ValueError, match="unknown field"):
        runner.validate({"strategy": "market_maker", "speed": 3})
    with pytest.raises(ValueError, match="not a readable data file"):
        runner.validate({"strategy": "market_maker", "data": str(tmp_path / "missing.csv")})
    data = tmp_path / "ticks.csv"
    data.write_text("x\n")
    assert runner.validate({"strategy": "market_maker", "data": str(data), "params": {"spread_bps": 2}}) == {
        "strategy": "market_maker", "params": {"spread_bps": 2}, "data": str(data), "seed": 1, "symbol": None}
    with pytest.raises(ValueError, match="seed"):
        runner.validate({"strategy": "market_maker", "data": str(data), "seed": "x"})
