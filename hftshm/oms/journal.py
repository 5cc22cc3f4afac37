"""An append-only, segmented on-disk queue of fixed-size records: the writer's durable backlog.

The order-event writer moves records off its ring into the journal at memory speed and releases
the ring at once; its database thread reads them back, commits them and only then ``advance``s. So
a slow or absent database never backs up the OMS, and a crashed writer loses nothing: on restart
every record still in the journal is written again (the database writes are idempotent).

Files are ``<stem>.<n:08d>`` in one directory. Appends go to the newest segment; a segment that
grew past ``segment_bytes`` is closed and a new one started; a fully consumed old segment is
deleted and a fully consumed newest one truncated, so the disk holds the backlog plus at most one
segment. One thread appends, one thread reads; a lock guards the bookkeeping between them.
A record cut short by a crash mid-write is dropped at open (it was never acknowledged).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class _Segment:
    number: int
    path: Path
    fd: int
    size: int


class Journal:
    def __init__(self, stem: str | os.PathLike, itemsize: int, *, segment_bytes: int = 64 << 20, fsync: bool = False):
        self.stem = Path(stem)
        self.itemsize = itemsize
        self.segment_bytes = max(segment_bytes - segment_bytes % itemsize, itemsize)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._read_offset = 0  # into the oldest segment
        self._pending = 0  # bytes appended and not yet advanced past
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        for number in sorted(self._existing_numbers()):
            path = self._path(number)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            size = os.fstat(fd).st_size
            whole = size - size % itemsize
            if whole != size:
                os.ftruncate(fd, whole)
            self._segments.append(_Segment(number, path, fd, whole))
            self._pending += whole
        if not self._segments:
            self._open_segment(1)

    # -- producer side ---------------------------------------------------------------------------

    def append(self, data: bytes | memoryview) -> None:
        """Append whole records (``len(data)`` a multiple of ``itemsize``)."""
        length = len(data)
        if length % self.itemsize:
            raise ValueError(f"journal append of {length} bytes is not a whole number of {self.itemsize}-byte records")
        if not length:
            return
        with self._lock:
            segment = self._segments[-1]
            if segment.size >= self.segment_bytes:
                segment = self._open_segment(segment.number + 1)
            view = memoryview(data)
            written = 0
            while written < length:
                written += os.write(segment.fd, view[written:])
            if self.fsync:
                os.fsync(segment.fd)
            segment.size += length
            self._pending += length

    # -- consumer side ---------------------------------------------------------------------------

    def peek(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` (whole records) from the read position, without consuming them."""
        max_bytes -= max_bytes % self.itemsize
        with self._lock:
            self._drop_consumed()
            segment = self._segments[0]
            available = min(segment.size - self._read_offset, max_bytes)
            fd, offset = segment.fd, self._read_offset
        if available <= 0:
            return b""
        return os.pread(fd, available, offset)

    def advance(self, nbytes: int) -> None:
        """The first ``nbytes`` from the read position are durable elsewhere: forget them."""
        with self._lock:
            self._read_offset += nbytes
            self._pending -= nbytes
            self._drop_consumed()

    def _drop_consumed(self) -> None:
        # under the lock
        while True:
            oldest = self._segments[0]
            if self._read_offset < oldest.size:
                return
            if len(self._segments) > 1:
                os.close(oldest.fd)
                oldest.path.unlink(missing_ok=True)
                self._segments.pop(0)
                self._read_offset = 0
                continue
            if oldest.size:
                os.ftruncate(oldest.fd, 0)  # appends (O_APPEND) restart at 0
                oldest.size = 0
                self._read_offset = 0
            return

    # -- both ------------------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        return self._pending

    @property
    def pending_records(self) -> int:
        return self._pending // self.itemsize

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def close(self) -> None:
        with self._lock:
            for segment in self._segments:
                os.close(segment.fd)
            self._segments = []

    def _open_segment(self, number: int) -> _Segment:
        path = self._path(number)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        segment = _Segment(number, path, fd, os.fstat(fd).st_size)
        self._segments.append(segment)
        return segment

    def _path(self, number: int) -> Path:
        return self.stem.with_name(f"{self.stem.name}.{number:08d}")

    def _existing_numbers(self) -> list[int]:
        numbers = []
        prefix = self.stem.name + "."
        for entry in self.stem.parent.iterdir():
            suffix = entry.name[len(prefix):]
            if entry.name.startswith(prefix) and suffix.isdigit():
                numbers.append(int(suffix))
        return numbers


def journal_pending_records(stem: str | os.PathLike, itemsize: int) -> int:
    """Records in a journal on disk (another process's, possibly): 0 when it holds nothing unwritten.

    Reads file sizes only. A writer truncates its journal once everything in it is committed, so
    a non-zero answer means "not yet in the database" (or not yet known to be).
    """
    stem = Path(stem)
    if not stem.parent.is_dir():
        return 0
    total = 0
    prefix = stem.name + "."
    for entry in stem.parent.iterdir():
        if entry.name.startswith(prefix) and entry.name[len(prefix):].isdigit():
            try:
                total += entry.stat().st_size // itemsize
            except FileNotFoundError:
                pass
    return total
