"""/metrics as Prometheus sees it: promtool's linter, then a real Prometheus server scraping the
app on localhost, queried back through its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.integration.monitoring_server import free_port, live_stack, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.mark.skipif(not shutil.os.path.exists(PROMTOOL), reason="promtool not installed (apt-get install prometheus)")
def test_metrics_pass_promtool_check_metrics():
    with live_stack() as (url, rig, _):
        wait_for(lambda: rig.step_count >= 3, 10)
        text = fetch(url + "/metrics")
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert (result.stdout + result.stderr).strip() == b"", (result.stdout + result.stderr).decode()
    assert b"hftshm_latency_seconds_bucket" in text and b"hftshm_ring_occupancy_records" in text


@pytest.mark.skipif(not shutil.os.path.exists(PROMTOOL), reason="promtool not installed (apt-get install prometheus)")
def test_example_scrape_config_is_valid():
    result = subprocess.run([PROMTOOL, "check", "config", str(ROOT / "monitoring" / "prometheus.yml")],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


@pytest.mark.slow
@pytest.mark.skipif(not shutil.os.path.exists(PROMETHEUS), reason="prometheus not installed (apt-get install prometheus)")
def test_a_real_prometheus_scrapes_and_answers_queries(tmp_path):
    with live_stack() as (url, rig, _):
        target = url.removeprefix("http://")
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
            "scrape_configs:\n  - job_name: hftshm\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        log = open(tmp_path / "prometheus.log", "wb")
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=log)
        try:
            api = f"http://127.0.0.1:{prom_port}/api/v1/query?query="

            def query(expr: str):
                try:
                    body = json.loads(fetch(api + urllib.parse.quote(expr)))
                except OSError:
                    return None
                return body["data"]["result"] if body.get("status") == "success" else None

            capacity = wait_for(lambda: query('hftshm_ring_capacity_records{ring="md.strategies"}'), 60, 0.5)
            assert capacity, (tmp_path / "prometheus.log").read_text()[-3000:]
            assert float(capacity[0]["value"][1]) == 4096
            assert capacity[0]["metric"]["job"] == "hftshm"
            up = query('up{job="hftshm"}')
            assert float(up[0]["value"][1]) == 1
            # two scrapes apart, the tick counter grew: the values are live, not a constant
            rate = wait_for(lambda: [r for r in (query('rate(hftshm_events_published_total{worker="feed"}[5s])') or [])
                                     if float(r["value"][1]) > 0], 30, 0.5)
            assert rate, "feed events rate never became positive"
            p99 = wait_for(lambda: query('histogram_quantile(0.99, sum by (le) '
                                         '(rate(hftshm_latency_seconds_bucket{worker="risk",stage="hop"}[5s])))'), 30, 0.5)
            assert p99 and 1e-7 < float(p99[0]["value"][1]) < 1e-5  # the rig's risk hop: ~180 ns median
            # every query of the Grafana dashboard parses and evaluates on a real Prometheus
            dashboard = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    expr = target["expr"].replace("$__rate_interval", "5s")
                    assert query(expr) is not None, f"{panel['title']}: {expr}"
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


@pytest.mark.skipif(not shutil.os.path.exists(PROMTOOL), reason="promtool not installed (apt-get install prometheus)")
def test_every_metric_the_shipped_platform_declares_passes_promtool():
    """Every worker counter of the shipped topology (the exchange's plain ``rejects`` among them,
    which once went out as hftshm_counter_rejects_total) through the real collector."""
    from prometheus_client import CollectorRegistry, generate_latest

    from hftshm.config import read_toml
    from hftshm.metrics.collector import PlatformCollector
    from hftshm.metrics.discovery import declared_snapshot
    from hftshm.platform import PlatformConfig

    config = PlatformConfig.from_raw(read_toml(ROOT / "config" / "platform.toml"), base_dir=ROOT)
    snapshot = declared_snapshot(config)

    class View:
        def snapshot(self):
            return snapshot

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(View()))
    text = generate_latest(registry)
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == b"", (result.stdout + result.stderr).decode()
    assert b"counter" not in text.split(b"# HELP")[0] and b"hftshm_counter_" not in text
    assert b'hftshm_worker_rejects_total{worker="exchange"}' in text
