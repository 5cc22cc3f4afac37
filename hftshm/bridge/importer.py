"""The import worker: reads a JetStream subject with a durable consumer into a local ring.

The NATS thread fetches batches, checks each against the ring (layout fingerprint, record size) and
writes the records into the ring as its single producer, then acks the message. Exactly-once into
the ring follows from the ring's own producer cursor: the worker keeps ``offset`` with
``source sequence = offset + ring producer cursor`` (persisted in ``<run_dir>/bridge/<ring>.json``
before any commit that changes it), so after a crash, a NATS restart or an ack lost on the way, a
redelivered batch below the cursor is dropped and counted, one overlapping it is trimmed, and one
beyond it is a gap (records the stream no longer had: retention exceeded), counted and logged.

Back-pressure is explicit: when the ring is full the thread waits (telling JetStream the message is
in progress) and neither acks nor fetches more, so the stream holds the backlog. The durable
consumer (named after the local namespace and ring) makes a restarted worker resume from its last
ack. The duty cycle only publishes counters and surfaces errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hftshm.bridge import batch_header as bh
from hftshm.bridge import config as bridge_config
from hftshm.bridge.nats_thread import BridgeError, NatsThread, connect, ensure_stream

from hftshm.runtime.worker import Worker, WorkerContext

FETCH_BATCH = 16
FETCH_TIMEOUT_S = 0.25
FULL_PAUSE_S = 0.0002
STREAM_POLL_S = 0.2  # while the exporting host has not started yet


@dataclass
class ImportState:
    run: int = 0          # the importing run (its manifest's start): another run's state is stale
    epoch: int = 0        # the exporting run whose sequences ``offset`` maps (0: none seen yet)
    offset: int = 0       # source sequence of ring slot 0: source seq = offset + ring producer cursor
    position: int = 0     # the ring's producer cursor when this was written (a new ring is behind it)


def durable_name(namespace: str, ring: str) -> str:
    return f"import_{namespace}_{ring}".replace(".", "_").replace("-", "_")


class ImportWorker(Worker):
    COUNTER_NAMES = ("records_imported", "batches_imported", "duplicates_dropped", "gaps", "gap_records",
                     "ring_full_waits", "fetch_errors")

    def __init__(self, ring: str, subject: str, durable: str = ""):
        self.ring_name = ring
        self.subject = subject
        self.durable = durable
        self.counts = [0] * len(self.COUNTER_NAMES)
        self.finished = False
        self._error: BaseException | None = None
        self._reported = 0
        self._gap_checked_at = (0, -1)  # the gap a rewind already confirmed as real
        self._done_stream_seq = 0  # stream sequence of the last message this worker wrote (or dropped)
        self._unacked: list = []  # the fetched batch being written (acked as one at its end)
        self._touched = 0.0       # when its ack timers were last reset (fetch, or in_progress)

    def on_start(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.config = bridge_config.of(ctx.config)
        self.ring = ctx.output(self.ring_name)
        self.durable = self.durable or durable_name(self.config.namespace, self.ring_name)
        self.state_path = Path(ctx.run_dir) / "bridge" / f"{self.ring_name}.json"
        self.state = self._load_state()
        self.thread = NatsThread(ctx.name)  # also shortens the GIL switch interval (see nats_thread)
        try:
            self.thread.submit(self._open()).result(self.config.connect_timeout_s + 5)
        except BaseException:
            self.thread.stop()
            raise
        self._consumer = self.thread.submit(self._consume())
        ctx.log.info("importing %s into ring %s (%s), durable consumer %s", self.subject, self.ring_name,
                     self.ring.layout.describe(), self.durable)

    def _load_state(self) -> ImportState:
        run = bridge_config.run_identity(self.ctx.run_dir)
        try:
            state = ImportState(**json.loads(self.state_path.read_text()))
        except (OSError, ValueError, TypeError):
            return ImportState(run=run)
        if state.run != run or state.position > self.ring.producer_position:
            return ImportState(run=run)  # written for an earlier ring of this name (an earlier run)
        return state

    def _save_state(self) -> None:
        self.state.position = self.ring.producer_position
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state)))
        os.replace(tmp, self.state_path)

    async def _open(self) -> None:
        self.nc = await connect(self.config, f"hftshm-import-{self.ring_name}")
        self.js = self.nc.jetstream()
        if self.subject.startswith(f"hftshm.{self.config.namespace}."):
            await ensure_stream(self.js, self.config)  # our own namespace: no need to wait for the exporter
        self.psub = None

    async def _rewind(self) -> None:
        """(Re)create the durable consumer just after its ack floor: whatever was delivered and not
        acked (to a killed worker, or lost in a NATS restart) comes again now and in order, rather
        than after ``ack_wait`` behind later messages, where it would look like a gap."""
        import nats.js.errors

        start = None
        try:
            info = await self.js.consumer_info(self.stream, self.durable)
            # the server applies acks behind its flush reply: what this worker wrote itself is exact
            start = max(info.ack_floor.stream_seq, self._done_stream_seq) + 1
            await self.js.delete_consumer(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            pass
        if not self.state.epoch:  # a new importing run: begin at the exporter's latest run
            try:
                start = (await self.js.get_last_msg(self.stream, self.subject + bh.START_SUFFIX)).seq + 1
            except nats.js.errors.NotFoundError:
                pass
        if self.psub is not None:
            try:
                await self.psub.unsubscribe()
            except Exception:
                pass
        policy = dict(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start) if start \
            else dict(deliver_policy=DeliverPolicy.ALL)
        await self.js.add_consumer(self.stream, ConsumerConfig(
            durable_name=self.durable, filter_subject=self.subject, ack_policy=AckPolicy.ALL,
            ack_wait=self.config.ack_wait_s, max_ack_pending=4 * FETCH_BATCH, **policy))
        self.psub = await self.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)

    async def _stream_of_subject(self) -> str:
        """The stream holding our subject; waits for it (the exporting host may start after us)."""
        waited = False
        while True:
            try:
                return await self.js.find_stream_name_by_subject(self.subject)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not waited:
                    waited = True
                    self.ctx.log.warning("no JetStream stream holds %s yet (%s); waiting for the exporting "
                                         "platform to start", self.subject, type(exc).__name__)
                await asyncio.sleep(STREAM_POLL_S)

    # ---------------------------------------------------------------- duty cycle (worker thread)

    def do_work(self) -> int:
        if self._error is not None:
            raise BridgeError(f"import of {self.subject} into ring {self.ring_name} failed: {self._error}") \
                from self._error
        counts = self.counts
        self.ctx.counters[: len(counts)] = counts
        moved = counts[0] - self._reported
        self._reported = counts[0]
        return moved

    def is_done(self) -> bool:
        return self.finished

    def on_drain(self) -> int:
        self.do_work()
        return 0

    def on_close(self) -> None:
        self.thread.close(self._close())
        self.ctx.counters[: len(self.counts)] = self.counts  # final, after the NATS thread stopped

    # ---------------------------------------------------------------- NATS thread

    async def _consume(self) -> None:
        try:
            self.stream = await self._stream_of_subject()
            await self._rewind()
            while not self.finished:
                try:
                    messages = await self.psub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_S)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # timeout when idle; connection errors while NATS restarts
                    if type(exc).__name__ != "TimeoutError":
                        self.counts[6] += 1
                        await asyncio.sleep(0.05)
                    continue
                done = None
                self._unacked, self._touched = messages, time.monotonic()  # ack timers run from here
                for message in messages:
                    if not await self._deliver(message):
                        if done is not None:
                            await self._ack(done)
                            done = None
                        await self._flush()  # every ack reached the server: the ack floor is exact
                        await self._rewind()  # a gap: make sure it is not a redelivery still to come
                        break
                    done = message
                    self._done_stream_seq = message.metadata.sequence.stream
                if done is not None:
                    await self._ack(done)  # AckPolicy.ALL: one ack covers the fetched batch
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._error = exc

    async def _ack(self, message) -> None:
        # sent without waiting for the server (one round trip less per batch); a rewind flushes first
        try:
            await message.ack()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counts[6] += 1  # NATS restarting: the message comes again and is dropped as a duplicate

    async def _flush(self) -> None:
        try:
            await self.nc.flush(timeout=2)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counts[6] += 1

    async def _deliver(self, message) -> bool:
        """Write the message's new records into the ring; False (nothing written) for a gap not yet
        confirmed by a rewind of the consumer."""
        header, payload = bh.decode(message.data)
        layout = self.ring.layout
        if header.fingerprint != layout.fingerprint or header.record_size != layout.itemsize:
            raise BridgeError(
                f"subject {self.subject} carries records with layout fingerprint {header.fingerprint:016x} "
                f"({header.record_size} bytes), ring {self.ring_name} holds {layout.describe()} "
                f"({layout.itemsize} bytes): both hosts must run the same layouts/ (upgrade the older one)")
        counts = self.counts
        state = self.state
        if header.epoch != state.epoch:
            if state.epoch:
                self.ctx.log.warning("the exporting platform of %s restarted (new run): a new stream of "
                                     "sequences starts at 0", self.subject)
                state.offset = -self.ring.producer_position
            else:  # first batch this ring sees: adopt the stream where the durable consumer stands
                state.offset = header.first_seq - self.ring.producer_position
                self.ctx.log.info("import of %s starts at source sequence %d", self.subject, header.first_seq)
            state.epoch = header.epoch
            self._save_state()
        if header.end:
            self.ctx.log.info("the exporting platform of %s finished; %d records imported", self.subject, counts[0])
            self.finished = True
            return True
        expected = state.offset + self.ring.producer_position
        if header.next_seq <= expected:
            counts[2] += header.count
            return True
        skip = 0
        if header.first_seq < expected:
            skip = expected - header.first_seq
            counts[2] += skip
        elif header.first_seq > expected and self._gap_checked_at != (header.epoch, header.first_seq):
            self._gap_checked_at = (header.epoch, header.first_seq)
            return False
        elif header.first_seq > expected:
            missing = header.first_seq - expected
            counts[3] += 1
            counts[4] += missing
            self.ctx.log.warning("gap on %s: records %d..%d are not in the stream any more (retention exceeded "
                                 "or lost by the exporter); continuing at %d", self.subject, expected,
                                 header.first_seq - 1, header.first_seq)
            state.offset += missing
            self._save_state()
        records = np.frombuffer(payload, dtype=self.ring.dtype)[skip:]
        await self._write(records, message)
        counts[0] += len(records)
        counts[1] += 1
        return True

    async def _write(self, records: np.ndarray, message) -> None:
        ring = self.ring
        done = 0
        waiting = False
        while done < len(records):
            now = time.monotonic()
            if now - self._touched > self.config.ack_wait_s / 3:
                # a slow consumer (the ring drains a few slots at a time) can hold a fetched batch
                # longer than ack_wait: every message of it not acked yet, written or still to come,
                # is marked in progress, or JetStream would redeliver it (a duplicate, dropped)
                self._touched = now
                for pending in self._unacked or [message]:
                    try:
                        await pending.in_progress()
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # NATS restarting: a redelivery follows, dropped as a duplicate
                        self.counts[6] += 1
            view = ring.claim(len(records) - done)
            n = len(view)
            if n == 0:  # ring full: wait without acking, JetStream keeps the rest
                if not waiting:
                    waiting = True
                    self.counts[5] += 1
                await asyncio.sleep(FULL_PAUSE_S)
                continue
            waiting = False
            view[:] = records[done: done + n]
            ring.commit(n)
            done += n

    async def _close(self) -> None:
        try:
            await self.nc.flush(timeout=2)  # the last acks, so a successor does not see them again
            await self.nc.close()
        except Exception:
            pass
