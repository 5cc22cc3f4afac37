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


def _wait_gone(server: psutil.Process, timeout_s: float) -> None:
    """Until ``server`` has exited. Not ``Process.wait``: a server started by start-stop-daemon is
    no child of ours, and where nobody reaps orphans (a container's init may not) it stays a zombie,
    which has exited and let go of its port, but which ``wait`` takes for still running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if server.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    raise AssertionError(f"nats-server (pid {server.pid}) still running {timeout_s:g} s after SIGTERM")


def _restart_nats():
    server = _nats_server()
    assert server is not None, "nats-server is not running on 4222"
    try:
        server.terminate()
        _wait_gone(server, 10.0)
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


SUPERVISED_COUNT = 400_000


def _platform(run_dir, namespace, workers, rings):
    from hftshm.platform import PlatformConfig

    raw = {"platform": {"run_dir": str(run_dir), "placement": "process-per-worker"},  # handles by worker name,
           "supervisor": {"heartbeat_timeout_s": 30.0, "restart_backoff_s": 0.05, "drain_timeout_s": 30.0},
           "bridge": {"namespace": namespace, "batch_records": 512, "publish_window": 8}, "workers": workers, "rings": rings}
    return PlatformConfig.from_raw(raw, base_dir=run_dir)


@pytest.mark.slow
def test_sigkill_of_the_import_worker_under_a_running_supervisor_loses_and_duplicates_nothing(tmp_path):
    """Two platform instances, each under its own supervisor: a sequence source exported to NATS, and
    a sequence sink fed by an import worker, whose process is SIGKILLed mid-stream; the supervisor
    restarts it and the sink still sees every record once, in order."""
    from hftshm.runtime.supervisor import Supervisor

    with fresh_namespace() as source_ns, fresh_namespace() as sink_ns:
        exporting = _platform(tmp_path / "a", source_ns.namespace, {
            "source": {"class": "hftshm.runtime.soak:SequenceSource", "process": "source", "wait": "spin-yield",
                       "params": {"count": SUPERVISED_COUNT, "max_batch": 700, "seed": 7}}},
            [{"name": "seq", "layout": "market_event", "from": "source", "to": "nats:", "capacity": 8192}])
        importing = _platform(tmp_path / "b", sink_ns.namespace, {
            "sink": {"class": "hftshm.runtime.soak:SequenceSink", "process": "sink", "wait": "spin-park"}},
            [{"name": "seq", "layout": "market_event", "from": f"nats:{source_ns.subject('seq')}", "to": "sink",
              "capacity": 4096}])
        importer = next(w for w in importing.topology.workers if w.name.startswith("bridge_import"))
        with Supervisor(exporting.topology, exporting, create_control=False) as a, \
                Supervisor(importing.topology, importing, create_control=False) as b:
            b.start()
            a.start()
            killed_at = None
            deadline = time.monotonic() + 300
            exporting_done = False
            while not b.finished():  # the importer finishes at the END marker the exporter's drain sends
                if not exporting_done:
                    a.poll()
                    if a.finished():
                        a.shutdown()
                        exporting_done = True
                b.poll()
                received = _counters(b, "sink")["received"]
                if killed_at is None and received > SUPERVISED_COUNT // 3:
                    process = b.handles[importer.name].process
                    os.kill(process.pid, signal.SIGKILL)
                    killed_at = received
                assert time.monotonic() < deadline, (a.worker_states(), b.worker_states(), _counters(b, "sink"))
                time.sleep(0.01)
            b.shutdown()
            sink = _counters(b, "sink")
            restarts = b.handles[importer.name].restarts
    assert killed_at is not None and killed_at < SUPERVISED_COUNT, killed_at  # killed mid-stream
    assert restarts >= 1
    assert sink["received"] == sink["next_expected"] == SUPERVISED_COUNT, sink
    assert sink["duplicates"] == sink["gaps"] == sink["reordered"] == sink["torn"] == 0, sink


def _counters(sup, worker):
    entry = sup.manifest.worker(worker)
    values = sup.status.counters(entry.row)
    return {name: int(values[i]) for i, name in enumerate(entry.counter_names)}
