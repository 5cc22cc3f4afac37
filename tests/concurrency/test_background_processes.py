"""An unpinned worker process (``cpu = "none"``, e.g. the database writer) runs as a SCHED_BATCH
task, so its wake-ups never preempt a pinned hot-path process; pinned processes stay normal."""

from __future__ import annotations

import os

from hftshm.platform import PlatformConfig
from hftshm.runtime.supervisor import Supervisor
from tests.concurrency.test_supervisor import run_until_finished


def test_unpinned_processes_are_batch_tasks_and_pinned_ones_normal(run_dir):
    raw = {
        "platform": {"run_dir": str(run_dir), "placement": "process-per-worker"},
        "supervisor": {"heartbeat_timeout_s": 30.0},
        "workers": {
            "source": {"class": "hftshm.runtime.soak:SequenceSource", "process": "p1", "wait": "spin-yield",
                       "params": {"count": 3_000_000, "max_batch": 64, "seed": 7}},
            "sink": {"class": "hftshm.runtime.soak:SequenceSink", "process": "p2", "wait": "spin-park",
                     "cpu": "none", "params": {"max_batch": 64}},
        },
        "rings": [{"name": "a", "layout": "market_event", "from": "source", "to": "sink", "capacity": 1024}],
    }
    config = PlatformConfig.from_raw(raw, base_dir=run_dir)
    with Supervisor(config.topology, config, create_control=False) as sup:
        sup.start()
        policies = {name: os.sched_getscheduler(handle.process.pid) for name, handle in sup.handles.items()}
        run_until_finished(sup, 300)
        sup.shutdown()
    assert policies == {"source": os.SCHED_OTHER, "sink": os.SCHED_BATCH}
