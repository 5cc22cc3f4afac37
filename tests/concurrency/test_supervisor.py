"""The skeleton end to end: a declared topology of three workers in separate processes passes
millions of records, sequence-checked, through wrap-around and random batch sizes, survives a
SIGKILL of the middle worker, and leaves no shared memory behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hftshm.codes import WorkerState
from hftshm.platform import PlatformConfig
from hftshm.runtime import segments
from hftshm.runtime.supervisor import Supervisor

COUNT = 3_000_000


def soak_config(run_dir: Path, count: int, placement: str = "process-per-worker", capacity: int = 4096) -> PlatformConfig:
    raw = {
        "platform": {"run_dir": str(run_dir), "placement": placement},
        "supervisor": {"heartbeat_timeout_s": 5.0, "restart_backoff_s": 0.05, "drain_timeout_s": 20.0},
        "workers": {
            "source": {"class": "hftshm.runtime.soak:SequenceSource", "process": "p1", "wait": "spin-yield",
                       "params": {"count": count, "max_batch": 700, "seed": 7}},
            "relay": {"class": "hftshm.runtime.soak:SequenceRelay", "process": "p2", "wait": "spin-park",
                      "params": {"max_batch": 333}},
            "sink": {"class": "hftshm.runtime.soak:SequenceSink", "process": "p3", "wait": "spin-park",
                     "params": {"max_batch": 1000}},
        },
        "rings": [
            # small capacities force many wrap-arounds and full-ring back-pressure
            {"name": "a", "layout": "market_event", "from": "source", "to": "relay", "capacity": capacity},
            {"name": "b", "layout": "market_event", "from": "relay", "to": "sink", "capacity": capacity // 2},
        ],
    }
    return PlatformConfig.from_raw(raw, base_dir=run_dir)


def counters(sup: Supervisor, worker: str) -> dict[str, int]:
    entry = sup.manifest.worker(worker)
    values = sup.status.counters(entry.row)
    return {name: int(values[i]) for i, name in enumerate(entry.counter_names)}


def run_until_finished(sup: Supervisor, timeout_s: float, on_progress=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not sup.finished():
        sup.poll()
        if on_progress:
            on_progress()
        assert time.monotonic() < deadline, f"not finished after {timeout_s} s: {sup.worker_states()}"
        time.sleep(0.01)


def test_three_workers_move_every_record_in_order(run_dir):
    config = soak_config(run_dir, COUNT)
    with Supervisor(config.topology, config, create_control=False) as sup:
        sup.start()
        run_until_finished(sup, 300)
        sup.shutdown()
        sink = counters(sup, "sink")
        assert sink["next_expected"] == COUNT
        assert sink["received"] == COUNT
        assert sink["gaps"] == 0 and sink["torn"] == 0 and sink["reordered"] == 0 and sink["duplicates"] == 0
        assert sup.rings["a"].producer_position == COUNT  # wrapped COUNT / 4096 times
        assert all(s == WorkerState.STOPPED for s in sup.worker_states().values())
        prefix = sup.prefix
    assert segments.segments_of(prefix) == []


def test_sigkill_of_the_relay_loses_nothing(run_dir):
    config = soak_config(run_dir, COUNT)
    killed = []
    with Supervisor(config.topology, config, create_control=False) as sup:
        sup.start()

        def kill_midway():
            if not killed and counters(sup, "sink")["received"] > COUNT // 3:
                os.kill(sup.handles["relay"].process.pid, signal.SIGKILL)
                killed.append(time.monotonic())

        run_until_finished(sup, 300, kill_midway)
        sup.shutdown()
        sink = counters(sup, "sink")
        assert killed, "the relay was never killed"
        assert sup.handles["relay"].restarts == 1
        assert sink["next_expected"] == COUNT
        assert sink["gaps"] == 0 and sink["torn"] == 0 and sink["reordered"] == 0
        # at-least-once: the relay's unreleased batch is delivered again, never lost
        assert sink["received"] == COUNT + sink["duplicates"]
        prefix = sup.prefix
    assert segments.segments_of(prefix) == []


def test_composite_placement_runs_all_workers_in_one_process(run_dir):
    config = soak_config(run_dir, 200_000, placement="composite")
    raw = config.raw
    for worker in raw["workers"].values():
        worker["process"] = "all"
        worker["wait"] = "spin-park"
    config = PlatformConfig.from_raw(raw, base_dir=run_dir)
    with Supervisor(config.topology, config, create_control=False) as sup:
        assert [p.name for p in config.topology.processes()] == ["all"]
        sup.start()
        pids = {int(sup.status.words[w.row, 0]) for w in sup.manifest.workers}
        assert len(pids) == 1
        run_until_finished(sup, 120)
        sup.shutdown()
        assert counters(sup, "sink")["next_expected"] == 200_000
        assert counters(sup, "sink")["gaps"] == 0


def test_supervisor_crash_leftovers_are_removed_by_the_next_run(run_dir, tmp_path):
    # Python's resource tracker unlinks a dead creator's segments, but not when it dies too (kill -9
    # of the process group, the OOM killer): then only the next supervisor's sweep removes them.
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from hftshm.platform import PlatformConfig\n"
        "from hftshm.runtime.supervisor import Supervisor\n"
        "from tests.concurrency.test_supervisor import soak_config\n"
        f"config = soak_config(__import__('pathlib').Path({str(run_dir)!r}), 10)\n"
        "sup = Supervisor(config.topology, config, create_control=False)\n"
        "sup.create_segments()\n"
        "print(sup.prefix, flush=True)\n"
        "from multiprocessing import resource_tracker\n"
        "os.kill(resource_tracker._resource_tracker._pid, 9)\n"
        "os._exit(0)\n"  # no cleanup: as a SIGKILL would leave it
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    prefix = out.stdout.strip().splitlines()[-1]
    assert segments.segments_of(prefix), "the crashed supervisor should have left segments"
    config = soak_config(run_dir, 10)
    with Supervisor(config.topology, config, create_control=False):
        assert segments.segments_of(prefix) == []


def test_zmq_transport_moves_the_same_records(run_dir):
    """The comparison transport of 'hftshm bench pipeline': same workers, every hop over pyzmq."""
    count = 100_000
    config = soak_config(run_dir, count)
    with Supervisor(config.topology, config, create_control=False, transport="zmq") as sup:
        sup.start()
        deadline = time.monotonic() + 120
        while counters(sup, "sink")["next_expected"] < count:
            sup.poll()
            assert time.monotonic() < deadline, counters(sup, "sink")
            time.sleep(0.01)
        sup.shutdown()
        sink = counters(sup, "sink")
        assert sink["received"] == count and sink["gaps"] == 0 and sink["torn"] == 0


def test_workers_exit_when_the_supervisor_is_killed(run_dir):
    """A SIGKILLed supervisor cannot drain its workers; they must not spin on as orphans."""
    import subprocess
    import sys

    import psutil

    script = (
        "import time\n"
        "from hftshm.runtime.supervisor import Supervisor\n"
        "from tests.concurrency.test_supervisor import soak_config\n"
        f"config = soak_config(__import__('pathlib').Path({str(run_dir)!r}), 10**12)\n"
        "sup = Supervisor(config.topology, config, create_control=False)\n"
        "sup.create_segments()\n"
        "sup.start()\n"
        "print(' '.join(str(h.process.pid) for h in sup.handles.values()), flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "worker processes outlived their supervisor"
    finally:
        proc.kill()
    # what the dead supervisor left is swept by the next one
    config = soak_config(run_dir, 10)
    with Supervisor(config.topology, config, create_control=False):
        assert not [n for n in segments.stale_segments()]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
