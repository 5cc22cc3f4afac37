"""The export worker: reads one ring and publishes its records to a JetStream subject, batched.

``do_work`` copies up to ``[bridge] batch_records`` new records and hands them to the NATS thread,
which publishes in order (header: ``hftshm.bridge.batch_header``), up to ``[bridge] publish_window``
messages before their PubAcks return, taking the PubAcks in order; the records are released from
the ring only once JetStream has stored them and everything before them, so a killed export worker
loses nothing (its successor publishes again from the ring's consumer cursor; the importer drops
what had arrived). Back-pressure is explicit: at most ``in_flight`` batches wait for NATS, and
unstored records occupy the ring, so a stalled NATS fills the ring and its producer waits (block
mode) or counts drops (drop mode), as with any slow consumer. A publish that fails (NATS
restarting) is retried with the same ``Nats-Msg-Id``, so JetStream stores it once.

At the end of a run (drain), the worker publishes an END batch: the importing platform then knows
the stream is complete and its import worker finishes, as a feed does at the end of its data.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from hftshm.bridge import batch_header as bh
from hftshm.bridge import config as bridge_config
from hftshm.bridge.nats_thread import BridgeError, NatsThread, connect, ensure_stream
from hftshm.runtime.worker import Worker, WorkerContext

PUBLISH_TIMEOUT_S = 2.0
RETRY_PAUSE_S = 0.05


class ExportWorker(Worker):
    COUNTER_NAMES = ("records_exported", "batches_published", "publish_retries", "in_flight_full",
                     "publish_reorders")

    def __init__(self, ring: str, subject: str, forward: str = "", window: int = 0):
        self.ring_name = ring
        self.window = window  # publishes awaiting their PubAck at once; 0 = [bridge] publish_window
        self.subject = subject
        self.forward_name = forward  # a local ring that gets every record too (``export = "nats:"``)
        self._queued = 0      # messages handed to the NATS thread (this thread writes it)
        self._published = 0   # messages JetStream acknowledged (the NATS thread writes it)
        self._records_published = 0  # records JetStream stored (the NATS thread writes it)
        self._released = 0           # of those, released from the ring (this thread)
        self._retries = 0
        self._reorders = 0
        self._end_sent = False
        self._error: BaseException | None = None
        self._full = False

    def on_start(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.config = bridge_config.of(ctx.config)
        self.window = self.window or self.config.publish_window
        self.ring = ctx.input(self.ring_name)
        self.forward = ctx.output(self.forward_name) if self.forward_name else None
        self._sent_upto = self.ring.consumer_position  # a predecessor's unacked records go out again
        self.fingerprint = self.ring.layout.fingerprint
        self.record_size = self.ring.layout.itemsize
        self.epoch = bridge_config.run_identity(ctx.run_dir)  # stable across restarts of this worker
        self.thread = NatsThread(ctx.name)  # also shortens the GIL switch interval (see nats_thread)
        self._pending: deque = deque()
        self._wakeup = None
        try:
            self.thread.submit(self._open()).result(self.config.connect_timeout_s + 5)
        except BaseException:
            self.thread.stop()
            raise
        self._batch = min(self.config.batch_records, max(1, (self._max_payload - bh.HEADER_BYTES) // self.record_size))
        self._pipeline_min = max(1, self._batch // 8)
        self._publisher = self.thread.submit(self._publish_loop())
        ctx.log.info("exporting ring %s (%s) to %s on %s, up to %d records per message", self.ring_name,
                     self.ring.layout.describe(), self.subject, self.config.url, self._batch)

    async def _open(self) -> None:
        self.nc = await connect(self.config, f"hftshm-export-{self.ring_name}")
        self.js = self.nc.jetstream()
        await ensure_stream(self.js, self.config)
        await self._mark_start()
        self._max_payload = self.nc.max_payload
        self._wakeup = asyncio.Event()

    async def _mark_start(self) -> None:
        """Once per run: a START marker on ``<subject>.start``, where a new importing run begins
        (rather than at older runs' batches still retained). A restarted worker does not mark again."""
        import nats.js.errors

        start_subject = self.subject + bh.START_SUFFIX
        try:
            last = await self.js.get_last_msg(self.config.stream, start_subject)
            if bh.decode(last.data)[0].epoch == self.epoch:
                return
        except nats.js.errors.NotFoundError:
            pass
        await self.js.publish(start_subject, bh.encode(self.fingerprint, self.ring.consumer_position, b"",
                                                       self.record_size, self.epoch, flags=bh.FLAG_START))

    # ---------------------------------------------------------------- duty cycle (worker thread)

    def do_work(self) -> int:
        if self._error is not None:
            raise BridgeError(f"export of {self.ring_name} to {self.subject} failed: {self._error}") from self._error
        counters = self.ctx.counters
        counters[0] = self._records_published
        counters[1] = self._published
        counters[2] = self._retries
        counters[4] = self._reorders
        ring = self.ring
        # records stay in the ring until JetStream has stored them: a killed export worker loses
        # nothing, its successor publishes again from the ring's consumer cursor (the importer drops
        # what had arrived already). Sent records sit between the consumer cursor and _sent_upto.
        view = ring.poll(ring.capacity)
        first = ring.consumer_position
        acked = self._records_published - self._released
        if acked:
            done = min(acked, len(view))
            ring.release(done)
            self._released += done
            view, first = view[done:], first + done
        if self._queued - self._published >= self.config.in_flight:
            if not self._full:
                self._full = True
                counters[3] += 1
            return 0
        self._full = False
        fresh = view[self._sent_upto - first: self._sent_upto - first + self._batch]
        n = len(fresh)
        if n == 0:
            if self._sent_upto > first:
                time.sleep(0)  # waiting on PubAcks: hand the GIL to the NATS thread rather than spin on it
            return 0
        if self.forward is not None:
            n = self._forward(fresh)
            if n == 0:
                return 0
            fresh = fresh[:n]
        self._hand_over(self._sent_upto, n, fresh.tobytes())
        self._sent_upto += n
        return n

    def _forward(self, fresh) -> int:
        """The local consumer first (``export = "nats:"``); returns how many of ``fresh`` may go out.
        A restarted worker does not forward again what its predecessor did (the local ring's
        producer cursor counts it); a full local ring holds the rest back."""
        already = max(0, min(len(fresh), self.forward.producer_position - self._sent_upto))
        if already == len(fresh):
            return already
        slots = self.forward.claim(len(fresh) - already)
        if len(slots) == 0:
            return already
        slots[:] = fresh[already: already + len(slots)]
        self.forward.commit(len(slots))
        return already + len(slots)

    def _hand_over(self, first_seq: int, count: int, records: bytes, flags: int = 0) -> None:
        self._queued += 1
        self.thread.call(self._enqueue, (first_seq, count, records, flags))

    def on_drain(self) -> int:
        moved = self.do_work()
        if moved or self.ring.has_records():  # not yet all stored by JetStream (and released)
            if not moved:
                time.sleep(0.0005)
            return max(moved, 1)
        if not self._end_sent:
            self._end_sent = True
            self._hand_over(self.ring.consumer_position, 0, b"", bh.FLAG_END)
        if self._queued > self._published and self._error is None:
            time.sleep(0.001)  # draining: waiting for the last PubAcks is the only work left
            return 1
        return 0

    def on_close(self) -> None:
        self.thread.close(self._close())
        self.ctx.counters[0] = self._records_published  # final, after the NATS thread stopped
        self.ctx.counters[1] = self._published
        self.ctx.counters[2] = self._retries
        self.ctx.counters[4] = self._reorders

    # ---------------------------------------------------------------- NATS thread

    def _enqueue(self, item: tuple) -> None:
        self._pending.append(item)
        self._wakeup.set()

    def _coalesce(self, start: int) -> tuple[int, int, int, int]:
        """(first_seq, count, flags, items): the queued batches from ``_pending[start]`` on that go out
        as one message. While the window is full the queue grows; consecutive batches then share one
        message (up to the server's payload limit), so a slow round trip raises the batch size
        instead of the delay."""
        first_seq, count, records, flags = self._pending[start]
        items, size = 1, len(records)
        limit = self._max_payload - bh.HEADER_BYTES
        while not flags and start + items < len(self._pending):
            seq, n, more, more_flags = self._pending[start + items]
            if more_flags or seq != first_seq + count or size + len(more) > limit:
                break
            count, size, items = count + n, size + len(more), items + 1
        return first_seq, count, flags, items

    async def _publish_loop(self) -> None:
        """Up to ``publish_window`` messages are published before their PubAcks return (one
        connection: JetStream stores them in publish order); PubAcks are taken strictly in order,
        so ``_records_published`` (the ring's release floor) only ever covers a stored prefix."""
        window: deque = deque()  # (publish task, first_seq, count, items, message), oldest first
        sent_items = 0           # _pending[:sent_items] are in the window
        try:
            while True:
                while window and window[0][0].done():
                    task, first_seq, count, items, message = window[0]
                    if task.exception() is not None:
                        self._retries += 1
                        await self._publish_again(window)  # the whole window, one by one, in order
                        sent_items = 0
                        continue
                    window.popleft()
                    self._acknowledge(count, items)
                    sent_items -= items
                while len(window) < self.window and sent_items < len(self._pending):
                    if window and not self._worth_pipelining(sent_items):
                        break  # a trickle: it coalesces behind the message in flight (Nagle), fewer messages
                    first_seq, count, flags, items = self._coalesce(sent_items)
                    parts = [self._pending[sent_items + i][2] for i in range(items)]
                    message = bh.encode(self.fingerprint, first_seq, parts[0] if items == 1 else b"".join(parts),
                                        self.record_size, self.epoch, flags=flags)
                    task = asyncio.ensure_future(self._publish_once(first_seq, message))
                    task.add_done_callback(self._wake)
                    window.append((task, first_seq, count, items, message))
                    sent_items += items
                if not (window and window[0][0].done()):
                    self._wakeup.clear()
                    await self._wakeup.wait()
        except asyncio.CancelledError:
            for entry in window:
                entry[0].cancel()
            raise
        except BaseException as exc:  # surfaced by do_work
            self._error = exc

    def _worth_pipelining(self, start: int) -> bool:
        """A message goes out beside those in flight only if it carries at least an eighth of a full
        batch (or the END marker): bulk is pipelined, a trickle of single records waits for the
        PubAck in flight and coalesces, as tiny messages cost the importer more than they save."""
        queued = 0
        for i in range(start, len(self._pending)):
            seq, n, records, flags = self._pending[i]
            queued += n
            if flags or queued >= self._pipeline_min:
                return True
        return False

    def _wake(self, _task) -> None:
        self._wakeup.set()

    def _acknowledge(self, count: int, items: int) -> None:
        for _ in range(items):
            self._pending.popleft()
        self._records_published += count
        self._published += items

    async def _publish_again(self, window: deque) -> None:
        """A publish in the window failed (NATS restarting, a PubAck timed out): the rest of the
        window is abandoned and every message of it is published again one at a time, in order,
        under its own ``Nats-Msg-Id`` (what JetStream had stored comes back as a duplicate). A
        message stored after one the server lost (possible only if a reconnect resent the client's
        buffer past a lost write) shows up here as a duplicate following a fresh store: counted in
        ``publish_reorders`` and logged, as the importer will report that gap."""
        for entry in window:
            entry[0].cancel()
        await asyncio.gather(*(entry[0] for entry in window), return_exceptions=True)
        stored_fresh = False
        while window:
            task, first_seq, count, items, message = window.popleft()
            ack = await self._publish(first_seq, message)
            if getattr(ack, "duplicate", False) and stored_fresh:
                self._reorders += 1
                self.ctx.log.error("JetStream stored the batch at %d of %s before an earlier one lost in a "
                                   "reconnect: the importer reports it as a gap", first_seq, self.subject)
            stored_fresh = stored_fresh or not getattr(ack, "duplicate", False)
            self._acknowledge(count, items)

    def _headers(self, first_seq: int, message: bytes) -> dict:
        # the id makes a retried publish (its PubAck lost in a NATS restart) a no-op in JetStream
        return {"Nats-Msg-Id": f"{self.epoch}:{first_seq}:{len(message)}"}

    async def _publish_once(self, first_seq: int, message: bytes):
        return await self.js.publish(self.subject, message, timeout=PUBLISH_TIMEOUT_S,
                                     headers=self._headers(first_seq, message))

    async def _publish(self, first_seq: int, message: bytes):
        while True:
            try:
                return await self._publish_once(first_seq, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._retries += 1
                if self._retries % 100 == 1:
                    self.ctx.log.warning("publishing to %s failed (%s: %s); retrying (NATS restarting?)",
                                         self.subject, type(exc).__name__, exc)
                await asyncio.sleep(RETRY_PAUSE_S)

    async def _close(self) -> None:
        try:
            await self.nc.close()
        except Exception:
            pass
