"""A live monitoring stack for integration tests: the web app on a free localhost port, served by a
real HTTP server thread, over a MonitoringRig (real shared memory) that keeps changing."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

from werkzeug.serving import make_server

from hftshm.metrics.rig import STRATEGIES, MonitoringRig
from hftshm.web.app import create_app
from hftshm.web.config import WebConfig
from hftshm.web.provider import MemoryTradingProvider

SECRET = "integration-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCD"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_stack(step_interval_s: float = 0.2, events: int = 1500, **config):
    """Yields (base_url, rig, app); the rig steps every ``step_interval_s`` until exit."""
    rig = MonitoringRig(seed=3)
    trading = MemoryTradingProvider(control=rig.control, strategies=[n for n, _ in STRATEGIES])
    rig.attach_trading(trading)
    rig.step(events)
    lock = threading.Lock()
    view = rig.view()
    app = create_app(WebConfig(**config), view, trading=trading, jwt_secret=SECRET)
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    stop = threading.Event()

    def drive():
        while not stop.wait(step_interval_s):
            with lock:
                rig.step(events)

    threads = [threading.Thread(target=server.serve_forever, daemon=True), threading.Thread(target=drive, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", rig, app
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        for thread in threads:
            thread.join(10)
        del view
        rig.close()


def wait_for(predicate, timeout_s: float, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    return last
