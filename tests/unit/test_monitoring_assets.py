"""monitoring/: the Grafana dashboard queries only metric families the app exports, and is a
well-formed importable dashboard; the Prometheus example config scrapes /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hftshm.metrics.rig import MonitoringRig
from hftshm.web.app import create_app
from hftshm.web.config import WebConfig

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"
SECRET = "assets-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH"


def expressions(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def exported_families() -> set[str]:
    with MonitoringRig() as rig:
        rig.step()
        app = create_app(WebConfig(), rig.view(), jwt_secret=SECRET)
        client = app.test_client()
        client.get("/api/positions")  # one auth failure, so its labelled family has a sample
        text = client.get("/metrics").get_data(as_text=True)
    return set(re.findall(r"^# TYPE (\w+) ", text, re.M)) | set(re.findall(r"^(\w+)[{ ]", text, re.M))


def test_every_dashboard_query_uses_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_families()
    used = {name for expr in expressions(dashboard) for name in re.findall(r"\bhftshm_\w+", expr)}
    assert used, "the dashboard queries no hftshm metric"
    missing = sorted(used - exported)
    assert not missing, f"dashboard queries metrics the app does not export: {missing}"


def test_dashboard_is_importable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for t in panel.get("targets", []):
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}"
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for needed in ("Latency", "Ring occupancy", "PnL", "Rejects", "Worker up", "OMS writer lag", "Tick"):
        assert needed in titles


def test_prometheus_example_scrapes_metrics():
    text = (ROOT / "monitoring" / "prometheus.yml").read_text()  # promtool validates it (integration)
    assert re.search(r"^\s+metrics_path: /metrics$", text, re.M)
    assert '- targets: ["127.0.0.1:9090"]' in text
