"""A lock-free single-producer single-consumer ring of fixed-layout records in shared memory.

The supervisor creates every ring; workers attach to them by name with the layout they expect::

    ring = Ring.create("md.events", "market_event", capacity=65536, backpressure="block")
    out = Ring.attach("md.events", "market_event", role="producer")   # in the producer process
    inp = Ring.attach("md.events", "market_event", role="consumer")   # in the consumer process

Hot loops use the numba kernels in ``ring_nb`` on ``ring.ctrl`` (header words) and ``ring.records``
(structured array, ``capacity`` long). Python code uses the zero-copy batch API::

    view = out.claim(n)        # up to n contiguous free slots (fewer at the wrap, empty when full)
    view["price"] = prices[:len(view)]; out.commit(len(view))
    view = inp.poll(max_n)     # up to max_n contiguous readable records
    use(view); inp.release(len(view))

or the single-record calls ``try_write(record) -> bool`` / ``try_read() -> record copy | None``.

Backpressure when full: ``block`` - nothing is lost; the producer waits (``write``, or
``wait_for_space`` then retry). ``drop`` - the newest record is dropped and counted in ``drops``.
Either way each episode of a full ring is counted in ``full_events`` (shared memory: visible to the
supervisor and the metrics exporter).
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

import numpy as np

from hftshm.transport import descriptor as d
from hftshm.transport import layout as layouts
from hftshm.transport.layout import Layout
from hftshm.transport.segment import Segment, SegmentNotFound

ROLES = ("producer", "consumer")


class RingAttachError(RuntimeError):
    """Attaching to a ring failed; the message says what differs and what to do."""


class Ring:
    """One SPSC ring mapped into this process. Use ``create`` or ``attach``, not the constructor."""

    def __init__(self, segment: Segment, layout: Layout):
        self._segment = segment
        self.name = segment.name
        self.layout = layout
        self.dtype = layout.dtype
        self.ctrl = np.ndarray((d.HEADER_WORDS,), dtype=np.int64, buffer=segment.buf)
        self.capacity = int(self.ctrl[d.CAPACITY_WORD])
        self.records = np.ndarray((self.capacity,), dtype=self.dtype, buffer=segment.buf, offset=d.HEADER_BYTES)
        mode = int(self.ctrl[d.BACKPRESSURE_WORD])
        self.backpressure = next(k for k, v in d.BACKPRESSURE_MODES.items() if v == mode)
        self._mask = self.capacity - 1
        self._itemsize = self.dtype.itemsize
        self._none = self.records[:0]  # what poll returns for an empty ring
        self._claimed = 0  # slots handed out by claim() and not yet committed
        self._polled = 0  # records handed out by poll() and not yet released
        self._roles: set[str] = set()
        from hftshm.transport import barrier, ring_nb

        barrier.register_process()  # again here: a forked child is a new process
        self._nb = ring_nb

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def create(cls, name: str, layout: Layout | str, capacity: int, backpressure: str = "block",
               replace: bool = False) -> "Ring":
        """Create and initialise a ring. ``capacity`` must be a power of two (>= 2). The header's
        version word is written last, so an attacher never sees a half-initialised ring."""
        layout = _layout(layout)
        _check_shape(name, capacity, backpressure)
        if replace:
            cls.unlink_name(name)
        try:
            segment = Segment.create(name, d.segment_bytes(int(capacity), layout.itemsize))
        except FileExistsError:
            raise FileExistsError(f"ring {name!r} already exists in shared memory (a previous run did not "
                                  f"clean up?): unlink it, or create with replace=True") from None
        return cls._initialise(segment, layout, capacity, backpressure)

    @classmethod
    def private(cls, layout: Layout | str, capacity: int = 256, backpressure: str = "block",
                name: str = "private") -> "Ring":
        """A ring in this process's own memory, for warm-ups and scratch work: the same header and
        record arrays as a shared ring (the same numba types), nothing in /dev/shm."""
        layout = _layout(layout)
        _check_shape(name, capacity, backpressure)
        return cls._initialise(Segment.private(name, d.segment_bytes(int(capacity), layout.itemsize)), layout,
                               capacity, backpressure)

    @classmethod
    def _initialise(cls, segment: Segment, layout: Layout, capacity: int, backpressure: str) -> "Ring":
        ctrl = np.ndarray((d.HEADER_WORDS,), dtype=np.int64, buffer=segment.buf)
        ctrl[d.MAGIC_WORD] = d.MAGIC
        ctrl[d.FINGERPRINT_WORD] = layout.fingerprint
        ctrl[d.CAPACITY_WORD] = capacity
        ctrl[d.RECORD_SIZE_WORD] = layout.itemsize
        ctrl[d.BACKPRESSURE_WORD] = d.BACKPRESSURE_MODES[backpressure]
        ctrl[d.HEADER_BYTES_WORD] = d.HEADER_BYTES
        ctrl[d.LAYOUT_VERSION_WORD] = layout.version
        name_bytes = layout.name.encode("ascii")[: d.LAYOUT_NAME_BYTES]
        ctrl[d.LAYOUT_NAME_WORD: d.LAYOUT_NAME_WORD + 4].view(np.uint8)[: len(name_bytes)] = np.frombuffer(
            name_bytes, np.uint8)
        del ctrl
        ring = cls(segment, layout)
        ring._nb.store_word(ring.ctrl, d.VERSION_WORD, d.FORMAT_VERSION)
        return ring

    @classmethod
    def attach(cls, name: str, layout: Layout | str, role: str | None = None, ready_timeout_s: float = 0.0,
               takeover: bool = False) -> "Ring":
        """Map an existing ring, checking it holds ``layout`` records. ``role`` ("producer" or
        "consumer") registers this process's pid on that side; it fails if another live process holds
        the side, unless ``takeover``. Waits up to ``ready_timeout_s`` for a ring still being created."""
        layout = _layout(layout)
        if role is not None and role not in ROLES:
            raise ValueError(f"ring {name!r}: role must be one of {', '.join(ROLES)} or None, got {role!r}")
        try:
            segment = Segment.attach(name)
        except SegmentNotFound:
            raise RingAttachError(f"no ring {name!r}: shared memory segment /dev/shm/{name} does not exist "
                                  f"(is the supervisor running, or was the ring unlinked?)") from None
        try:
            _check_header(segment, name, layout, ready_timeout_s)
            ring = cls(segment, layout)
            if role == "producer":
                ring.register_producer(takeover=takeover)
            elif role == "consumer":
                ring.register_consumer(takeover=takeover)
        except BaseException:
            segment.close()
            raise
        return ring

    def close(self) -> None:
        """Unmap (clearing this process's pid registrations). The segment stays until ``unlink``."""
        if self._segment is None:
            return
        for role, word in (("producer", d.PRODUCER_PID), ("consumer", d.CONSUMER_PID)):
            if role in self._roles and int(self.ctrl[word]) == os.getpid():
                self.ctrl[word] = 0
        segment, self._segment = self._segment, None
        self.ctrl = self.records = self._none = None  # type: ignore[assignment]
        segment.close()

    def unlink(self) -> None:
        """Remove the ring's name from shared memory (the supervisor's job; mappings stay valid)."""
        if self._segment is not None:
            self._segment.unlink()
        else:
            Ring.unlink_name(self.name)

    @staticmethod
    def unlink_name(name: str) -> bool:
        """Remove a ring by name if it exists (e.g. left by a crashed run). Returns True if removed."""
        try:
            segment = Segment.attach(name)
        except SegmentNotFound:
            return False
        segment.unlink()
        segment.close()
        return True

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Ring({self.name!r}, {self.layout.name} v{self.layout.version}, capacity={self.capacity}, "
                f"backpressure={self.backpressure!r})")

    # ------------------------------------------------------------ registration and liveness

    def register_producer(self, pid: int | None = None, takeover: bool = False) -> None:
        self._register("producer", d.PRODUCER_PID, pid, takeover)
        self._nb.resync_producer(self.ctrl)

    def register_consumer(self, pid: int | None = None, takeover: bool = False) -> None:
        self._register("consumer", d.CONSUMER_PID, pid, takeover)
        self._nb.resync_consumer(self.ctrl)

    def _register(self, role: str, word: int, pid: int | None, takeover: bool) -> None:
        pid = os.getpid() if pid is None else pid
        holder = int(self.ctrl[word])
        if holder not in (0, pid) and not takeover and _alive(holder):
            raise RingAttachError(f"ring {self.name!r} already has a live {role} (pid {holder}); a ring has "
                                  f"exactly one {role}: stop that process first")
        self.ctrl[word] = pid
        self._roles.add(role)

    @property
    def producer_pid(self) -> int:
        return int(self.ctrl[d.PRODUCER_PID])

    @property
    def consumer_pid(self) -> int:
        return int(self.ctrl[d.CONSUMER_PID])

    def heartbeat(self, now_ns: int | None = None) -> None:
        self.ctrl[d.HEARTBEAT_NS] = time.monotonic_ns() if now_ns is None else now_ns

    @property
    def heartbeat_ns(self) -> int:
        return int(self.ctrl[d.HEARTBEAT_NS])

    # ------------------------------------------------------------ producer side

    def claim(self, n: int) -> np.ndarray:
        """A writable view of up to ``n`` contiguous free slots (fewer at the wrap, empty when full).
        Nothing is visible to the consumer until ``commit``."""
        count = int(self._nb.claim_contiguous(self.ctrl, n))
        start = int(self.ctrl[d.PRODUCER_CURSOR]) & self._mask
        self._claimed = count
        return self.records[start: start + count]

    def commit(self, n: int | None = None) -> None:
        """Publish the first ``n`` slots of the last ``claim`` (all of them by default)."""
        n = self._claimed if n is None else n
        if n < 0 or n > self._claimed:
            raise ValueError(f"ring {self.name!r}: commit({n}) but only {self._claimed} slots are claimed")
        if n:
            self._nb.commit(self.ctrl, self.ctrl[d.PRODUCER_CURSOR], n)
        self._claimed = 0

    def try_write(self, record: Any) -> bool:
        """Write one record (tuple, ``np.void`` or dict of field -> value; missing dict fields are 0).
        False if the ring is full: in drop mode the record is dropped and counted."""
        if not isinstance(record, (tuple, np.void)) and isinstance(record, Mapping):
            record = self._record_from_mapping(record)
        seq = int(self._nb.offer(self.ctrl, 1))
        if seq < 0:
            return False
        self.records[seq & self._mask] = record
        self._nb.commit(self.ctrl, seq, 1)
        return True

    def write(self, record: Any, timeout_s: float | None = None) -> bool:
        """``try_write`` that, in block mode, waits for space (parking on the producer doorbell).
        Returns False if ``timeout_s`` passed (block) or the record was dropped (drop)."""
        from hftshm.transport.doorbell import wait_for_space

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.try_write(record):
            if self.backpressure == "drop":
                return False
            remaining = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if remaining <= 0:
                return False
            wait_for_space(self.ctrl, 1, remaining)
        return True

    def wait_for_space(self, n: int = 1, timeout_s: float = 0.05) -> bool:
        """Block-mode producers: park until ``n`` slots are free or the timeout. True if free now."""
        from hftshm.transport.doorbell import wait_for_space

        return wait_for_space(self.ctrl, n, timeout_s)

    def wake_consumer(self) -> bool:
        """Ring the consumer's doorbell if it is parked (out-of-band: e.g. a supervisor command).
        Commits do this themselves. True if it was parked."""
        return bool(self._nb.wake_consumer_if_parked(self.ctrl))

    def wake_producer(self) -> bool:
        """Ring the producer's doorbell if it is parked on a full ring (releases do this themselves)."""
        return bool(self._nb.wake_producer_if_parked(self.ctrl))

    def count_drops(self, n: int) -> None:
        """Count ``n`` records a batch producer discarded because the ring was full."""
        self._nb.count_drops(self.ctrl, n)

    def _record_from_mapping(self, record: Mapping) -> np.void:
        unknown = set(record) - set(self.dtype.names)
        if unknown:
            raise ValueError(f"ring {self.name!r}: {self.layout.name} has no field(s) {sorted(unknown)}; "
                             f"fields: {', '.join(self.dtype.names)}")
        value = np.zeros((), dtype=self.dtype)
        for key, field_value in record.items():
            value[key] = field_value
        return value

    # ------------------------------------------------------------ consumer side

    def has_records(self) -> bool:
        """True if published records wait to be read. Two plain loads of the cursors from Python
        (~0.2 us where a kernel call costs ~1 us plus its arguments), to skip a batch kernel on an
        empty ring; what it finds is then read through the acquire path (``poll``, ``try_poll``)."""
        ctrl = self.ctrl
        return ctrl[_PRODUCER_CURSOR] != ctrl[_CONSUMER_CURSOR]

    def poll(self, max_n: int) -> np.ndarray:
        """A view of up to ``max_n`` contiguous readable records (empty if none). Valid until
        ``release``: after it the producer may overwrite them (copy what you keep)."""
        ctrl = self.ctrl
        if ctrl[_PRODUCER_CURSOR] == ctrl[_CONSUMER_CURSOR]:
            self._polled = 0
            return self._none  # the idle case, without a kernel call or a new view
        count = int(self._nb.poll_contiguous(self.ctrl, max_n))
        start = int(self.ctrl[d.CONSUMER_CURSOR]) & self._mask
        self._polled = count
        return self.records[start: start + count]

    def release(self, n: int | None = None) -> None:
        """Hand the first ``n`` records of the last ``poll`` back to the producer (all by default)."""
        n = self._polled if n is None else n
        if n < 0 or n > self._polled:
            raise ValueError(f"ring {self.name!r}: release({n}) but only {self._polled} records were polled")
        if n:
            self._nb.release(self.ctrl, n)
        self._polled = 0

    def try_read(self) -> np.void | None:
        """A copy of the next record, released at once; None if the ring is empty."""
        if self._nb.try_poll(self.ctrl, 1) == 0:
            return None
        start = d.HEADER_BYTES + (int(self.ctrl[d.CONSUMER_CURSOR]) & self._mask) * self._itemsize
        # copy the bytes out, then view them: ~0.4 us where np.void.copy() takes ~5 us
        record = np.frombuffer(bytearray(self._segment.buf[start: start + self._itemsize]), self.dtype)[0]
        self._nb.release(self.ctrl, 1)
        return record

    # ------------------------------------------------------------ observation (any process)

    def occupancy(self) -> int:
        return int(self._nb.occupancy(self.ctrl))

    @property
    def producer_position(self) -> int:
        return int(self.ctrl[d.PRODUCER_CURSOR])

    @property
    def consumer_position(self) -> int:
        return int(self.ctrl[d.CONSUMER_CURSOR])

    @property
    def full_events(self) -> int:
        return int(self.ctrl[d.FULL_EVENTS])

    @property
    def drops(self) -> int:
        return int(self.ctrl[d.DROPS])

    @property
    def consumer_wakes(self) -> int:
        """Times the producer rang the consumer's doorbell (it only does when the consumer is parked)."""
        return int(self.ctrl[d.CONSUMER_WAKES])

    @property
    def producer_wakes(self) -> int:
        return int(self.ctrl[d.PRODUCER_WAKES])

    @property
    def consumer_parks(self) -> int:
        return int(self.ctrl[d.CONSUMER_PARKS])

    @property
    def producer_parks(self) -> int:
        return int(self.ctrl[d.PRODUCER_PARKS])

    def stats(self) -> dict[str, int]:
        """Counters for the metrics exporter and ``hftshm`` status commands."""
        return {"capacity": self.capacity, "occupancy": self.occupancy(), "published": self.producer_position,
                "consumed": self.consumer_position, "full_events": self.full_events, "drops": self.drops,
                "consumer_wakes": self.consumer_wakes, "producer_wakes": self.producer_wakes,
                "consumer_parks": self.consumer_parks, "producer_parks": self.producer_parks}


_PRODUCER_CURSOR, _CONSUMER_CURSOR = d.PRODUCER_CURSOR, d.CONSUMER_CURSOR


def header_layout_name(ctrl: np.ndarray) -> str:
    raw = ctrl[d.LAYOUT_NAME_WORD: d.LAYOUT_NAME_WORD + 4].view(np.uint8).tobytes()
    return raw.rstrip(b"\0").decode("ascii", "replace")


def _check_shape(name: str, capacity, backpressure: str) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 2 \
            or capacity & (capacity - 1):
        raise ValueError(f"ring {name!r}: capacity must be a power of two >= 2, got {capacity!r}")
    if backpressure not in d.BACKPRESSURE_MODES:
        raise ValueError(f"ring {name!r}: backpressure must be one of {', '.join(d.BACKPRESSURE_MODES)},"
                         f" got {backpressure!r}")


def _layout(layout: Layout | str) -> Layout:
    return layouts.load(layout) if isinstance(layout, str) else layout


def _check_header(segment: Segment, name: str, layout: Layout, ready_timeout_s: float) -> None:
    if segment.size < d.HEADER_BYTES:
        raise RingAttachError(f"segment {name!r} ({segment.size} bytes) is too small to be an hftshm ring")
    ctrl = np.ndarray((d.HEADER_WORDS,), dtype=np.int64, buffer=segment.buf)
    try:
        if int(ctrl[d.MAGIC_WORD]) != d.MAGIC:
            raise RingAttachError(f"segment {name!r} is not an hftshm ring (magic {int(ctrl[d.MAGIC_WORD]) & (2**64 - 1):#x},"
                                  f" expected {d.MAGIC:#x}): another program owns this name")
        deadline = time.monotonic() + ready_timeout_s
        while int(ctrl[d.VERSION_WORD]) == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        version = int(ctrl[d.VERSION_WORD])
        if version == 0:
            raise RingAttachError(f"ring {name!r} is not ready: its creator has not finished initialising it "
                                  f"(or died while doing so); retry, or restart the supervisor")
        if version != d.FORMAT_VERSION:
            raise RingAttachError(f"ring {name!r} has header format v{version}, this process expects "
                                  f"v{d.FORMAT_VERSION}: restart the supervisor after upgrading")
        fingerprint = int(ctrl[d.FINGERPRINT_WORD])
        if fingerprint != layout.fingerprint:
            theirs = f"{header_layout_name(ctrl)} v{int(ctrl[d.LAYOUT_VERSION_WORD])} ({fingerprint:016x})"
            raise RingAttachError(f"ring {name!r} has layout {theirs}, this process expects {layout.describe()}: "
                                  f"restart the supervisor after upgrading")
        needed = d.segment_bytes(int(ctrl[d.CAPACITY_WORD]), int(ctrl[d.RECORD_SIZE_WORD]))
        if segment.size < needed or int(ctrl[d.RECORD_SIZE_WORD]) != layout.itemsize:
            raise RingAttachError(f"ring {name!r} is corrupt: header says {int(ctrl[d.CAPACITY_WORD])} records of "
                                  f"{int(ctrl[d.RECORD_SIZE_WORD])} bytes but the segment has {segment.size} bytes")
    finally:
        del ctrl


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
