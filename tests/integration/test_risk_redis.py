"""Risk state in a real Redis (localhost:6379): mirror, restart, restore; the operator kill-switch key.

Each test uses its own namespace and deletes every key under it afterwards.
"""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import pytest

from hftshm.codes import ReportEvent, Side, TradingState
from hftshm.config import Section
from hftshm.redis_config import RedisConfig
from hftshm.risk.control import ControlBlock
from hftshm.risk.redis_mirror import RedisMirror, delete_state, set_kill_switch_key
from hftshm.risk.testing import BTC, ETH, engine, fill, intents, reports, snapshots
from hftshm.risk.worker import RiskWorker
from hftshm.runtime.worker import WorkerContext
from hftshm.transport.ring import Ring
from hftshm.transport.testing import unique_name

redis = pytest.importorskip("redis")
URL = "redis://localhost:6379/0"


@pytest.fixture
def redis_config():
    client = redis.Redis.from_url(URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on localhost:6379")
    config = RedisConfig.from_section(Section("redis", {"url": URL, "namespace": f"test-{uuid.uuid4().hex[:12]}",
                                                        "mirror_interval_ms": 20}))
    yield config
    keys = list(client.scan_iter(match=f"hftshm:{config.namespace}:*"))
    if keys:
        client.delete(*keys)
    assert not list(client.scan_iter(match=f"hftshm:{config.namespace}:*"))
    client.close()


def _busy_engine(control=None):
    eng = engine(control=control, max_position_per_symbol=20.0, max_order_size=5.0,
                 symbols={"ETHUSDT": {"price_band_min": 100.0, "max_order_size": 50.0}})
    eng.on_marks(snapshots((ETH, 2_600.0)))
    eng.on_reports(reports(fill(1, Side.BUY, 1.5, 60_900.0, fee=3.0), fill(2, Side.SELL, 0.5, 61_100.0, fee=1.0),
                           fill(3, Side.SELL, 4.0, 2_610.0, symbol_id=ETH, fee=0.5)))
    eng.check(intents({"client_order_id": 10, "qty": 2.0}, {"client_order_id": 11, "side": Side.SELL, "qty": 0.3}))
    eng.on_reports(reports({"client_order_id": 10, "event": ReportEvent.ACK, "order_id": 555, "leaves_qty": 2.0}))
    eng.on_marks(snapshots((BTC, 61_050.0)))
    return eng


def _mirror_once(config, eng):
    mirror = RedisMirror(config, eng.control)
    s = eng.state
    mirror.stop(final=(s.snapshot(eng.control), s.summary(), {p["symbol"]: p["position"] for p in s.positions()}))
    return mirror


def test_state_survives_a_restart_through_redis(redis_config):
    control = ControlBlock.private()
    before = _busy_engine(control)
    _mirror_once(redis_config, before)
    expected_positions = before.state.positions()
    expected_orders = sorted(before.state.open_orders(), key=lambda o: o["client_order_id"])
    expected_summary = before.state.summary()
    del before  # the process state is gone

    after = engine(control=control, mid=None, max_position_per_symbol=20.0, max_order_size=5.0)
    snapshot = RedisMirror(redis_config, control).load()
    after.state.restore(snapshot, control, restore_open_orders=True)
    assert after.state.positions() == expected_positions
    assert sorted(after.state.open_orders(), key=lambda o: o["client_order_id"]) == expected_orders
    assert after.state.summary() == pytest.approx(expected_summary)
    assert after.state.pending("BTCUSDT") == (2.0, 0.3)
    # the restored exposure still limits: 1.0 long + 2.0 open + 17 = 20
    assert after.check(intents({"client_order_id": 20, "qty": 5.0}))[0] == 0


def test_open_orders_of_an_earlier_run_are_not_restored(redis_config):
    before = _busy_engine(ControlBlock.private())
    _mirror_once(redis_config, before)
    fresh_run = ControlBlock.private()
    after = engine(control=fresh_run, max_position_per_symbol=20.0)
    notes = after.state.restore(RedisMirror(redis_config, fresh_run).load(), fresh_run, restore_open_orders=False)
    assert after.state.position("BTCUSDT") == pytest.approx(1.0)
    assert after.state.open_orders() == [] and after.state.pending("BTCUSDT") == (0.0, 0.0)
    assert any("not restored" in n for n in notes)


def test_operator_key_trips_the_kill_switch(redis_config):
    control = ControlBlock.private()
    mirror = RedisMirror(redis_config, control)
    mirror.start()
    try:
        time.sleep(0.1)
        assert not control.kill_switch  # no key: nothing happens
        set_kill_switch_key(redis_config, True)  # an operator on another host
        deadline = time.monotonic() + 5.0
        while not control.kill_switch and time.monotonic() < deadline:
            time.sleep(0.01)
        assert control.kill_switch
        assert mirror.kill_trips == 1
    finally:
        mirror.stop()


def test_mirror_writes_readable_keys_and_reset_deletes_them(redis_config):
    eng = _busy_engine(ControlBlock.private())
    mirror = RedisMirror(redis_config, eng.control)
    mirror.start(eng.state.limits())
    s = eng.state
    mirror.stop(final=(s.snapshot(eng.control), s.summary(), {p["symbol"]: p["position"] for p in s.positions()}))
    client = redis.Redis.from_url(redis_config.url)
    try:
        positions = {k.decode(): float(v) for k, v in client.hgetall(redis_config.key("risk", "positions")).items()}
        assert positions == pytest.approx({"BTCUSDT": 1.0, "ETHUSDT": -4.0})
        pnl = client.hgetall(redis_config.key("risk", "pnl"))
        assert float(pnl[b"fees"]) == pytest.approx(4.5)
        assert client.get(redis_config.key("risk", "limits")) is not None
        assert eng.control.array[0]["redis_status"] == 1
        assert delete_state(redis_config) == 5
        assert client.get(redis_config.key("risk", "state")) is None
    finally:
        client.close()


def test_worker_restart_restores_positions_but_leaves_the_kill_switch_to_the_operator(redis_config, tmp_path):
    control = ControlBlock.create(unique_name("ctl"))
    made = [Ring.create(unique_name("r"), layout, 64) for layout in
            ("book_snapshot", "execution_report", "order_intent", "order", "execution_report")]
    book, reports_in, intents_in, orders, rejects = made

    def start():
        ctx = WorkerContext(
            name="risk", params={"risk": {"max_position_per_symbol": 10.0},
                                 "redis": {"url": redis_config.url, "namespace": redis_config.namespace}},
            inputs={"book": book, "reports": reports_in, "intents": intents_in},
            outputs={"orders": orders, "rejects": rejects}, config=None, counters=np.zeros(32, dtype=np.int64),
            histograms={}, run_dir=tmp_path, log=logging.getLogger("test.risk"), control=control)
        worker = RiskWorker()
        worker.on_start(ctx)
        return worker

    try:
        worker = start()
        records = reports(fill(1, Side.BUY, 0.7, 61_000.0, fee=2.0))
        view = reports_in.claim(1)
        view[:] = records
        reports_in.commit(1)
        worker.do_work()
        control.set_kill_switch(True)
        control.set_trading_state(TradingState.REDUCING)
        worker.do_work()
        worker.on_close()  # flushes the last snapshot to Redis
        control.set_kill_switch(False)  # the operator turned it off (while the platform was down, say)
        worker = start()
        assert worker.state.position("BTCUSDT") == pytest.approx(0.7)
        assert worker.state.summary()["fees"] == pytest.approx(2.0)
        # the snapshot still says on; the operator's word wins (the control layer persists and loads it)
        assert not control.kill_switch
        worker.on_close()
    finally:
        for ring in made:
            ring.unlink()
            ring.close()
        control.close()
        control.unlink()


def test_cli_kill_switch_reaches_redis_without_a_local_platform(redis_config, tmp_path):
    from pathlib import Path

    from typer.testing import CliRunner

    from hftshm.cli import app

    text = Path("config/platform.toml").read_text()
    text = text.replace('\nurl = ""', f'\nurl = "{redis_config.url}"', 1)
    text = text.replace('namespace = "default"', f'namespace = "{redis_config.namespace}"', 1)
    config_path = tmp_path / "config" / "platform.toml"
    config_path.parent.mkdir()
    config_path.write_text(text)
    client = redis.Redis.from_url(redis_config.url)
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["kill-switch", "on", "--config", str(config_path), "--run-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert client.get(redis_config.key("kill_switch")) == b"1"
        assert "no platform runs here" in result.output
        result = runner.invoke(app, ["kill-switch", "off", "--config", str(config_path), "--run-dir", str(tmp_path)])
        assert result.exit_code == 0 and client.get(redis_config.key("kill_switch")) == b"0"
    finally:
        client.close()
