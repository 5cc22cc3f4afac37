"""Deterministic import: market data from NATS replayed into the local rings in lockstep.

A deterministic run (``[platform] deterministic``, ``hftshm.runtime.lockstep``) needs its market data
source to publish one exchange message at a time and wait until every stage has settled before the
next; per-ring import workers publish whatever arrives as it arrives, so the topology gives a
deterministic platform one ``LockstepImportWorker`` instead, producing every imported ring. It takes
the feed's place:

* The NATS thread reads each subject (one pull consumer per subject, whatever the number of rings it
  fills) from the exporting run's START marker on, checks each batch's layout fingerprint and
  sequence (duplicates dropped and counted, a gap counted and logged), and queues the records in
  memory (at most ``MAX_BUFFERED`` ahead of the pipeline; beyond, it stops fetching and JetStream
  keeps the rest).
* The duty cycle, once the pipeline has settled (``lockstep.PipelineSettle``), takes the next
  exchange message from the ``market_event`` subject (its records up to LAST_IN_MESSAGE) and the
  book snapshots that message made, and publishes the books first and the events after them, as
  the feed does. A snapshot is made at the last event of a book-changing message (a depth, snapshot
  or clear record) and carries that event's symbol, update id and exchange time
  (``book.l2_apply_nb``); snapshots arrive in message order, so the head of the book queue belongs
  to this message exactly when its last record changes a book and those three match.
  Until the book subject has something beyond this message (or has ended) the message waits.
* When both subjects have ended (the exporter's END batches) and everything has settled, the
  ``market_event`` rings get the end-of-data marker, and the worker finishes once it has gone round.

So the trading host's stages see the same records in the same order and lockstep as with the feed
in the same platform, and its fills equal a single-host deterministic run's. A restarted worker
resumes after what its rings already hold (their producer cursors count records since the START
marker); as with the feed, a restart keeps every invariant but not determinism.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque

import numpy as np
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hftshm.bridge import batch_header as bh
from hftshm.bridge import config as bridge_config
from hftshm.bridge.nats_thread import BridgeError, NatsThread, connect
from hftshm.codes import EventFlag, EventKind
from hftshm.runtime import lockstep
from hftshm.runtime.worker import Worker, WorkerContext

FETCH_BATCH = 16
FETCH_TIMEOUT_S = 0.25
STREAM_POLL_S = 0.2
MAX_BUFFERED = 1 << 20  # records queued ahead of the pipeline per subject (64 MiB of market events)
LAYOUTS = ("market_event", "book_snapshot")
_LAST = int(EventFlag.LAST_IN_MESSAGE)
_BOOK_KINDS = (int(EventKind.DEPTH), int(EventKind.SNAPSHOT), int(EventKind.CLEAR))  # book.l2_apply_nb


class _Subject:
    """One subject's records as they arrive (NATS thread appends, duty cycle takes), in sequence."""

    def __init__(self, subject: str, layout, start_skip: int):
        self.subject = subject
        self.layout = layout
        self.chunks: deque = deque()   # record arrays, oldest first
        self.head = 0                  # records of chunks[0] already taken
        self.appended = 0              # records queued since the START marker (NATS thread)
        self.taken = 0                 # records taken by the duty cycle (worker thread)
        self.skip = start_skip         # a restarted worker: records its rings already hold
        self.expected = -1             # next source sequence (-1: before the START marker)
        self.epoch = 0
        self.stream = self.durable = ""
        self.ended = False
        self.duplicates = 0
        self.gaps = 0
        self.gap_records = 0

    @property
    def buffered(self) -> int:
        return self.appended - self.taken

    def put(self, records: np.ndarray) -> None:
        self.appended += len(records)
        if self.skip:
            cut = min(self.skip, len(records))
            self.skip -= cut
            self.taken += cut  # counted as taken: they were published before the restart
            records = records[cut:]
        if len(records):
            self.chunks.append(records)

    def peek(self, n: int) -> np.ndarray:
        """Up to ``n`` next records, without taking them (a copy only when they span chunks)."""
        if not self.chunks:
            return self.layout.zeros(0)
        first = self.chunks[0][self.head:self.head + n]
        if len(first) == n or len(self.chunks) == 1:
            return first
        parts, have = [first], len(first)
        for chunk in list(self.chunks)[1:]:
            parts.append(chunk[:n - have])
            have += len(parts[-1])
            if have == n:
                break
        return np.concatenate(parts)

    def next_message(self) -> np.ndarray | None:
        """The next whole exchange message (market events up to LAST_IN_MESSAGE), or None yet."""
        if not self.chunks:
            return None
        chunk = self.chunks[0][self.head:]
        ends = np.flatnonzero(chunk["flags"] & _LAST)
        if len(ends):
            return chunk[:int(ends[0]) + 1]
        seen = len(chunk)
        for later in list(self.chunks)[1:]:
            ends = np.flatnonzero(later["flags"] & _LAST)
            if len(ends):
                return self.peek(seen + int(ends[0]) + 1)
            seen += len(later)
        return None

    def take(self, n: int) -> None:
        self.taken += n
        while n:
            chunk = self.chunks[0]
            step = min(n, len(chunk) - self.head)
            self.head += step
            n -= step
            if self.head == len(chunk):
                self.chunks.popleft()
                self.head = 0

    @property
    def drained(self) -> bool:
        return self.ended and not self.chunks


class LockstepImportWorker(Worker):
    COUNTER_NAMES = ("records_imported", "messages_published", "snapshots_published", "duplicates_dropped",
                     "gaps", "gap_records", "unmatched_snapshots", "settle_waits", "fetch_errors")
    _C = {name: i for i, name in enumerate(COUNTER_NAMES)}

    def __init__(self, rings: dict):
        self.ring_subjects = dict(rings)  # {ring name: subject}
        self._error: BaseException | None = None
        self._fetch_errors = 0

    def on_start(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.config = bridge_config.of(ctx.config)
        outputs = {name: ctx.output(name) for name in self.ring_subjects}
        by_layout: dict[str, set] = {}
        for name, ring in outputs.items():
            if ring.layout.name not in LAYOUTS:
                raise BridgeError(f"ring {name!r} holds {ring.layout.name} records; a deterministic run imports "
                                  f"market data only ({' and '.join(LAYOUTS)} rings)")
            by_layout.setdefault(ring.layout.name, set()).add(self.ring_subjects[name])
        for layout, subjects in by_layout.items():
            if len(subjects) != 1:
                raise BridgeError(f"a deterministic run imports one subject of {layout} records, the rings "
                                  f"name {sorted(subjects)}")
        if "market_event" not in by_layout:
            raise BridgeError("a deterministic run imports market events (a market_event ring from nats:...)")
        # books before events, as the feed commits them (whoever sees a message's events sees its book)
        self.book_rings = [r for r in outputs.values() if r.layout.name == "book_snapshot"]
        self.event_rings = [r for r in outputs.values() if r.layout.name == "market_event"]
        self.events = _Subject(next(iter(by_layout["market_event"])), self.event_rings[0].layout,
                               min(r.producer_position for r in self.event_rings))
        self.books = None
        if self.book_rings:
            self.books = _Subject(next(iter(by_layout["book_snapshot"])), self.book_rings[0].layout,
                                  min(r.producer_position for r in self.book_rings))
        self.subjects = [s for s in (self.events, self.books) if s is not None]
        # a restarted worker: what each ring already holds (records since the START marker)
        self._held = {id(r): r.producer_position for r in self.book_rings + self.event_rings}
        self._staged: list = []  # [(ring, records, first source index, written)] of the message being published
        self._last_message_ns = 0
        self._end_sent = False
        self._settle = lockstep.PipelineSettle(ctx.observe_rings())
        self.thread = NatsThread(ctx.name)
        try:
            self.thread.submit(self._open()).result(self.config.connect_timeout_s + 5)
        except BaseException:
            self.thread.stop()
            raise
        self._consumers = [self.thread.submit(self._consume(s)) for s in self.subjects]
        ctx.log.info("deterministic import: %s into %s, one message at a time over %d rings (%s)",
                     " and ".join(s.subject for s in self.subjects), ", ".join(outputs),
                     len(self._settle.rings), ", ".join(self._settle.names))

    async def _open(self) -> None:
        self.nc = await connect(self.config, f"hftshm-lockstep-import-{self.ctx.name}")
        self.js = self.nc.jetstream()

    # ---------------------------------------------------------------- duty cycle (worker thread)

    def do_work(self) -> int:
        if self._error is not None:
            raise BridgeError(f"deterministic import failed: {self._error}") from self._error
        self._counters()
        if self._staged:
            return self._publish()
        if not self._settle.settled():
            self.ctx.counters[self._C["settle_waits"]] += 1
            os.sched_yield()  # the stages downstream need this core more than we do
            return 0
        message = self.events.next_message()
        if message is None:
            if self.events.drained and (self.books is None or self.books.drained):
                self._unmatched()
                return self._end_of_data()
            return 0
        books = self._books_of(message)
        if books is None:
            return 0  # the book subject has not yet shown whether this message changed a book
        source = self.events.taken
        self._staged = [(ring, books, self.books.taken, 0) for ring in self.book_rings] if len(books) else []
        self._staged += [(ring, message, source, 0) for ring in self.event_rings]
        if len(books):
            self.books.take(len(books))
        self.events.take(len(message))
        self._last_message_ns = int(message["exch_ts_ns"][-1])
        self.ctx.counters[self._C["messages_published"]] += 1
        self.ctx.counters[self._C["snapshots_published"]] += len(books)
        return self._publish()

    def _books_of(self, message: np.ndarray) -> np.ndarray | None:
        """The snapshot ``message`` made (empty if none), or None while the book subject cannot tell
        yet. Exchange times are no order key here (a REST snapshot message is older than the diffs
        buffered before it), only the match is."""
        if self.books is None:
            return message[:0]  # no book rings: nothing to publish before the events
        head = self.books.peek(1)
        if not len(head):
            return head if self.books.drained else None
        snap, last = head[0], message[-1]
        # only a depth, snapshot or clear record changes a book (a bookTicker shares its depth
        # update's id and time, a trade may share both by chance)
        if (int(last["kind"]) in _BOOK_KINDS and snap["symbol_id"] == last["symbol_id"]
                and snap["update_id"] == last["update_id"] and snap["exch_ts_ns"] == last["exch_ts_ns"]):
            return head
        return head[:0]  # made by a later message

    def _publish(self) -> int:
        """Write the staged message into its rings, in order; a full ring holds the rest back."""
        moved = 0
        for k, (ring, records, first, written) in enumerate(self._staged):
            # a restarted worker does not write again what a ring already holds
            already = max(0, min(len(records), self._held[id(ring)] - first))
            written = max(written, already)
            while written < len(records):
                view = ring.claim(len(records) - written)
                n = len(view)
                if n == 0:
                    self._staged[k] = (ring, records, first, written)
                    self._staged = self._staged[k:]
                    return moved
                view[:] = records[written:written + n]
                view["publish_ts_ns"] = time.perf_counter_ns()
                ring.commit(n)
                written += n
                moved += n
        self._staged = []
        return max(moved, 1)

    def _unmatched(self) -> None:
        """Snapshots left once every message is out matched none: reported, never published late."""
        left = 0 if self.books is None else self.books.appended - self.books.taken
        if left and not self.ctx.counters[self._C["unmatched_snapshots"]]:
            self.ctx.counters[self._C["unmatched_snapshots"]] = left
            self.ctx.log.error("%d book snapshot(s) of %s match no market message of %s: the two subjects are "
                               "not from one feed run; they are not published", left, self.books.subject,
                               self.events.subject)

    def _end_of_data(self) -> int:
        """Both subjects ended and the last message settled: tell the market_event consumers (once)."""
        if self._end_sent:
            return 0
        if any(ring.occupancy() >= ring.capacity for ring in self.event_rings):
            return 0
        for ring in self.event_rings:
            view = ring.claim(1)
            lockstep.end_of_data_record(view, self._last_message_ns)
            view["publish_ts_ns"] = time.perf_counter_ns()
            ring.commit(1)
        self._end_sent = True
        self.ctx.log.info("deterministic import: end of data after %d messages", self.ctx.counters[1])
        return 1

    def is_done(self) -> bool:
        return self._end_sent and self._settle.settled()

    def on_drain(self) -> int:
        return 0  # a source stops producing when asked to drain

    def _counters(self) -> None:
        c = self.ctx.counters
        c[self._C["records_imported"]] = sum(s.appended for s in self.subjects)
        c[self._C["duplicates_dropped"]] = sum(s.duplicates for s in self.subjects)
        c[self._C["gaps"]] = sum(s.gaps for s in self.subjects)
        c[self._C["gap_records"]] = sum(s.gap_records for s in self.subjects)
        c[self._C["fetch_errors"]] = self._fetch_errors

    def on_close(self) -> None:
        self.thread.close(self._close())
        self._counters()

    async def _close(self) -> None:
        try:
            await self.nc.close()
        except Exception:
            pass

    # ---------------------------------------------------------------- NATS thread

    async def _consume(self, source: _Subject) -> None:
        try:
            psub = await self._subscribe(source)
            while not source.ended:
                if source.buffered >= MAX_BUFFERED:
                    await asyncio.sleep(0.001)  # the pipeline is behind: JetStream keeps the rest
                    continue
                try:
                    messages = await psub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_S)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # timeout when idle; connection errors while NATS restarts
                    if type(exc).__name__ != "TimeoutError":
                        self._fetch_errors += 1
                        await asyncio.sleep(0.05)
                    continue
                for message in messages:
                    self._deliver(source, message)
                if messages:
                    try:
                        await messages[-1].ack()
                    except Exception:
                        self._fetch_errors += 1
            await psub.unsubscribe()
            await self.js.delete_consumer(source.stream, source.durable)  # read to its END: not needed again
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._error = exc

    async def _subscribe(self, source: _Subject):
        """An ordered read of ``source`` from the exporting run's START marker on (it may not have
        started yet: wait for its stream and marker)."""
        import nats.js.errors

        waited = False
        while True:
            try:
                stream = await self.js.find_stream_name_by_subject(source.subject)
                start = await self.js.get_last_msg(stream, source.subject + bh.START_SUFFIX)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not waited:
                    waited = True
                    self.ctx.log.warning("%s has no exporting run yet (%s); waiting for the market-data host",
                                         source.subject, type(exc).__name__)
                await asyncio.sleep(STREAM_POLL_S)
        header, _ = bh.decode(start.data)
        source.epoch, source.expected = header.epoch, header.first_seq
        source.stream = stream
        source.durable = durable = f"lockstep_{self.config.namespace}_{source.subject}".replace(".", "_").replace("-", "_")
        try:
            await self.js.delete_consumer(stream, durable)  # every start reads the run from its START marker
        except nats.js.errors.NotFoundError:
            pass
        await self.js.add_consumer(stream, ConsumerConfig(
            durable_name=durable, filter_subject=source.subject, ack_policy=AckPolicy.ALL,
            ack_wait=self.config.ack_wait_s, max_ack_pending=4 * FETCH_BATCH,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start.seq + 1))
        return await self.js.pull_subscribe_bind(durable=durable, stream=stream)

    def _deliver(self, source: _Subject, message) -> None:
        header, payload = bh.decode(message.data)
        layout = source.layout
        if header.fingerprint != layout.fingerprint or header.record_size != layout.itemsize:
            raise BridgeError(
                f"subject {source.subject} carries records with layout fingerprint {header.fingerprint:016x} "
                f"({header.record_size} bytes), this platform's {layout.describe()} ({layout.itemsize} bytes): "
                f"both hosts must run the same layouts/ (upgrade the older one)")
        if header.epoch != source.epoch:
            raise BridgeError(f"the exporting platform of {source.subject} started again mid-stream: a "
                              f"deterministic run imports one complete run of it")
        if header.end:
            source.ended = True
            return
        if header.next_seq <= source.expected:
            source.duplicates += header.count
            return
        skip = 0
        if header.first_seq < source.expected:
            skip = source.expected - header.first_seq
            source.duplicates += skip
        elif header.first_seq > source.expected:
            missing = header.first_seq - source.expected
            source.gaps += 1
            source.gap_records += missing
            self.ctx.log.error("gap on %s: records %d..%d are not in the stream (retention exceeded?); the "
                               "deterministic run goes on without them", source.subject, source.expected,
                               header.first_seq - 1)
        source.put(np.frombuffer(payload, dtype=layout.dtype)[skip:])
        source.expected = header.next_seq
