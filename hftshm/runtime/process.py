"""A worker process: attach to the run's shared memory, build its workers, run the duty cycle.

The supervisor starts this with the run manifest (``multiprocessing`` spawn: a fresh interpreter,
no inherited locks or threads from the supervisor, which runs the web server). ``hftshm worker NAME``
calls the same entry point from a terminal to run one worker attached to a running platform.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil

from hftshm.codes import WorkerCommand, WorkerState
from hftshm.runtime import jit_watch, logs, scheduling
from hftshm.runtime import status as st
from hftshm.runtime.manifest import RunManifest
from hftshm.runtime.runner import DutyCycleRunner, WorkerSlot
from hftshm.runtime.topology import load_factory
from hftshm.runtime.worker import WorkerContext
from hftshm.transport import layout as layouts
from hftshm.transport.warmup import warm_transport


def process_main(manifest_data: dict, process_name: str) -> None:
    """Entry point of a worker process; exits with the runner's exit code."""
    # Ctrl-C in the terminal reaches the whole process group; only the supervisor decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    manifest = RunManifest.from_dict(manifest_data)
    sys.exit(run_process(manifest, process_name))


def run_process(manifest: RunManifest, process_name: str, sigint_handler=None) -> int:
    from hftshm.platform import PlatformConfig

    process = manifest.process(process_name)
    level = logs.level_from(manifest.config.get("platform", {}).get("log_level"))
    log = logs.setup_process_logging(manifest.run_dir, process.workers[0], level)
    if process.cpu >= 0:
        try:
            psutil.Process().cpu_affinity([process.cpu])
        except (psutil.Error, ValueError, OSError) as exc:
            log.warning("could not pin process %s to CPU %d: %s", process_name, process.cpu, exc)
        scheduling.foreground(log, f"process {process_name}")
    else:
        scheduling.background(log, f"process {process_name}")  # off the hot path: never preempts it
    status = st.StatusTable.attach(manifest.status_segment, len(manifest.workers))
    stop_requested = []

    def on_sigterm(signum, frame):
        # A SIGTERM sent to this process directly (not through the supervisor): drain our own workers.
        stop_requested.append(signum)
        for name in process.workers:
            status.words[manifest.worker(name).row, st.COMMAND] = WorkerCommand.DRAIN

    signal.signal(signal.SIGTERM, on_sigterm)
    if sigint_handler is not None:
        signal.signal(signal.SIGINT, sigint_handler)
    config = PlatformConfig.from_raw(manifest.config, base_dir=Path(manifest.run_dir).parent)
    attachments = Attachments(manifest)
    slots = []
    try:
        warm_transport()  # the ring API's and the parker's kernels, before any worker's on_start
        for name in process.workers:
            entry = manifest.worker(name)
            row = entry.row
            words = status.words
            words[row, st.PID] = os.getpid()
            words[row, st.STATE] = WorkerState.STARTING
            words[row, st.CPU] = process.cpu
            worker_log = logs.worker_logger(manifest.run_dir, name, level)
            worker_class = load_factory(entry.factory)
            worker = worker_class(**entry.params)
            ctx = WorkerContext(
                name=name,
                params=entry.params,
                inputs={r.name: attachments.ring(r, "consumer") for r in manifest.rings if r.consumer == name},
                outputs={r.name: attachments.ring(r, "producer") for r in manifest.rings if r.producer == name},
                config=config,
                counters=status.counters(row),
                histograms=attachments.histograms(name, getattr(worker_class, "HISTOGRAMS", ())),
                run_dir=Path(manifest.run_dir),
                log=worker_log,
                control=attachments.control(),
                observe_rings=attachments.observe_all,
            )
            worker.on_start(ctx)
            words[row, st.STARTED_NS] = time.monotonic_ns()
            words[row, st.HEARTBEAT_NS] = time.monotonic_ns()
            worker_log.info("started in process %s (pid %d, cpu %d)", process_name, os.getpid(), process.cpu)
            slots.append(WorkerSlot(worker, name, row))
        # rings fed from outside the pipeline (the live feed's frame ring, filled by its network
        # process): a park must wake on them too, not sleep its whole timeout
        wake_rings = [ring for slot in slots for ring in getattr(slot.worker, "wake_rings", ())]
        wait_strategy = attachments.wait_strategy(process, wake_rings)
        compiled = None
        # deterministic runs keep the Python lockstep path (hftshm.runtime.lockstep) in every stage;
        # a flood (speed 0) too unless HFTSHM_COMPILED_CYCLE=all: with the per-slice argument typing
        # gone the stages drain a flood in one process as fast as the Python cycle's, but across the
        # feed and trading processes the compiled flood is still several times slower here, cause
        # not found yet (docs/BENCHMARKS.md), and a flood's latency is queueing anyway
        paced = float(getattr(getattr(config, "feed", None), "speed", 1.0) or 0.0) > 0.0
        paced = paced or os.environ.get("HFTSHM_COMPILED_CYCLE") == "all"
        if manifest.transport == "shm" and paced and not getattr(config.platform, "deterministic", False):
            from hftshm.runtime.trading_cycle import TradingCycle

            compiled = TradingCycle.for_workers([slot.worker for slot in slots], wait_strategy)
            if compiled is not None and not compiled.warm():
                compiled = None
            if compiled is not None:
                log.info("process %s: %s", process_name, compiled.describe())
        runner = DutyCycleRunner(slots, status, wait_strategy, pumps=attachments.pumps(process), compiled=compiled)
        with jit_watch.watching(log, process_name):
            return runner.run()
    except Exception:
        log.exception("process %s failed to start", process_name)
        for name in process.workers:
            status.words[manifest.worker(name).row, st.STATE] = WorkerState.FAILED
            status.words[manifest.worker(name).row, st.EXIT_CODE] = 1
        return 1
    finally:
        attachments.close()


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """A supervisor killed with SIGKILL cannot drain its workers; without this they would spin on
    forever, orphaned. The kernel sends us SIGTERM when the supervisor dies (our SIGTERM handler
    drains and exits); if it died before we got here, we exit at once."""
    import ctypes

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if parent == 1 or os.getppid() != parent:
        sys.exit(0)


class Attachments:
    """Every shared-memory object one process attached, closed together."""

    def __init__(self, manifest: RunManifest):
        self.manifest = manifest
        self._rings: dict[str, object] = {}
        self._metrics = None
        self._control = None
        self._pump = None

    def ring(self, entry, role: str):
        """The ring, attached once per process; this process registers as its producer or consumer
        (a composite process may be both). Registration resyncs the cached cursors a killed
        predecessor left, so a restarted consumer resumes at the last released cursor."""
        from hftshm.runtime.resident import map_shared
        from hftshm.transport.ring import Ring

        segment = entry.segment
        if self.manifest.transport == "zmq" and role == "consumer":
            segment = entry.consumer_segment
        ring = self._rings.get(segment)
        if ring is None:
            ring = self._rings[segment] = Ring.attach(segment, layouts.load(entry.layout), ready_timeout_s=5.0)
            # every page mapped now: a ring's first lap would take a minor fault per page written
            # (per 16 read) in this process, between a tick and its order (resident.map_shared)
            map_shared(ring.records)
        if role == "producer":
            ring.register_producer()
        else:
            ring.register_consumer()
        return ring

    def observe_all(self) -> dict:
        """Every ring of the run, attached to watch its cursors (no role taken):
        {ring name: (ring, producer worker name, consumer worker name)}."""
        from hftshm.transport.ring import Ring

        if self.manifest.transport != "shm":
            raise RuntimeError("watching every ring needs the shared-memory transport")
        found = {}
        for entry in self.manifest.rings:
            ring = self._rings.get(entry.segment)
            if ring is None:
                ring = self._rings[entry.segment] = Ring.attach(entry.segment, layouts.load(entry.layout),
                                                                ready_timeout_s=5.0)
            found[entry.name] = (ring, entry.producer, entry.consumer)
        return found

    def histograms(self, worker: str, names) -> dict:
        if not names or not self.manifest.metrics_segment:
            return {}
        from hftshm.metrics.segment import MetricsSegment

        if self._metrics is None:
            self._metrics = MetricsSegment.attach(self.manifest.metrics_segment)
        return {name: self._metrics.histogram(f"{worker}.{name}") for name in names}

    def control(self):
        if not self.manifest.control_segment:
            return None
        from hftshm.risk.control import ControlBlock

        if self._control is None:
            self._control = ControlBlock.attach(self.manifest.control_segment)
        return self._control

    def wait_strategy(self, process, wake_rings=()):
        """The process's wait strategy, parking (spin-park) on the doorbells of every ring its
        workers consume: a producer publishing to any of them wakes the whole composite."""
        from hftshm.transport.wait import WaitStrategy

        if self.manifest.transport == "zmq":
            # a socket arrival rings no doorbell: the comparison pipeline polls its sockets
            return WaitStrategy.from_config("spin-yield")
        inputs = [self._rings[r.segment] for r in self.manifest.rings if r.consumer in process.workers]
        inputs += list(wake_rings)
        # outputs too: a worker blocked on a full output parks on that ring's producer doorbell
        # (the consumer's release rings it) instead of spinning on an input it cannot act on
        outputs = [self._rings[r.segment] for r in self.manifest.rings if r.producer in process.workers]
        return WaitStrategy.from_config(process.wait).bind(inputs=inputs, outputs=outputs)

    def pumps(self, process) -> list:
        if self.manifest.transport != "zmq":
            return []
        from hftshm.runtime.zmq_bridge import ZmqPump

        outputs = {r.name: self._rings[r.segment] for r in self.manifest.rings if r.producer in process.workers}
        inputs = {r.name: self._rings[r.consumer_segment] for r in self.manifest.rings if r.consumer in process.workers}
        self._pump = ZmqPump(self.manifest.run_dir, outputs, inputs)
        return [self._pump.pump]

    def close(self) -> None:
        if self._pump is not None:
            self._pump.close()
        for ring in self._rings.values():
            try:
                ring.close()
            except Exception:
                pass
        for obj in (self._metrics, self._control):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
