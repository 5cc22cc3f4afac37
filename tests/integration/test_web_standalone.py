"""``hftshm web`` on its own, before any platform runs: the page, /healthz and /metrics answer, and
/metrics already carries every declared worker, ring and counter (zeros), so a scrape can be set up
first. SIGTERM stops it cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.integration.monitoring_server import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_web_without_a_platform_exports_declared_zeros(tmp_path):
    text = (ROOT / "config" / "platform.toml").read_text()
    text = re.sub(r'(?m)^run_dir = .*$', f'run_dir = "{tmp_path / "run"}"', text, count=1)
    config = tmp_path / "config" / "platform.toml"
    config.parent.mkdir()
    config.write_text(text)
    port = free_port()
    command = [sys.executable, "-c", "from hftshm.cli import main; main()", "web", "--port", str(port),
               "--config", str(config)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        up = wait_for(lambda: get(base + "/healthz")[0] == 200 or proc.poll() is not None, 60, 0.3)
        assert up and proc.poll() is None, proc.stdout.read().decode()[-3000:]
        status, health = get(base + "/healthz")
        assert '"platform_running":false' in health.replace(" ", "")
        status, metrics = get(base + "/metrics")
        assert status == 200
        assert "hftshm_platform_running 0.0" in metrics
        assert 'hftshm_worker_up{process="market-data",worker="feed"} 0.0' in metrics
        ring = r'hftshm_ring_capacity_records\{consumer="strategies",producer="feed",ring="md.strategies"\} \d'
        assert re.search(ring, metrics)
        assert 'hftshm_intents_total{worker="strategies"} 0.0' in metrics  # a StrategyWorker counter
        assert get(base + "/dashboard")[0] == 200
        assert get(base + "/api/positions")[0] == 401
        assert (tmp_path / "run" / "jwt_secret").stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(10)
    assert code == 0
