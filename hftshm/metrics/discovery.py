"""Views for a web server that outlives runs: find the platform, remember the last run.

* ``ManifestView`` follows ``<run_dir>/current.json``: it attaches to a platform when one starts,
  re-attaches when another run replaces it, and detaches when it stops (``hftshm web`` standalone).
* ``LastRunRecorder`` wraps a view and writes the latest snapshot of a running platform to
  ``<run_dir>/metrics-last.json`` every few seconds, so metrics survive the run.
* ``fallback_for(config, run_dir)`` is what to export when nothing runs: the last run's values if
  recorded, else every declared worker, ring and histogram with zeros, so a scrape can be set up
  before the platform starts and finds every series.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from hftshm.metrics.histogram_nb import SLOTS
from hftshm.metrics.snapshot import PlatformSnapshot, PlatformView, RingSnapshot, WorkerSnapshot

log = logging.getLogger("hftshm.metrics")

LAST_RUN_FILE = "metrics-last.json"


class ManifestView:
    """A ``PlatformView`` of whatever platform runs under ``run_dir`` (none: ``running=False``)."""

    def __init__(self, run_dir: str | Path, *, symbol_names: dict[int, str] | None = None, stale_after_s: float = 5.0,
                 symbol_units: dict[int, dict] | None = None):
        self.run_dir = Path(run_dir)
        self.symbol_names = symbol_names
        self.symbol_units = symbol_units
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._view = None
        self._manifest = None

    @property
    def manifest(self):
        return self._manifest

    @property
    def control(self):
        view = self._view
        return view.control if view is not None else None

    def _current(self):
        from hftshm.runtime.manifest import NoRunningPlatform, read_running

        try:
            return read_running(self.run_dir)
        except (NoRunningPlatform, ValueError, KeyError, TypeError, OSError):
            return None

    def snapshot(self) -> PlatformSnapshot:
        from hftshm.metrics.live import SharedMemoryView

        with self._lock:
            manifest = self._current()
            if manifest is None or (self._manifest is not None and manifest.prefix != self._manifest.prefix):
                self._detach()
            if manifest is not None and self._view is None:
                try:
                    self._view = SharedMemoryView.from_manifest(manifest, symbol_names=self.symbol_names,
                                                                stale_after_s=self.stale_after_s,
                                                                symbol_units=self.symbol_units)
                    self._manifest = manifest
                    log.info("attached to the platform %s", manifest.prefix)
                except (OSError, RuntimeError, ValueError) as exc:
                    log.warning("platform %s is starting or stopping (%s); not attached yet", manifest.prefix, exc)
                    self._detach()
            if self._view is None:
                return PlatformSnapshot(running=False, taken_unix_ns=time.time_ns())
            snap = self._view.snapshot()
            snap.running = True
            return snap

    def _detach(self) -> None:
        if self._view is not None:
            log.info("detached from the platform %s", self._manifest.prefix if self._manifest else "?")
            self._view.close()
        self._view = None
        self._manifest = None

    def close(self) -> None:
        with self._lock:
            self._detach()


class LastRunRecorder:
    """A ``PlatformView`` that keeps the last running snapshot: it writes it to ``path`` (atomically,
    at most every ``interval_s``, and once more when the platform stops) and serves it, marked not
    running, after the platform stopped. Call ``record(final_snapshot)`` before closing the wrapped
    view to keep the very last values rather than those of the last poll."""

    def __init__(self, view: PlatformView, path: str | Path, interval_s: float = 5.0):
        self.view = view
        self.path = Path(path)
        self.interval_s = interval_s
        self._last_write = 0.0
        self._last: PlatformSnapshot | None = None
        self._dirty = False
        self._lock = threading.Lock()

    def __getattr__(self, name):  # control, manifest, ... of the wrapped view
        return getattr(self.view, name)

    def snapshot(self) -> PlatformSnapshot:
        snap = self.view.snapshot()
        if snap.running:
            with self._lock:
                self._last, self._dirty = snap, True
            if time.monotonic() - self._last_write >= self.interval_s:
                self._write(snap)
            return snap
        last = self._last
        if last is None:
            return snap
        if self._dirty:
            self._write(last)
        stopped = copy.copy(last)
        stopped.running = False
        return stopped

    def record(self, snap: PlatformSnapshot) -> None:
        """Keep ``snap`` as the run's last values and write it now."""
        with self._lock:
            self._last = snap
        self._write(snap)

    def _write(self, snap: PlatformSnapshot) -> None:
        with self._lock:
            self._last_write = time.monotonic()
            self._dirty = False
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(snap.to_json())
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("cannot record the last run's metrics to %s: %s", self.path, exc)


def load_last_run(path: str | Path) -> PlatformSnapshot | None:
    try:
        snap = PlatformSnapshot.from_json(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    snap.running = False
    return snap


def declared_snapshot(config) -> PlatformSnapshot:
    """Zeros for every worker, counter, ring and histogram the config declares (a ``PlatformConfig``)."""
    import numpy as np

    from hftshm.runtime.topology import load_factory

    workers, histograms = [], {}
    for spec in config.topology.workers:
        counter_names: tuple[str, ...] = ()
        hist_names: tuple[str, ...] = ()
        try:
            cls = load_factory(spec.factory)
            counter_names = tuple(getattr(cls, "COUNTER_NAMES", ()))
            hist_names = tuple(getattr(cls, "HISTOGRAMS", ()))
        except Exception as exc:  # a worker class that cannot be imported still gets its row
            log.warning("worker %s: cannot read its counter names (%s)", spec.name, exc)
        workers.append(WorkerSnapshot(spec.name, spec.process, counters={n: 0 for n in counter_names}))
        for hist in hist_names:
            histograms[f"{spec.name}.{hist}"] = np.zeros(SLOTS, dtype=np.int64)
    rings = [RingSnapshot(r.name, r.layout, r.producer, r.consumer, r.capacity, r.backpressure)
             for r in config.topology.rings]
    return PlatformSnapshot(running=False, taken_unix_ns=time.time_ns(), workers=workers, rings=rings,
                            histograms=histograms)


def fallback_for(config, run_dir: str | Path) -> Callable[[], PlatformSnapshot | None]:
    """What to export when no platform runs: the last run's values, else the declared zeros."""
    path = Path(run_dir) / LAST_RUN_FILE
    cache: dict[str, object] = {}

    def fallback() -> PlatformSnapshot | None:
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime is not None and cache.get("mtime") != mtime:
            cache["last"], cache["mtime"] = load_last_run(path), mtime
        if cache.get("last") is not None:
            return cache["last"]  # type: ignore[return-value]
        if "declared" not in cache:
            try:
                cache["declared"] = declared_snapshot(config) if config is not None else None
            except Exception as exc:
                log.warning("cannot build the declared metric set: %s", exc)
                cache["declared"] = None
        return cache["declared"]  # type: ignore[return-value]

    return fallback
