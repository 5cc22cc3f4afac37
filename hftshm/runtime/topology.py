"""The declared topology: which workers exist, how they are placed, and the rings between them.

Read from ``[workers.NAME]`` tables and ``[[rings]]`` entries of the platform config::

    [workers.feed]
    class = "hftshm.feed.worker:FeedWorker"   # module:Class of a hftshm.runtime.worker.Worker
    process = "pipeline"                      # workers naming the same process share it (composite)
    cpu = "auto"                              # auto | none (not pinned) | CPU number | list of CPUs
    wait = "spin-park"                        # busy-spin | spin-yield | spin-park
    params = { }                              # keyword arguments for the class
    external = false                          # true: started by ``hftshm worker feed`` instead

    [[rings]]
    name = "md.strategies"
    layout = "market_event"
    from = "feed"
    to = "strategies"
    capacity = 65536                          # records, a power of two
    backpressure = "block"                    # block | drop

A ring's ``from`` or ``to`` may be ``nats:<subject>`` (``nats:`` alone = ``hftshm.<[bridge] namespace>.<ring>``):
the ring then crosses hosts through NATS JetStream, and the topology adds the bridge worker that
carries it (``hftshm.bridge``): ``to = "nats:"`` exports the ring's records, ``from = "nats:SUBJECT"``
imports a subject into it. Bridge workers share one unpinned process, ``bridge``. A ring that stays
local and is exported as well (the order events: the OMS database writer here, the journal and a
monitor host there) says ``export = "nats:"``: its export worker forwards every record to the
declared consumer through ``<ring>.local`` and publishes it.

Declaration order is pipeline order: the supervisor starts processes downstream first (so every
consumer is attached before its producer runs) and drains them upstream first.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from hftshm.config import ConfigError, Section

WAIT_STRATEGIES = ("busy-spin", "spin-yield", "spin-park")
# A ring ``from = "operator"`` is written by operator commands (``hftshm strategies pause``, the web
# API) rather than by a worker; they take ``<run_dir>/<ring>.lock`` so there is still one producer.
OPERATOR = "operator"
BACKPRESSURE_MODES = ("block", "drop")
NATS_PREFIX = "nats:"
BRIDGE_PROCESS = "bridge"
LOCKSTEP_IMPORT = "bridge_lockstep_import"  # a deterministic run's market data source (all imported rings)


@dataclass(frozen=True)
class RingSpec:
    name: str
    layout: str
    producer: str
    consumer: str
    capacity: int
    backpressure: str
    # the NATS subject when the ring crosses hosts (its producer or consumer is then a bridge worker)
    remote_subject: str = ""
    # ``export = "nats:..."``: the ring's records also go to NATS (a tee; resolved into a bridge worker)
    export: str = ""


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    factory: str
    process: str
    cpu: Any  # "auto", an int, or a list of ints
    wait: str
    params: dict = field(default_factory=dict)
    # external: the supervisor creates its rings and status row but does not start it;
    # ``hftshm worker NAME`` runs it from another terminal (debugging a stage, moving it to another host core)
    external: bool = False


@dataclass(frozen=True)
class ProcessSpec:
    """One OS process: one worker, or several run round-robin as a composite."""

    name: str
    workers: tuple[WorkerSpec, ...]
    cpu: Any
    wait: str


@dataclass(frozen=True)
class Topology:
    workers: tuple[WorkerSpec, ...]
    rings: tuple[RingSpec, ...]
    # "composite": workers sharing a ``process`` name run in one process; "process-per-worker" ignores it
    placement: str = "composite"

    def worker(self, name: str) -> WorkerSpec:
        for spec in self.workers:
            if spec.name == name:
                return spec
        raise KeyError(f"no worker named {name!r}; declared: {', '.join(w.name for w in self.workers)}")

    def inputs_of(self, worker: str) -> list[RingSpec]:
        return [r for r in self.rings if r.consumer == worker]

    def outputs_of(self, worker: str) -> list[RingSpec]:
        return [r for r in self.rings if r.producer == worker]

    def processes(self) -> list[ProcessSpec]:
        """Workers grouped by process name, in declaration order of each process's first worker."""
        groups: dict[str, list[WorkerSpec]] = {}
        for spec in self.workers:
            if not spec.external:
                key = spec.process if self.placement == "composite" else spec.name
                groups.setdefault(key, []).append(spec)
        result = []
        for name, members in groups.items():
            first = members[0]
            result.append(ProcessSpec(name, tuple(members), first.cpu, first.wait))
        return result

    @classmethod
    def from_config(cls, raw: dict, placement: str = "composite") -> "Topology":
        workers_raw = raw.get("workers")
        if not isinstance(workers_raw, dict) or not workers_raw:
            raise ConfigError("[workers] must declare at least one worker, e.g. [workers.feed] class = \"...\"")
        workers = [_worker_from(name, body) for name, body in workers_raw.items()]
        rings_raw = raw.get("rings", [])
        if not isinstance(rings_raw, list):
            raise ConfigError("rings must be an array of tables ([[rings]])")
        rings = [_ring_from(i, body) for i, body in enumerate(rings_raw)]
        rings, bridge_workers = _bridge_endpoints(rings, raw.get("bridge") or {})
        platform = raw.get("platform") if isinstance(raw.get("platform"), dict) else {}
        if platform.get("deterministic"):
            rings, bridge_workers = _lockstep_import(rings, bridge_workers)
        workers += bridge_workers
        topology = cls(tuple(workers), tuple(rings), placement)
        topology.validate()
        return topology

    def validate(self) -> None:
        names = [w.name for w in self.workers]
        if len(set(names)) != len(names):
            raise ConfigError(f"worker names must be unique, found {names}")
        ring_names = [r.name for r in self.rings]
        duplicates = {n for n in ring_names if ring_names.count(n) > 1}
        if duplicates:
            raise ConfigError(f"ring names must be unique; repeated: {', '.join(sorted(duplicates))}")
        for ring in self.rings:
            for role, worker in (("from", ring.producer), ("to", ring.consumer)):
                if worker not in names and not (role == "from" and worker == OPERATOR):
                    raise ConfigError(f"ring {ring.name!r}: {role} = {worker!r} is not a declared worker; "
                                      f"declared: {', '.join(names)}" + (f" (or {OPERATOR!r})" if role == "from" else ""))
            if ring.producer == ring.consumer:
                raise ConfigError(f"ring {ring.name!r} has the same producer and consumer {ring.producer!r}")
        for process in self.processes():
            cpus = {repr(w.cpu) for w in process.workers}
            waits = {w.wait for w in process.workers}
            if len(cpus) > 1 or len(waits) > 1:
                raise ConfigError(f"process {process.name!r}: its workers must share cpu and wait, found "
                                  f"cpu {sorted(cpus)} and wait {sorted(waits)}")


def _worker_from(name: str, body: Any) -> WorkerSpec:
    section = Section(f"workers.{name}", body)
    factory = section.string("class")
    if ":" not in factory:
        raise ConfigError(f"workers.{name}.class must be 'module:Class', found {factory!r}")
    cpu = section._get("cpu", "auto")
    if not (cpu in ("auto", "none") or (isinstance(cpu, int) and not isinstance(cpu, bool) and cpu >= 0)
            or (isinstance(cpu, list) and cpu and all(isinstance(c, int) and c >= 0 for c in cpu))):
        raise ConfigError(f"workers.{name}.cpu is {cpu!r}; allowed: \"auto\", \"none\", a CPU number, "
                          "or a list of CPU numbers")
    spec = WorkerSpec(
        name=name,
        factory=factory,
        process=section.string("process", name),
        cpu=cpu,
        wait=section.choice("wait", WAIT_STRATEGIES, "spin-park"),
        params=section.table("params", {}),
        external=section.boolean("external", False),
    )
    section.done()
    return spec


def _ring_from(index: int, body: Any) -> RingSpec:
    section = Section(f"rings[{index}]", body)
    name = section.string("name")
    section.name = f"rings.{name}"
    capacity = section.integer("capacity", 65536, min=2)
    if capacity & (capacity - 1):
        raise ConfigError(f"rings.{name}.capacity must be a power of two, found {capacity}")
    from hftshm.transport import layout as layouts

    layout = section.string("layout")
    if layout not in layouts.names():
        raise ConfigError(f"rings.{name}.layout is {layout!r}; declared layouts: {', '.join(layouts.names())}")
    spec = RingSpec(
        name=name,
        layout=layout,
        producer=section.string("from"),
        consumer=section.string("to"),
        capacity=capacity,
        backpressure=section.choice("backpressure", BACKPRESSURE_MODES, "block"),
        export=section.string("export", ""),
    )
    section.done()
    if spec.export and not spec.export.startswith(NATS_PREFIX):
        raise ConfigError(f"rings.{name}.export must be {NATS_PREFIX!r} or {NATS_PREFIX}<subject>, found {spec.export!r}")
    return spec


def _bridge_endpoints(rings: list[RingSpec], bridge_raw: dict) -> tuple[list[RingSpec], list[WorkerSpec]]:
    """Rings with a ``nats:`` end get a bridge worker at that end (export or import)."""
    import dataclasses

    namespace = bridge_raw.get("namespace", "default") if isinstance(bridge_raw, dict) else "default"
    result, workers = [], []
    for ring in rings:
        ends = [role for role, end in (("from", ring.producer), ("to", ring.consumer)) if end.startswith(NATS_PREFIX)]
        if ring.export:
            if ends:
                raise ConfigError(f"ring {ring.name!r}: export = ... is for a local ring; this one already crosses "
                                  f"hosts through {NATS_PREFIX}")
            subject = _subject(ring.name, ring.export, namespace)
            local = dataclasses.replace(ring, name=f"{ring.name}.local", export="")
            worker = WorkerSpec(f"bridge_export_{ring.name.replace('.', '_')}", "hftshm.bridge.export:ExportWorker",
                                BRIDGE_PROCESS, "none", "spin-park",
                                {"ring": ring.name, "subject": subject, "forward": local.name})
            result += [dataclasses.replace(ring, consumer=worker.name, remote_subject=subject, export=""),
                       dataclasses.replace(local, producer=worker.name)]
            workers.append(worker)
            continue
        if not ends:
            result.append(ring)
            continue
        if len(ends) == 2:
            raise ConfigError(f"ring {ring.name!r}: only one of from/to may be {NATS_PREFIX}<subject>")
        end = ring.producer if ends[0] == "from" else ring.consumer
        subject = _subject(ring.name, end, namespace)
        token = ring.name.replace(".", "_")
        if ends[0] == "from":
            worker = WorkerSpec(f"bridge_import_{token}", "hftshm.bridge.importer:ImportWorker", BRIDGE_PROCESS,
                                "none", "spin-park", {"ring": ring.name, "subject": subject})
            ring = dataclasses.replace(ring, producer=worker.name, remote_subject=subject)
        else:
            worker = WorkerSpec(f"bridge_export_{token}", "hftshm.bridge.export:ExportWorker", BRIDGE_PROCESS,
                                "none", "spin-park", {"ring": ring.name, "subject": subject})
            ring = dataclasses.replace(ring, consumer=worker.name, remote_subject=subject)
        workers.append(worker)
        result.append(ring)
    return result, workers


def _lockstep_import(rings: list[RingSpec], workers: list[WorkerSpec]) -> tuple[list[RingSpec], list[WorkerSpec]]:
    """A deterministic run imports market data in lockstep (``hftshm.bridge.lockstep_import``): one
    worker produces every imported ring, one exchange message at a time, in place of the per-ring
    import workers (which publish whatever arrives, as it arrives)."""
    import dataclasses

    imports = {w.name: w for w in workers if w.factory.endswith(":ImportWorker")}
    if not imports:
        return rings, workers
    for ring in rings:
        if ring.producer in imports and ring.layout not in ("market_event", "book_snapshot"):
            raise ConfigError(f"ring {ring.name!r}: a deterministic run imports market data only (market_event "
                              f"and book_snapshot rings from nats:...), not {ring.layout} records: run this "
                              "platform without --deterministic")
    subjects = {w.params["ring"]: w.params["subject"] for w in imports.values()}
    lockstep = WorkerSpec(LOCKSTEP_IMPORT, "hftshm.bridge.lockstep_import:LockstepImportWorker",
                          LOCKSTEP_IMPORT.replace("_", "-"), "auto", "spin-yield", {"rings": subjects})
    rings = [dataclasses.replace(r, producer=LOCKSTEP_IMPORT) if r.producer in imports else r for r in rings]
    return rings, [w for w in workers if w.name not in imports] + [lockstep]


def _subject(ring: str, end: str, namespace: str) -> str:
    import re

    subject = end[len(NATS_PREFIX):] or f"hftshm.{namespace}.{ring}"
    if not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", subject):
        raise ConfigError(f"rings.{ring}: {end!r} is not a NATS subject (dot-separated tokens of "
                          "letters, digits, _ -; no wildcards)")
    return subject


def load_factory(path: str):
    """Import ``module:Class``; errors say which part failed."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for worker class {path!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no {attr!r} (worker class {path!r})") from None
