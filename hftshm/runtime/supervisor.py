"""The supervisor: creates the run's shared memory, starts and pins the worker processes, watches
their heartbeats, restarts the dead with backoff, drains them in pipeline order, and unlinks every
segment it created.

Lifecycle::

    with Supervisor(config.topology, config) as sup:   # removes stale segments, creates new ones
        sup.start()                                    # downstream first; waits until all RUNNING
        while not sup.finished():
            sup.poll()                                 # liveness, restarts
        sup.shutdown()                                 # drain upstream first
    # every segment of the run is unlinked here, also after an exception
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hftshm.codes import WorkerCommand, WorkerState
from hftshm.runtime import segments
from hftshm.runtime import status as st
from hftshm.runtime.manifest import ProcessEntry, RingEntry, RunManifest, WorkerEntry, manifest_path
from hftshm.runtime.process import process_main
from hftshm.runtime.topology import Topology, load_factory
from hftshm.transport import layout as layouts

log = logging.getLogger("hftshm.supervisor")


class SupervisorError(RuntimeError):
    pass


@dataclass
class ProcessHandle:
    entry: ProcessEntry
    process: mp.process.BaseProcess | None = None
    restarts: int = 0
    next_start_at: float = 0.0  # monotonic seconds; backoff before the next restart
    gave_up: bool = False
    history: list = field(default_factory=list)


class Supervisor:
    def __init__(self, topology: Topology, config, *, run_dir: Path | None = None,
                 create_control: bool = True, create_metrics: bool = True, transport: str = "shm"):
        if transport not in ("shm", "zmq"):
            raise ValueError(f"transport must be 'shm' or 'zmq', got {transport!r}")
        self.transport = transport
        self.topology = topology
        self.config = config
        self.settings = config.supervisor
        self.run_dir = Path(run_dir or config.platform.run_dir)
        self.prefix = segments.new_run_prefix()
        self.created: list[str] = []
        self.rings: dict[str, object] = {}
        self.handles: dict[str, ProcessHandle] = {}
        self.status: st.StatusTable | None = None
        self.metrics = None
        self.control = None
        self.controls_at_start: dict = {}
        self.manifest: RunManifest | None = None
        self._create_control = create_control
        self._create_metrics = create_metrics
        self._mp = mp.get_context("spawn")
        self._spawn_command = WorkerCommand.RUN

    # -- setup -----------------------------------------------------------------------------------

    def __enter__(self) -> "Supervisor":
        try:
            self.create_segments()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if any(h.process is not None and h.process.is_alive() for h in self.handles.values()):
                self.shutdown()
        finally:
            self.close()

    def create_segments(self) -> RunManifest:
        removed = segments.remove_stale()
        if removed:
            log.warning("removed %d stale shared-memory segment(s) of a crashed earlier run: %s",
                        len(removed), ", ".join(removed))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        workers = list(self.topology.workers)
        worker_entries = []
        histogram_names = []
        for row, spec in enumerate(workers):
            worker_class = load_factory(spec.factory)
            counters = list(getattr(worker_class, "COUNTER_NAMES", ()))
            if len(counters) > st.MAX_COUNTERS:
                raise SupervisorError(f"worker {spec.name!r} declares {len(counters)} counters; at most {st.MAX_COUNTERS}")
            histograms = list(getattr(worker_class, "HISTOGRAMS", ()))
            histogram_names += [f"{spec.name}.{h}" for h in histograms]
            worker_entries.append(WorkerEntry(spec.name, row, "", spec.factory, spec.params, counters, histograms))
        self.status = st.StatusTable.create(self._segment("status"), len(workers))
        self.created.append(self.status.name)
        from hftshm.transport.ring import Ring

        ring_entries = []
        for spec in self.topology.rings:
            name = self._segment(f"ring.{spec.name}")
            ring = Ring.create(name, layouts.load(spec.layout), spec.capacity, backpressure=spec.backpressure)
            self.created.append(name)
            self.rings[spec.name] = ring
            consumer_name = ""
            if self.transport == "zmq":
                consumer_name = self._segment(f"ring.{spec.name}.consumer")
                self.rings[f"{spec.name}.consumer"] = Ring.create(consumer_name, layouts.load(spec.layout),
                                                                  spec.capacity, backpressure=spec.backpressure)
                self.created.append(consumer_name)
            ring_entries.append(RingEntry(spec.name, name, spec.layout, spec.producer, spec.consumer,
                                          spec.capacity, spec.backpressure, consumer_name))
        metrics_name = ""
        if self._create_metrics and histogram_names:
            from hftshm.metrics.segment import MetricsSegment

            metrics_name = self._segment("metrics")
            self.metrics = MetricsSegment.create(metrics_name, histogram_names)
            self.created.append(metrics_name)
        control_name = ""
        if self._create_control:
            from hftshm.risk.control import ControlBlock

            control_name = self._segment("control")
            self.control = ControlBlock.create(control_name)
            self.created.append(control_name)
            # the operator's persisted kill switch / trading state, before any worker can send an order
            from hftshm.audit.controls import load_persisted_controls

            self.controls_at_start = load_persisted_controls(self.control, self.config, self.run_dir)
        process_entries = []
        cpus = placement_cpus(self.topology.processes())
        for process, cpu in zip(self.topology.processes(), cpus):
            entry = ProcessEntry(process.name, [w.name for w in process.workers], cpu, process.wait)
            process_entries.append(entry)
            for worker in worker_entries:
                if worker.name in entry.workers:
                    worker.process = process.name
            self.handles[process.name] = ProcessHandle(entry)
        self.manifest = RunManifest(
            prefix=self.prefix, supervisor_pid=os.getpid(), run_dir=str(self.run_dir), config=self.config.raw,
            status_segment=self.status.name, workers=worker_entries, rings=ring_entries,
            processes=process_entries, metrics_segment=metrics_name, control_segment=control_name,
            transport=self.transport, started_ns=time.time_ns(),
        )
        self.manifest.write()
        return self.manifest

    def _segment(self, what: str) -> str:
        return f"{self.prefix}{what}"

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every process, downstream first, and wait until all workers run (or fail clearly).
        Sources (processes whose workers consume no ring: the feed) start only once every other
        process runs, so the first ticks do not queue behind the consumers' start-up (kernel
        warm-up takes seconds on a fresh checkout) and count it as latency."""
        consumers = {r.consumer for r in self.manifest.rings}
        handles = list(self.handles.values())
        sources = [h for h in handles if not consumers.intersection(h.entry.workers)]
        deadline = time.monotonic() + self.settings.start_timeout_s
        for group in ([h for h in handles if h not in sources], sources):
            for handle in reversed(group):
                self._spawn(handle)
            self._await_running({w for h in group for w in h.entry.workers}, deadline)

    def _await_running(self, workers: set[str], deadline: float) -> None:
        internal = {w.name for w in self.topology.workers if not w.external} & workers
        while True:
            states = {n: s for n, s in self.worker_states().items() if n in internal}
            failed = [n for n, s in states.items() if s == WorkerState.FAILED]
            if failed:
                raise SupervisorError(f"worker(s) {', '.join(failed)} failed to start; see "
                                      f"{self.run_dir / 'logs'}/<worker>.log")
            dead = [h.entry.name for h in self.handles.values() if h.process is not None and not h.process.is_alive()]
            if dead:
                raise SupervisorError(f"process(es) {', '.join(dead)} exited during start; see {self.run_dir / 'logs'}")
            if all(s in (WorkerState.RUNNING, WorkerState.FINISHED) for s in states.values()):
                return
            if time.monotonic() > deadline:
                slow = [n for n, s in states.items() if s != WorkerState.RUNNING]
                raise SupervisorError(f"worker(s) {', '.join(slow)} not running after "
                                      f"{self.settings.start_timeout_s:.0f} s (supervisor.start_timeout_s)")
            time.sleep(0.02)

    def _spawn(self, handle: ProcessHandle) -> None:
        words = self.status.words
        for name in handle.entry.workers:
            row = self.manifest.worker(name).row
            words[row, st.COMMAND] = self._spawn_command
            words[row, st.STATE] = WorkerState.STARTING
            words[row, st.PID] = 0
        process = self._mp.Process(target=process_main, args=(_manifest_dict(self.manifest), handle.entry.name),
                                   name=f"hftshm-{handle.entry.name}", daemon=False)
        process.start()
        handle.process = process
        handle.entry.pid = process.pid
        self.manifest.write()
        log.info("started process %s (pid %d) with workers %s on cpu %d", handle.entry.name, process.pid,
                 ", ".join(handle.entry.workers), handle.entry.cpu)

    def poll(self) -> list[str]:
        """Check liveness once; restart what died. Returns the names of processes restarted."""
        restarted = []
        now = time.monotonic()
        now_ns = time.monotonic_ns()
        words = self.status.words
        for handle in self.handles.values():
            process = handle.process
            if process is None or handle.gave_up:
                continue
            rows = [self.manifest.worker(n).row for n in handle.entry.workers]
            closed = all(words[r, st.STATE] == WorkerState.STOPPED for r in rows)
            if not process.is_alive():
                if closed and process.exitcode == 0:
                    continue  # drained and exited on purpose
                reason = f"exit code {process.exitcode}"
            else:
                running = [r for r in rows if words[r, st.STATE] == WorkerState.RUNNING]
                stale = [r for r in running if now_ns - words[r, st.HEARTBEAT_NS] > self.settings.heartbeat_timeout_s * 1e9]
                if not stale:
                    continue
                reason = f"heartbeat older than {self.settings.heartbeat_timeout_s:.1f} s"
                process.kill()
                process.join(5)
            if self._restart(handle, reason, now):
                restarted.append(handle.entry.name)
        return restarted

    def _restart(self, handle: ProcessHandle, reason: str, now: float) -> bool:
        if handle.next_start_at == 0.0:
            if handle.restarts >= self.settings.max_restarts:
                handle.gave_up = True
                log.error("process %s died (%s); not restarting: max_restarts %d reached",
                          handle.entry.name, reason, self.settings.max_restarts)
                return False
            backoff = min(self.settings.restart_backoff_s * (2 ** handle.restarts), self.settings.restart_backoff_max_s)
            handle.next_start_at = now + backoff
            log.warning("process %s died (%s); restarting in %.2f s", handle.entry.name, reason, backoff)
            handle.history.append((time.time(), reason))
            return False
        if now < handle.next_start_at:
            return False
        handle.next_start_at = 0.0
        handle.restarts += 1
        for name in handle.entry.workers:
            self.status.words[self.manifest.worker(name).row, st.RESTARTS] += 1
        self._spawn(handle)
        return True

    def worker_states(self) -> dict[str, WorkerState]:
        words = self.status.words
        return {w.name: WorkerState(int(words[w.row, st.STATE])) for w in self.manifest.workers}

    def rings_empty(self) -> bool:
        return all(ring.occupancy() == 0 for ring in self.rings.values())

    def finished(self) -> bool:
        """True when every finite source has finished and the pipeline is quiet (all rings empty)."""
        states = self.worker_states()
        sources = [w.name for w in self.topology.workers if not self.topology.inputs_of(w.name)]
        if not sources or not all(states[s] == WorkerState.FINISHED for s in sources):
            return False
        return self.rings_empty()

    def wait_quiet(self, quiet_s: float = 0.2, timeout_s: float = 30.0) -> bool:
        """Wait until the rings stay empty and no worker does work for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        words = self.status.words
        last = words[:, st.WORK_COUNT].copy()
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(0.02)
            now_work = words[:, st.WORK_COUNT].copy()
            if not self.rings_empty() or not np.array_equal(now_work, last):
                quiet_since = time.monotonic()
                last = now_work
            elif time.monotonic() - quiet_since >= quiet_s:
                return True
        return False

    def quiesce(self, quiet_s: float = 0.3, timeout_s: float | None = None) -> bool:
        """Drain, phase one: every worker stops producing new work (sources stop, strategies cancel
        their resting orders) but keeps consuming, and nobody closes until the whole pipeline is
        quiet. The pipeline has cycles (oms -> exchange -> oms, oms -> strategies and risk): a worker
        that closed as soon as it was idle would leave the replies to its last requests (a cancel's
        confirmation) unread in its input ring. True when quiet within ``timeout_s`` (default
        ``drain_timeout_s``). Idempotent; ``shutdown`` calls it first."""
        words = self.status.words
        self._spawn_command = WorkerCommand.QUIESCE  # a process restarted meanwhile joins the drain
        for spec in self.topology.workers:
            row = self.manifest.worker(spec.name).row
            if words[row, st.COMMAND] == WorkerCommand.RUN:
                words[row, st.COMMAND] = WorkerCommand.QUIESCE
            handle = self.handles.get(self.manifest.worker(spec.name).process)
            if handle is not None:
                self._wake(handle)
        quiet = self.wait_quiet(quiet_s=quiet_s, timeout_s=timeout_s or self.settings.drain_timeout_s)
        if not quiet:
            log.warning("pipeline not quiet within %.1f s of the drain request; closing workers anyway",
                        timeout_s or self.settings.drain_timeout_s)
        return quiet

    def shutdown(self, drain: bool = True) -> None:
        """Drain: quiesce the whole pipeline, then close workers upstream first (each once its inputs
        are empty), then reap processes. ``drain=False`` stops every worker at once."""
        words = self.status.words
        if drain:
            self.quiesce()
        command = WorkerCommand.DRAIN if drain else WorkerCommand.STOP
        for spec in self.topology.workers:
            row = self.manifest.worker(spec.name).row
            words[row, st.COMMAND] = command
            handle = self.handles.get(self.manifest.worker(spec.name).process)
            if handle is not None:
                self._wake(handle)
            elif words[row, st.PID] == 0 or not _pid_alive(int(words[row, st.PID])):
                continue  # an external worker nobody started
            deadline = time.monotonic() + self.settings.drain_timeout_s
            while time.monotonic() < deadline:
                if words[row, st.STATE] in (WorkerState.STOPPED, WorkerState.FAILED):
                    break
                if handle is not None and (handle.process is None or not handle.process.is_alive()):
                    break
                time.sleep(0.005)
            else:
                log.warning("worker %s did not drain within %.1f s; stopping it", spec.name,
                            self.settings.drain_timeout_s)
                words[row, st.COMMAND] = WorkerCommand.STOP
        for handle in self.handles.values():
            if handle.process is None:
                continue
            handle.process.join(self.settings.drain_timeout_s)
            if handle.process.is_alive():
                log.warning("process %s did not exit; killing it", handle.entry.name)
                handle.process.kill()
                handle.process.join(5)

    def _wake(self, handle: ProcessHandle) -> None:
        """Ring the doorbells of a process's input rings so a parked process sees its command now."""
        from hftshm.transport import ring_nb

        for entry in self.manifest.rings:
            if entry.consumer in handle.entry.workers:
                ring = self.rings.get(f"{entry.name}.consumer") or self.rings[entry.name]
                ring_nb.wake_consumer_if_parked(ring.ctrl)

    def kill(self, process_name: str, signum: int = 9) -> None:
        """Send a signal to one worker process (tests and fault drills)."""
        os.kill(self.handles[process_name].process.pid, signum)

    # -- teardown --------------------------------------------------------------------------------

    def close(self) -> None:
        """Unlink every segment this run created and remove the manifest. Safe to call twice."""
        for handle in self.handles.values():
            if handle.process is not None and handle.process.is_alive():
                handle.process.kill()
                handle.process.join(5)
        owned = list(self.rings.values()) + [self.status, self.metrics, self.control]
        for obj in owned:
            if obj is None:
                continue
            for method in ("unlink", "close"):
                try:
                    getattr(obj, method, lambda: None)()
                except Exception:
                    pass
        self.rings = {}
        self.status = self.metrics = self.control = None
        for name in self.created:
            segments.unlink(name)
        self.created = []
        for leftover in segments.segments_of(self.prefix):
            segments.unlink(leftover)
        path = manifest_path(self.run_dir)
        try:
            if self.manifest is not None and path.exists() and f'"{self.prefix}"' in path.read_text():
                path.unlink()
        except OSError:
            pass


def placement_cpus(processes) -> list[int]:
    """CPU per process: explicit numbers as given; ``auto`` spreads round-robin over the allowed CPUs;
    ``none`` (-1) leaves the process to the scheduler (I/O-bound helpers such as the database writer)."""
    allowed = sorted(os.sched_getaffinity(0))
    automatic = [p for p in processes if p.cpu == "auto"]
    if len(automatic) > len(allowed):
        log.warning("%d worker processes on %d CPUs: 'auto' placement shares CPUs round-robin",
                    len(automatic), len(allowed))
    result, next_auto = [], 0
    for process in processes:
        if process.cpu == "auto":
            result.append(allowed[next_auto % len(allowed)])
            next_auto += 1
        elif process.cpu == "none":
            result.append(-1)
        elif isinstance(process.cpu, list):
            result.append(process.cpu[0])
        else:
            result.append(int(process.cpu))
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _manifest_dict(manifest: RunManifest) -> dict:
    import json

    return json.loads(manifest.to_json())
