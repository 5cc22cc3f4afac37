"""The run manifest: everything another process needs to attach to a running platform.

The supervisor writes it as JSON to ``<run_dir>/current.json`` when the segments exist and removes
it when they are gone. Worker processes receive it as their only argument; ``hftshm status``,
``hftshm stop``, ``hftshm worker`` and the kill-switch commands find the platform through it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class RingEntry:
    name: str
    segment: str
    layout: str
    producer: str
    consumer: str
    capacity: int
    backpressure: str
    # transport "zmq" only: the consumer's private ring (``segment`` is then the producer's)
    consumer_segment: str = ""


@dataclass
class WorkerEntry:
    name: str
    row: int
    process: str
    factory: str
    params: dict
    counter_names: list[str] = field(default_factory=list)
    histogram_names: list[str] = field(default_factory=list)


@dataclass
class ProcessEntry:
    name: str
    workers: list[str]
    cpu: int  # -1: not pinned
    wait: str
    pid: int = 0


@dataclass
class RunManifest:
    prefix: str
    supervisor_pid: int
    run_dir: str
    config: dict
    status_segment: str
    workers: list[WorkerEntry]
    rings: list[RingEntry]
    processes: list[ProcessEntry]
    metrics_segment: str = ""
    doorbell_segment: str = ""
    control_segment: str = ""
    transport: str = "shm"  # "zmq": every hop over pyzmq (hftshm.runtime.zmq_bridge), for comparison
    started_ns: int = 0
    extra: dict = field(default_factory=dict)

    def worker(self, name: str) -> WorkerEntry:
        for entry in self.workers:
            if entry.name == name:
                return entry
        raise KeyError(f"no worker named {name!r} in this run; workers: {', '.join(w.name for w in self.workers)}")

    def process(self, name: str) -> ProcessEntry:
        for entry in self.processes:
            if entry.name == name:
                return entry
        raise KeyError(f"no process named {name!r} in this run")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, data: dict) -> "RunManifest":
        data = dict(data)
        data["workers"] = [WorkerEntry(**w) for w in data["workers"]]
        data["rings"] = [RingEntry(**r) for r in data["rings"]]
        data["processes"] = [ProcessEntry(**p) for p in data["processes"]]
        return cls(**data)

    def write(self) -> Path:
        path = manifest_path(self.run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)  # readers never see half a manifest
        return path


def manifest_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "current.json"


class NoRunningPlatform(RuntimeError):
    pass


def read_running(run_dir: str | Path) -> RunManifest:
    """The manifest of the platform running under ``run_dir``; a clear error if there is none."""
    path = manifest_path(run_dir)
    if not path.exists():
        raise NoRunningPlatform(f"no platform is running under {run_dir} (no {path}); start one with 'hftshm run'")
    manifest = RunManifest.from_dict(json.loads(path.read_text()))
    try:
        os.kill(manifest.supervisor_pid, 0)
    except ProcessLookupError:
        raise NoRunningPlatform(
            f"the platform recorded in {path} (supervisor pid {manifest.supervisor_pid}) is not running; "
            "its leftovers are cleaned up by the next 'hftshm run'") from None
    return manifest
