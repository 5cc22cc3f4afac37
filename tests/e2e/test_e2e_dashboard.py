"""The dashboard during a real replay: `hftshm run` on the shipped day, the page loaded in headless
Chromium twice while the data flows; numbers are live and move. Screenshot: artifacts/dashboard-replay.png."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_dashboard_browser import ARTIFACTS, CHROMIUM, PLACEHOLDER, chromium, load, number

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_dashboard_shows_a_live_replay(tmp_path):
    assert Path(CHROMIUM).exists(), "chromium is installed by .ci/run"
    port = _free_port()
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    text = (ROOT / "config" / "platform.toml").read_text()
    text = re.sub(r'(?m)^run_dir = .*$', f'run_dir = "{tmp_path / "run"}"', text, count=1)
    text = re.sub(r'(?m)^port = 9090.*$', f"port = {port}", text, count=1)
    text = re.sub(r'(?m)^data = \["data/', f'data = ["{ROOT}/data/', text, count=1)
    (config_dir / "platform.toml").write_text(text)
    url = f"http://127.0.0.1:{port}"
    # speed 2: the day takes minutes, so the page is loaded while events flow
    run = subprocess.Popen([sys.executable, "-m", "hftshm.cli", "run", "--speed", "2", "--quiet",
                            "--config", str(config_dir / "platform.toml")],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert run.poll() is None, run.stdout.read()
            try:
                data = urllib.request.urlopen(url + "/dashboard/data", timeout=5).read()
                if b'"running": true' in data.replace(b'"running":true', b'"running": true'):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the platform did not come up"
            time.sleep(0.5)
        for _ in range(8):  # the page's charts sample history on each poll
            urllib.request.urlopen(url + "/dashboard/data", timeout=10).read()
            time.sleep(0.5)
        first = load(url + "/dashboard", tmp_path / "profile1")
        time.sleep(2.0)
        second = load(url + "/dashboard", tmp_path / "profile2")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard-replay.png"
        shot.unlink(missing_ok=True)
        chromium(url + "/dashboard", tmp_path / "profile3", f"--screenshot={shot}")
    finally:
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=120)
    assert run.returncode == 0, out[-3000:]
    assert "run finished (SIGTERM)" in out
    assert first.text["status-pill"].strip() == "LIVE"
    for element_id in ("kpi-ticks", "kpi-orders", "kpi-pnl", "risk-checked"):
        assert PLACEHOLDER not in first.text[element_id] and first.text[element_id].strip(), element_id
    assert number(first.text["kpi-ticks-total"]) > 0
    assert first.rows["workers-table"] == 1 + 6  # feed, strategies, risk, oms, exchange, oms_writer
    assert "md.strategies" in first.text["rings"]
    assert first.text["kill-badge"].strip() == "KILL SWITCH OFF"
    # live: two seconds later the replay has published more
    assert number(second.text["kpi-ticks-total"]) > number(first.text["kpi-ticks-total"])
    assert shot.exists() and shot.stat().st_size > 50_000
