"""Monitoring a real platform: the supervisor runs worker processes (the soak topology), and the
web app, through the live shared-memory view and through the run manifest, exports their
heartbeats, counters and rings while they move, then the run's final values after it stops."""

from __future__ import annotations

import re
import time

from hftshm.metrics.discovery import ManifestView
from hftshm.metrics.live import SharedMemoryView
from hftshm.runtime.supervisor import Supervisor
from hftshm.web.wiring import create_platform_app, record_last_run
from tests.concurrency.test_supervisor import soak_config

SAMPLE = re.compile(r'^(hftshm_\w+)(\{[^}]*\})? (\S+)$', re.M)


def metrics(client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {name + (labels or ""): float(value) for name, labels, value in SAMPLE.findall(text)}


def test_web_app_follows_a_supervised_run(run_dir, monkeypatch):
    monkeypatch.setenv("HFTSHM_JWT_SECRET", "live-monitoring-test-secret-0123456789-abcdefghijklmnopqrst")
    config = soak_config(run_dir, 200_000_000, placement="composite")
    with Supervisor(config.topology, config, create_control=False) as sup:
        sup.start()
        view = SharedMemoryView.from_manifest(sup.manifest)
        app = create_platform_app(config, view)
        client = app.test_client()
        standalone = ManifestView(run_dir)  # what 'hftshm web' in another terminal sees
        try:
            deadline = time.monotonic() + 60
            while True:
                sup.poll()
                first = metrics(client)
                if first.get('hftshm_received_total{worker="sink"}', 0) > 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            time.sleep(0.5)
            sup.poll()
            second = metrics(client)
            assert second["hftshm_platform_running"] == 1
            for worker in ("source", "relay", "sink"):
                up = [v for k, v in second.items() if k.startswith("hftshm_worker_up{") and f'worker="{worker}"' in k]
                assert up == [1.0], second
                assert second[f'hftshm_worker_state{{state="running",worker="{worker}"}}'] == 1
            # moving: the source published more between the scrapes, and the rings carried it
            assert second['hftshm_published_total{worker="source"}'] > first['hftshm_published_total{worker="source"}']
            assert second['hftshm_received_total{worker="sink"}'] > 0
            written = second['hftshm_ring_written_records_total{consumer="relay",producer="source",ring="a"}']
            assert written >= second['hftshm_received_total{worker="sink"}']
            assert second['hftshm_ring_capacity_records{consumer="relay",producer="source",ring="a"}'] == 4096
            other = standalone.snapshot()
            assert other.running and other.worker("sink").counters["received"] > 0
            health = client.get("/healthz").json
            assert health["platform_running"] and health["workers_up"] == 3
        finally:
            sup.shutdown()
            final = view.snapshot()
            record_last_run(app, final)
            view.close()
            standalone.close()
        after = metrics(client)
        assert after["hftshm_platform_running"] == 0
        assert after['hftshm_received_total{worker="sink"}'] == final.worker("sink").counters["received"] > 0
        assert after['hftshm_published_total{worker="source"}'] == final.worker("source").counters["published"]
