"""Faults mid-stream: the import process SIGKILLed, the export process SIGKILLed, the NATS server restarted. The destination ring
still holds every record exactly once, in order (checked by sequence)."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from hftshm.transport.testing import temporary_rings
from tests.bridge_helpers import NATS_START, drain_ring, fresh_namespace, market_events

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start(role, ring, subject, namespace, run_dir):
    process = subprocess.Popen([sys.executable, "-m", "tests.bridge_helpers", role, ring.name, subject, namespace,
                                str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def _nats_server():
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == 4222 and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _restart_nats():
    server = _nats_server()
    assert server is not None, "nats-server is not running on 4222"
    try:
        server.terminate()
        server.wait(10)
    finally:
        subprocess.run(NATS_START, check=True)
        deadline = time.monotonic() + 10
        while _nats_server() is None and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.mark.slow
def test_sigkills_of_importer_and_exporter_and_a_nats_restart_lose_and_duplicate_nothing(tmp_path):
    total = 80_000
    with fresh_namespace(batch_records=256) as config, \
            temporary_rings({"src": ("market_event", 8192), "dst": ("market_event", 8192)}) as rings:
        subject = config.subject("md")
        exporter = _start("export", rings["src"], subject, config.namespace, tmp_path / "export")
        importer = _start("import", rings["dst"], subject, config.namespace, tmp_path / "import")
        sent, got = 0, []
        faults = {15_000: "kill importer", 35_000: "nats", 55_000: "kill exporter"}
        try:
            deadline = time.monotonic() + 120
            while len(got) < total and time.monotonic() < deadline:
                if sent < total:
                    view = rings["src"].claim(min(500, total - sent))
                    view[:] = market_events(sent, len(view))
                    rings["src"].commit(len(view))
                    sent += len(view)
                drain_ring(rings["dst"], got)
                fault = next((f for at, f in faults.items() if sent >= at), None)
                if fault == "kill importer":
                    importer.send_signal(signal.SIGKILL)
                    importer.wait()
                    importer = _start("import", rings["dst"], subject, config.namespace, tmp_path / "import")
                elif fault == "kill exporter":
                    exporter.send_signal(signal.SIGKILL)
                    exporter.wait()
                    exporter = _start("export", rings["src"], subject, config.namespace, tmp_path / "export")
                elif fault == "nats":
                    _restart_nats()
                faults = {at: f for at, f in faults.items() if sent < at}
                time.sleep(0.0005)
        finally:
            for process in (importer, exporter):
                process.send_signal(signal.SIGKILL)
                process.wait()
        assert not faults, "the faults were not injected"
        missing = sorted(set(range(total)) - set(got))
        assert len(got) == total and got == list(range(total)), (len(got), missing[:3], missing[-3:], len(missing))
