"""``hftshm run`` / ``status`` / ``stop`` as a user runs them: subprocesses on a temp copy of the
shipped config (real day), judged by exit code, output, run_dir and /dev/shm. Every platform this
file starts is gone at the end of its test, with its segments and its current.json."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform_harness import (
    HFTSHM,
    TERMINAL,
    cli_env,
    hftshm,
    segments_of_pid,
    shipped_config_text,
    wait_for_running,
)

pytestmark = pytest.mark.slow
WORKERS = ("feed", "strategies", "risk", "oms", "exchange", "oms_writer")


def start(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([HFTSHM, "run", "--no-web", "--quiet", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env())


def finish(process: subprocess.Popen, timeout_s: float = 120.0) -> str:
    try:
        out, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"hftshm run did not exit within {timeout_s} s:\n{out}")
    return out


@pytest.fixture
def platform(tmp_path):
    """(config path, run_dir); kills a platform a failed test left running."""
    run_dir = tmp_path / "run"
    config = tmp_path / "config" / "platform.toml"
    config.parent.mkdir()
    config.write_text(shipped_config_text(run_dir))
    started: list[subprocess.Popen] = []
    yield config, run_dir, started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def assert_cleaned_up(pid: int, run_dir: Path) -> None:
    assert segments_of_pid(pid) == [], "the platform left shared memory behind"
    assert not (run_dir / "current.json").exists(), "the platform left its manifest behind"


def test_run_replays_the_day_and_prints_the_summary(platform):
    config, run_dir, started = platform
    process = start(config, "--speed", "0")
    started.append(process)
    out = finish(process)
    assert process.returncode == 0, out
    assert "run finished (end of data)" in out and "598,754 events" in out
    for heading in ("summary", "positions and PnL", "latency per hop"):
        assert heading in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped_by"] == "end of data"
    assert summary["headline"]["events"] == 598_754
    assert summary["headline"]["orders"] > 0 and summary["headline"]["ring_drops"] == 0
    assert set(summary["workers_after_drain"].values()) == {"stopped"}
    # the shipped config has no Redis: risk says so, and that a restart rebuilds from the OMS database
    risk_log = (run_dir / "logs" / "risk.log").read_text()
    assert "Redis not configured" in risk_log and "rebuilds it from the OMS database" in risk_log
    assert_cleaned_up(process.pid, run_dir)


def test_sigterm_drains_and_exits_cleanly(platform):
    """SIGTERM mid-run (real-time speed, so the data is far from its end): the run drains, prints
    the summary, exits 0; the strategies' resting orders were cancelled and confirmed on the way."""
    config, run_dir, started = platform
    process = start(config, "--speed", "1")
    started.append(process)
    wait_for_running(run_dir, process)
    process.send_signal(signal.SIGTERM)
    out = finish(process)
    assert process.returncode == 0, out
    assert "run finished (SIGTERM)" in out and "summary" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM"
    assert 0 < summary["headline"]["events"] < 598_754
    assert set(summary["workers_after_drain"].values()) == {"stopped"}
    assert_cleaned_up(process.pid, run_dir)
    from hftshm.oms.store import Store

    store = Store(f"sqlite:///{run_dir / 'oms.sqlite'}", create=False)
    try:
        assert store.check_consistency() == []
        orders = store.list_orders(limit=100_000)
        assert [o["order_id"] for o in orders if o["state"] not in TERMINAL] == []
    finally:
        store.close()


def test_status_then_stop_a_running_platform(platform):
    config, run_dir, started = platform
    process = start(config, "--speed", "1")
    started.append(process)
    manifest = wait_for_running(run_dir, process)
    assert manifest.supervisor_pid == process.pid
    status = hftshm(["status", "--run-dir", str(run_dir)])
    assert status.returncode == 0, status.stderr
    table = status.stdout
    assert f"supervisor pid {process.pid}" in table
    for worker in WORKERS:
        assert worker in table
    assert table.count("running") >= len(WORKERS)
    for ring in ("md.strategies", "exchange.reports", "oms.events"):
        assert ring in table
    stop = hftshm(["stop", "--run-dir", str(run_dir)])
    assert stop.returncode == 0, stop.stderr
    assert f"stopped (supervisor pid {process.pid})" in stop.stdout
    out = finish(process)
    assert process.returncode == 0, out
    assert "run finished (SIGTERM)" in out
    assert_cleaned_up(process.pid, run_dir)
    after = hftshm(["status", "--run-dir", str(run_dir)])
    assert after.returncode == 1 and "no platform is running" in after.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


BROKEN = {
    # name: (text replaced in the shipped config, replacement, words the message must contain)
    "unknown key": ("batch_events = 4096", "batch_events = 4096\nbatch_sizes = 7", ["feed", "batch_sizes"]),
    "bad value": ('placement = "composite"', 'placement = "diagonal"', ["placement", "diagonal", "composite",
                                                                          "process-per-worker"]),
    "missing data file": ("/data/btcusdt_20240808.csv.gz", "/data/no_such_day.csv.gz", ["feed.data",
                                                                                       "no_such_day.csv.gz"]),
    "unreachable database": ('database_url = ""', 'database_url = "postgresql+psycopg://postgres@127.0.0.1:1/test"',
                             ["oms.database_url", "127.0.0.1:1"]),
    "unreachable redis": ('url = ""                          # e.g. "redis://localhost:6379/0"',
                          'url = "redis://127.0.0.1:6399/0"', ["redis.url", "6399", "unreachable"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_is_refused_clearly_and_leaves_nothing(platform, case):
    config, run_dir, started = platform
    old, new, words = BROKEN[case]
    text = config.read_text()
    assert old in text, f"the shipped config no longer has {old!r}"
    config.write_text(text.replace(old, new, 1))
    process = start(config, "--speed", "0")
    started.append(process)
    out = finish(process, timeout_s=60)
    assert process.returncode != 0, out
    assert "Traceback" not in out
    for word in words:
        assert word in out, f"{case}: message does not name {word!r}:\n{out}"
    assert_cleaned_up(process.pid, run_dir)


def test_port_in_use_is_refused_clearly_and_leaves_nothing(platform):
    config, run_dir, started = platform
    port = _free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        process = subprocess.Popen([HFTSHM, "run", "--quiet", "--speed", "0", "--port", str(port), "--config",
                                    str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=cli_env())
        started.append(process)
        out = finish(process, timeout_s=60)
    assert process.returncode != 0, out
    assert "web.port" in out and str(port) in out and "not free" in out
    assert "Traceback" not in out
    assert_cleaned_up(process.pid, run_dir)


def test_a_run_stopped_by_its_duration_reports_the_duration(platform):
    """--duration at real-time speed: the feed is stopped at the duration, before the drain; the
    reported run time is the replay's, the drain is reported apart (it once waited out a 5 s
    timeout while the paced feed kept publishing, and counted it: --duration 5 said 10 s)."""
    config, run_dir, started = platform
    process = start(config, "--speed", "1", "--duration", "4")
    started.append(process)
    out = finish(process)
    assert process.returncode == 0, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped_by"] == "duration"
    assert 4.0 <= summary["elapsed_s"] < 1.5 * 4.0, summary["elapsed_s"]
    assert 0 <= summary["drain_s"] < 5.0
    assert f"in {summary['elapsed_s']:.1f} s" in out
