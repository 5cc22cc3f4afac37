"""Read-only views of a running platform's shared memory, for ``hftshm status``, the run summary
and the metrics collector. Nothing here writes to shared memory."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hftshm.codes import WorkerState
from hftshm.runtime import status as st
from hftshm.runtime.manifest import RunManifest


@dataclass
class WorkerView:
    name: str
    process: str
    pid: int
    cpu: int
    state: str
    heartbeat_age_s: float
    work_count: int
    idle_count: int
    restarts: int
    counters: dict[str, int]


@dataclass
class RingView:
    name: str
    layout: str
    producer: str
    consumer: str
    capacity: int
    occupancy: int
    full_events: int
    drops: int
    backpressure: str


def worker_views(manifest: RunManifest, status: st.StatusTable) -> list[WorkerView]:
    now = time.monotonic_ns()
    views = []
    for entry in manifest.workers:
        words = status.words[entry.row]
        heartbeat = int(words[st.HEARTBEAT_NS])
        counters = status.counters(entry.row)
        views.append(WorkerView(
            name=entry.name, process=entry.process, pid=int(words[st.PID]), cpu=int(words[st.CPU]),
            state=WorkerState(int(words[st.STATE])).name.lower(),
            heartbeat_age_s=(now - heartbeat) / 1e9 if heartbeat else float("nan"),
            work_count=int(words[st.WORK_COUNT]), idle_count=int(words[st.IDLE_COUNT]),
            restarts=int(words[st.RESTARTS]),
            counters={name: int(counters[i]) for i, name in enumerate(entry.counter_names)},
        ))
    return views


def ring_views(manifest: RunManifest, rings: dict) -> list[RingView]:
    views = []
    for entry in manifest.rings:
        ring = rings[entry.name]
        views.append(RingView(entry.name, entry.layout, entry.producer, entry.consumer, entry.capacity,
                              int(ring.occupancy()), int(ring.full_events), int(ring.drops), entry.backpressure))
    return views


def attach_rings(manifest: RunManifest) -> dict:
    from hftshm.transport import layout as layouts
    from hftshm.transport.ring import Ring

    return {entry.name: Ring.attach(entry.segment, layouts.load(entry.layout)) for entry in manifest.rings}


def counter_total(views: list[WorkerView], name: str) -> int:
    return int(np.sum([v.counters.get(name, 0) for v in views]))
