"""The worker contract: a duty cycle, as Agrona's ``Agent``.

A worker never sleeps or blocks inside ``do_work``: it does what work is available (bounded, e.g.
one batch per input ring) and returns how much it did. The runner decides how to wait when that is
zero (``hftshm.transport.wait``), writes the heartbeat, and runs several workers round-robin in one
process when placement says so (``hftshm.runtime.composite``).

Lifecycle, in the worker's own process::

    worker = WorkerClass(**params)        # cheap; no shared memory yet
    worker.on_start(ctx)                  # attach views, compile kernels (warm-up), restore state
    while running: n = worker.do_work()   # hot path
    worker.on_drain() until it returns 0  # SIGTERM: producers stop, consumers drain what is queued
    worker.on_close()                     # flush, detach
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass
class WorkerContext:
    """What a worker is given in ``on_start``: its rings, its config, its slots in shared memory."""

    name: str
    params: dict[str, Any]
    # rings by ring name (``hftshm.transport.ring.Ring``), attached with the layout the topology declares
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    # the whole validated platform config (``hftshm.platform.PlatformConfig``); None in unit tests
    config: Any
    # int64 view of this worker's ``worker_status.counters``; slot i is COUNTER_NAMES[i]
    counters: np.ndarray
    # latency histograms by name (int64 bucket arrays, ``hftshm.metrics.histogram``), one per HISTOGRAMS entry
    histograms: dict[str, np.ndarray]
    run_dir: Path
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("hftshm.worker"))
    # shared-memory control block (kill switch, trading state), ``hftshm.risk.control``; None if absent
    control: Any = None
    # () -> {ring name: (ring, producer, consumer worker names)} for every ring of the run, attached to watch
    # only (no producer or consumer role): the deterministic feed waits on them (hftshm.runtime.lockstep)
    observe_rings: Any = None

    def input(self, name: str):
        try:
            return self.inputs[name]
        except KeyError:
            raise KeyError(f"worker {self.name!r} has no input ring {name!r}; it has {sorted(self.inputs)}") from None

    def output(self, name: str):
        try:
            return self.outputs[name]
        except KeyError:
            raise KeyError(f"worker {self.name!r} has no output ring {name!r}; it has {sorted(self.outputs)}") from None


class Worker:
    """Base class of every pipeline stage. Subclasses override ``do_work`` and usually ``on_start``."""

    #: names of the int64 counters this worker keeps in ``ctx.counters`` (at most 32); exported as metrics
    COUNTER_NAMES: ClassVar[tuple[str, ...]] = ()
    #: names of the latency histograms this worker records (``ctx.histograms[name]``)
    HISTOGRAMS: ClassVar[tuple[str, ...]] = ()

    def on_start(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def do_work(self) -> int:
        """Do the work that is available now, without blocking; return how much (0 = idle)."""
        raise NotImplementedError

    def on_drain(self) -> int:
        """Asked repeatedly after a stop request until it returns 0. Default: keep consuming."""
        return self.do_work()

    def is_done(self) -> bool:
        """A finite producer (the feed at the end of its data) returns True when it has nothing more."""
        return False

    def on_close(self) -> None:
        pass
