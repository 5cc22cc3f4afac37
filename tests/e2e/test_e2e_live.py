"""``hftshm run --live --record DIR`` as a user runs it, against the fake Binance on 127.0.0.1: the
strategies paper-trade on the live book, the OMS database and the summary agree, a sequence gap is
counted, and the raw stream written alongside imports."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from hftshm.codes import Side
from hftshm.oms.store import Store
from hftshm.platform import PlatformConfig
from tests.e2e.platform_harness import HFTSHM, cli_env, shipped_config_text
from tests.fake_binance import FakeBinance
from tests.live_helpers import SHIPPED, import_csv

pytestmark = pytest.mark.slow


def test_run_live_paper_trades_and_records(tmp_path):
    run_dir = tmp_path / "run"
    record_dir = tmp_path / "rec"
    with FakeBinance(SHIPPED, time_scale=10.0, max_frames=12_000, script={6000: ("gap", 2)}) as fake:
        extra = (f'\n[feed.ws_url]\nusdm = "{fake.ws_url}"\n[feed.rest_url]\nusdm = "{fake.rest_url("usdm")}"\n')
        config = tmp_path / "platform.toml"
        # the network process inside the platform (the thread, the default, is covered by the integration tests)
        text = shipped_config_text(run_dir).replace("[feed]\n", "[feed]\nheartbeat_timeout_s = 30.0\n", 1)
        text = text.replace('live_network = "thread"', 'live_network = "process"')
        assert 'live_network = "process"' in text
        config.write_text(text + extra)
        process = subprocess.Popen([HFTSHM, "run", "--live", "--record", str(record_dir), "--no-web", "--quiet",
                                    "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=cli_env())
        try:
            assert fake.done.wait(240), "the platform never took the whole stream"
            time.sleep(2.0)  # the last frames through the pipeline
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, out
    summary = json.loads((run_dir / "summary.json").read_text())
    head = summary["headline"]
    assert head["events"] > 50_000 and head["orders"] > 0 and head["fills"] > 0, head
    assert head["feed_gaps"] == 1  # the injected gap, reported (the book was cleared until the resync)
    assert head["ring_drops"] == 0
    feed = summary["workers"]["feed"]
    assert feed["frames"] == fake.sent + feed["snapshots_fetched"] and feed["snapshots_fetched"] == 2
    assert feed["reconnects"] == 0 and feed["book_valid_gauge"] == 1
    assert summary["latency"]["feed.recv_to_publish"]["negative"] == 0
    assert summary["latency"]["feed.exch_to_recv"]["negative"] == 0
    # the OMS database agrees with the summary: orders, fills and the position they add up to
    cfg = PlatformConfig.load(config)
    store = Store(cfg.oms.database_url_for(run_dir), schema=cfg.oms.database_schema, create=False)
    try:
        orders = store.list_orders(limit=10_000_000)
        with store.engine.connect() as conn:
            fills = list(conn.exec_driver_sql("SELECT side, qty FROM fills"))
    finally:
        store.close()
    assert len(orders) == head["orders"] and len(fills) == head["fills"]
    position = sum(q if s == Side.BUY else -q for s, q in fills)
    assert sum(p["quantity"] for p in summary["positions"]) == pytest.approx(position, abs=1e-9)
    # --record: the raw stream, importable, with the same gap in it
    [recording] = record_dir.glob("binance_usdm_btcusdt_*.gz")
    imported, _ = import_csv(recording, tmp_path)
    assert len(imported.gaps) == 1 and imported.snapshots_applied == 2
