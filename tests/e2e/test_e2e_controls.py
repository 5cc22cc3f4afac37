"""Durable operator controls on the whole platform, as a user runs it: the kill switch set with no
platform running holds the next ``hftshm run`` (not one order reaches the exchange) until it is
turned off (then trading starts, mid-run), and survives a SIGKILL of the supervisor. Short runs of
the real day (``--duration``, or stopped with SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hftshm.risk.control import ControlStore
from tests.e2e.platform_harness import HFTSHM, cli_env, hftshm, shipped_config_text, wait_for_running

pytestmark = pytest.mark.slow


def run(config: Path, *args: str, timeout_s: float = 240.0) -> subprocess.CompletedProcess:
    return subprocess.run([HFTSHM, "run", "--no-web", "--quiet", "--config", str(config), "--speed", "0", *args],
                          capture_output=True, text=True, timeout=timeout_s, env=cli_env())


def exchange_orders(run_dir: Path) -> tuple[int, dict]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["workers"]["exchange"]["orders_in"], summary


@pytest.fixture
def platform(tmp_path):
    run_dir = tmp_path / "run"
    config = tmp_path / "config" / "platform.toml"
    config.parent.mkdir()
    config.write_text(shipped_config_text(run_dir))
    return config, run_dir


def test_switch_set_with_no_platform_holds_the_next_run_until_turned_off(platform):
    config, run_dir = platform
    out = hftshm(["kill-switch", "on", "--config", str(config)])
    assert out.returncode == 0, out.stderr
    assert "no platform runs here" in out.stdout

    halted = run(config, "--duration", "6")
    assert halted.returncode == 0, halted.stdout + halted.stderr
    assert "started halted: the kill switch is ON" in halted.stdout
    orders, summary = exchange_orders(run_dir)
    assert orders == 0, "an order reached the exchange while the kill switch was on"
    assert summary["headline"]["intents"] > 0  # the strategies did try: risk refused them
    assert summary["controls"]["started_halted"] and summary["controls"]["at_end"]["kill_switch"] is True
    assert summary["workers"]["risk"].get("reject_kill_switch", 0) > 0

    # a second run, in real time, still held; the operator turns the switch off mid-run: trading starts
    process = subprocess.Popen([HFTSHM, "run", "--no-web", "--quiet", "--config", str(config), "--speed", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env())
    try:
        manifest = wait_for_running(run_dir, process)
        time.sleep(3.0)
        assert live_counter(manifest, "strategies", "intents") > 0  # trying all along
        assert live_counter(manifest, "exchange", "orders_in") == 0
        off = hftshm(["kill-switch", "off", "--config", str(config)])
        assert off.returncode == 0 and "in " in off.stdout and "persisted" not in off.stdout, off.stdout
        deadline = time.monotonic() + 60
        while live_counter(manifest, "exchange", "orders_in") == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert live_counter(manifest, "exchange", "orders_in") > 0, "no order after the switch went off"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and "started halted: the kill switch is ON" in out, out
    orders, summary = exchange_orders(run_dir)
    assert orders > 0 and summary["controls"]["at_end"]["kill_switch"] is False
    assert ControlStore(run_dir).load()["kill_switch"] is False  # the next start trades

    rows = json.loads(hftshm(["audit", "--config", str(config), "--json"]).stdout)["audit"]
    assert [(r["action"], r["new"], r["source"]) for r in rows] == [("kill_switch", "off", "cli"),
                                                                   ("kill_switch", "on", "cli")]


def live_counter(manifest, worker: str, name: str) -> int:
    """A running worker's counter, read from the platform's status segment."""
    from hftshm.runtime import status as st

    entry = manifest.worker(worker)
    table = st.StatusTable.attach(manifest.status_segment, len(manifest.workers))
    try:
        return int(table.counters(entry.row)[entry.counter_names.index(name)])
    finally:
        table.close()


def test_switch_survives_a_sigkilled_supervisor(platform):
    config, run_dir = platform
    process = subprocess.Popen([HFTSHM, "run", "--no-web", "--quiet", "--config", str(config), "--speed", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env())
    try:
        manifest = wait_for_running(run_dir, process)
        # switched on while it runs (through the running block), then the supervisor dies hard
        assert hftshm(["kill-switch", "on", "--config", str(config)]).returncode == 0
        worker_pids = [p.pid for p in manifest.processes if getattr(p, "pid", 0)]
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    deadline = time.monotonic() + 30  # orphaned workers notice the supervisor is gone and exit
    while time.monotonic() < deadline and any(_alive(pid) for pid in worker_pids):
        time.sleep(0.2)
    (run_dir / "current.json").unlink(missing_ok=True)  # a dead supervisor's manifest

    again = run(config, "--duration", "5")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "started halted: the kill switch is ON" in again.stdout
    orders, _ = exchange_orders(run_dir)
    assert orders == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
