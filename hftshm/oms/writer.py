"""Write-behind of the OMS audit trail: ring -> journal -> database, never the other way round.

``EventWriter`` is the engine: ``accept(events)`` appends records to the on-disk journal
(``hftshm.oms.journal``) and returns at memory speed; a database thread reads the journal back in
batches of ``writer_batch_size``, commits each batch in one transaction (binary COPY on
PostgreSQL) and only then forgets it. When the database is down or slow the thread retries with
exponential backoff (reconnecting each time) and the journal absorbs the backlog, up to
``backlog_max_events``; past that ``accept`` takes nothing, the ring fills, and the OMS applies its
``on_backlog_full`` policy. Nothing is dropped anywhere.

``OrderEventWriter`` is the pipeline Worker around it: it drains the ``order_event`` ring into the
journal and releases the ring immediately. Its counters expose the lag (events and milliseconds
behind), errors and reconnects. Run it in its own process (placement) so database I/O never shares
a duty cycle with the trading workers; the OMS itself never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from hftshm.config import Section
from hftshm.oms.config import OmsConfig, journal_path
from hftshm.oms.journal import Journal
from hftshm.oms.store import Store, safe_url
from hftshm.runtime.worker import Worker, WorkerContext
from hftshm.transport.layout import load

ORDER_EVENT = load("order_event")
log = logging.getLogger("hftshm.oms.writer")


class EventWriter:
    """Journal + database thread. ``accept`` from one thread; everything else is thread-safe."""

    def __init__(self, store_factory: Callable[[], Store], journal_stem: str | Path, *, batch_size: int = 5000,
                 linger_s: float = 0.0, backlog_max_events: int = 1_000_000, reconnect_backoff_s: float = 0.1,
                 reconnect_backoff_max_s: float = 5.0, fsync: bool = False, mirror=None, name: str = "oms-writer"):
        self._store_factory = store_factory
        self.journal = Journal(journal_stem, ORDER_EVENT.itemsize, fsync=fsync)
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.backlog_max_events = backlog_max_events
        self.reconnect_backoff_s = reconnect_backoff_s
        self.reconnect_backoff_max_s = reconnect_backoff_max_s
        self.mirror = mirror  # OpenOrderCache or None
        self.store: Store | None = None
        self.events_accepted = 0
        self.events_written = 0
        self.db_busy_s = 0.0  # time spent in successful database writes: events_written / db_busy_s is the capacity
        self.batches = 0
        self.db_errors = 0
        self.reconnects = 0
        self.mirror_errors = 0
        self.backlog_refusals = 0  # accept() calls that could not take everything (backlog at its bound)
        self.db_up = False
        self.last_error = ""
        self._oldest_unwritten_ns = 0  # wall clock of the oldest event not yet committed (0: none)
        self._flushing = False  # flush() asked: no lingering
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- producer side ---------------------------------------------------------------------------

    def accept(self, events: np.ndarray) -> int:
        """Journal as many of ``events`` as the backlog bound allows; returns how many were taken."""
        room = self.backlog_max_events - self.journal.pending_records
        n = min(len(events), max(room, 0))
        if n < len(events):
            self.backlog_refusals += 1
        if n:
            self.journal.append(np.ascontiguousarray(events[:n]).data.cast("B"))
            self.events_accepted += n
            self._wake.set()
        return n

    # -- observation -----------------------------------------------------------------------------

    @property
    def backlog_events(self) -> int:
        return self.journal.pending_records

    @property
    def lag_s(self) -> float:
        """Age of the oldest event not yet in the database (0 when caught up)."""
        oldest = self._oldest_unwritten_ns
        if oldest == 0 or self.journal.pending_records == 0:
            return 0.0
        return max(time.time_ns() - oldest, 0) / 1e9

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything accepted is committed; False on timeout."""
        deadline = time.monotonic() + timeout_s
        self._flushing = True
        try:
            while self.journal.pending_records:
                if time.monotonic() >= deadline or not self._thread.is_alive():
                    return False
                self._wake.set()
                time.sleep(0.002)
            return True
        finally:
            self._flushing = False

    def close(self, flush_timeout_s: float = 5.0) -> bool:
        """Flush (up to the timeout), stop the thread, close the journal. True if nothing was left.

        Whatever is left stays in the journal file and is written by the next writer to start.
        """
        flushed = self.flush(flush_timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=max(self.reconnect_backoff_max_s, 1.0) + 10.0)
        self.journal.close()
        if self.store is not None:
            self.store.close()
        if self.mirror is not None:
            self.mirror.close()
        return flushed

    # -- the database thread ---------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.reconnect_backoff_s
        batch_bytes = self.batch_size * ORDER_EVENT.itemsize
        partial_since = 0.0
        while not self._stop.is_set():
            data = self.journal.peek(batch_bytes)
            if not data:
                self._oldest_unwritten_ns = 0
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            if len(data) < batch_bytes and self.linger_s > 0 and not self._flushing:
                # a partial batch waits a little for more: fewer, larger transactions under light load
                now = time.monotonic()
                partial_since = partial_since or now
                if now - partial_since < self.linger_s:
                    self._stop.wait(min(self.linger_s, 0.001))
                    continue
            partial_since = 0.0
            events = np.frombuffer(data, dtype=ORDER_EVENT.dtype)
            self._oldest_unwritten_ns = int(events[0]["local_ts_ns"])
            try:
                if self.store is None:
                    self.store = self._store_factory()
                started = time.perf_counter()
                self.store.write_events(events)
                self.db_busy_s += time.perf_counter() - started
            except Exception as exc:  # noqa: BLE001 - any failure: keep the batch, back off, reconnect
                self._failed(exc)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2.0, self.reconnect_backoff_max_s)
                continue
            if not self.db_up:
                if self.db_errors:
                    self.reconnects += 1
                    log.warning("order-event database is back: writing the backlog (%d events)",
                                self.journal.pending_records)
                self.db_up = True
            backoff = self.reconnect_backoff_s
            self.events_written += len(events)
            self.batches += 1
            self.journal.advance(len(data))  # last: "nothing pending" implies the counters are current
            if self.mirror is not None:
                try:
                    self.mirror.apply(events)
                except Exception as exc:  # noqa: BLE001 - the cache is optional; the database has it
                    self.mirror_errors += 1
                    if self.mirror_errors in (1, 10, 100) or self.mirror_errors % 1000 == 0:
                        log.warning("redis open-order cache update failed (%d so far): %s", self.mirror_errors, exc)

    def _failed(self, exc: BaseException) -> None:
        self.db_errors += 1
        was_up = self.db_up
        self.db_up = False
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        self.last_error = lines[0][:300] if lines else type(exc).__name__
        if was_up or self.db_errors in (1, 10, 100) or self.db_errors % 1000 == 0:
            log.warning("order-event database write failed (%d errors; %d events waiting, kept in the journal): %s",
                        self.db_errors, self.journal.pending_records, self.last_error)
        if self.store is not None:
            try:
                self.store.reset_connections()
            except Exception:  # noqa: BLE001
                pass


def writer_from_config(config: OmsConfig, run_dir: str | Path, redis_config=None) -> EventWriter:
    """An ``EventWriter`` for ``[oms]`` (and ``[redis]`` for the optional open-order cache)."""
    url = config.database_url_for(run_dir)

    def connect() -> Store:
        return Store(url, schema=config.database_schema, connect_timeout_s=config.connect_timeout_s)

    mirror = None
    if redis_config is not None and getattr(redis_config, "enabled", False) and config.redis_cache:
        from hftshm.oms.redis_cache import OpenOrderCache

        mirror = OpenOrderCache(redis_config.url, redis_config.key("oms", "open_orders"), redis_config.socket_timeout_s)
    log.info("order events are written behind to %s", safe_url(url))
    return EventWriter(connect, journal_path(run_dir), batch_size=config.writer_batch_size,
                       linger_s=config.writer_linger_ms / 1e3,
                       backlog_max_events=config.backlog_max_events,
                       reconnect_backoff_s=config.reconnect_backoff_ms / 1e3,
                       reconnect_backoff_max_s=config.reconnect_backoff_max_ms / 1e3,
                       fsync=config.journal_fsync, mirror=mirror)


def oms_config_of(ctx: WorkerContext, overrides: dict | None = None) -> OmsConfig:
    """``[oms]`` from the platform config (none in unit tests), with ``overrides`` (worker params) on top."""
    if ctx.config is not None and not overrides:
        config = getattr(ctx.config, "oms", None)
        if isinstance(config, OmsConfig):
            return config
    raw = dict(ctx.config.raw.get("oms", {})) if ctx.config is not None else {}
    raw.update(overrides or {})
    return OmsConfig.from_section(Section("oms", raw))


def redis_config_of(ctx: WorkerContext, url: str = "", namespace: str = "default"):
    """``[redis]`` from the platform config, or a ``RedisConfig`` for ``url`` (worker params, tests)."""
    if url:
        from hftshm.redis_config import RedisConfig

        return RedisConfig(url=url, namespace=namespace)
    if ctx.config is not None:
        return getattr(ctx.config, "redis", None)
    return None


# the counters copied from the writer's own totals (events_written, batches, db_errors, reconnects,
# mirror_errors); the others are gauges or counted here
_WRITER_TOTALS = (1, 2, 6, 7, 9)


class OrderEventWriter(Worker):
    """Pipeline stage: the ``order_event`` ring from the OMS into the database, written behind."""

    COUNTER_NAMES = ("events_in", "events_written", "batches", "backlog_events_gauge", "lag_ms_gauge", "db_up_gauge",
                     "db_errors", "reconnects", "backlog_full", "mirror_errors", "journal_segments_gauge")

    def __init__(self, batch: int = 4096, flush_timeout_s: float = 10.0, oms: dict | None = None,
                 redis_url: str = "", redis_namespace: str = "default"):
        self.batch = batch
        self.flush_timeout_s = flush_timeout_s
        self._overrides = oms or {}
        self._redis = (redis_url, redis_namespace)

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        rings = [r for r in ctx.inputs.values() if r.layout.name == "order_event"]
        if len(rings) != 1:
            raise RuntimeError(f"worker {ctx.name!r} needs exactly one order_event input ring, found "
                               f"{[r.name for r in ctx.inputs.values()]}")
        self.ring = rings[0]
        self.config = oms_config_of(ctx, self._overrides)
        self.writer = writer_from_config(self.config, ctx.run_dir, redis_config_of(ctx, *self._redis))
        self.counters = ctx.counters
        # the status row outlives a restart, the new writer's totals start at zero: count on from the
        # predecessor's (as an offset, not by seeding the writer: its thread is already counting)
        self._totals_before = {i: int(self.counters[i]) for i in _WRITER_TOTALS}
        self._full = False

    def do_work(self) -> int:
        view = self.ring.poll(self.batch)
        taken = 0
        if len(view):
            taken = self.writer.accept(view)
            self.ring.release(taken)
            if taken < len(view) and not self._full:
                self._full = True
                self.counters[8] += 1
                self.ctx.log.error("order-event backlog is at its bound (%d events): the database is not keeping up; "
                                   "the OMS ring fills next", self.writer.backlog_max_events)
            elif taken == len(view):
                self._full = False
        self._publish_counters(taken)
        return taken

    def on_drain(self) -> int:
        # keep moving the ring into the journal; the database catch-up happens in on_close
        return self.do_work()

    def on_close(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is None:
            return
        if not writer.close(self.flush_timeout_s):
            self.ctx.log.warning("order-event writer closed with %d events not yet in the database; they stay in "
                                 "the journal and are written at the next start", writer.backlog_events)
        self._publish_counters(0)

    def _publish_counters(self, taken: int) -> None:
        c = self.counters
        w = self.writer
        c[0] += taken
        before = self._totals_before
        c[1] = before[1] + w.events_written
        c[2] = before[2] + w.batches
        c[3] = w.backlog_events
        c[4] = int(w.lag_s * 1000)
        c[5] = 1 if w.db_up else 0
        c[6] = before[6] + w.db_errors
        c[7] = before[7] + w.reconnects
        c[9] = before[9] + w.mirror_errors
        c[10] = w.journal.segment_count
