"""One shared-memory segment holding every latency histogram of a run.

The supervisor creates it once per run from the ``HISTOGRAMS`` names of every worker, hands each
worker views of its own histograms (``ctx.histograms[name]``), and the metrics collector attaches
to it by name at scrape time. Views are plain int64 arrays, so njit kernels record into shared
memory directly. Layout (all little-endian int64 words)::

    header  (64 B)   magic, version, count, slots per histogram, name bytes, created (unix ns)
    names   (count x 64 B)  NUL-padded UTF-8 histogram names, in creation order
    data    (count x SLOTS x 8 B)  one histogram per name (``hftshm.metrics.histogram_nb``)

Names are free-form but by convention ``<worker>.<stage>`` (``risk.check``, ``oms.hop``): the
collector exports them as ``hftshm_latency_seconds{worker="risk", stage="check"}``.
"""

from __future__ import annotations

import time

import numpy as np

from hftshm.metrics.histogram_nb import SLOTS
from hftshm.transport.segment import Segment, SegmentNotFound

MAGIC = 0x4846_544D_4554_5231  # "HFTMETR1"
VERSION = 1
NAME_BYTES = 64
_HEADER_WORDS = 8
_HEADER_BYTES = _HEADER_WORDS * 8
MAX_HISTOGRAMS = 4096


class MetricsSegmentError(RuntimeError):
    """The segment is missing, not a metrics segment, of another version, or a name is bad."""


def _validate_names(names: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise MetricsSegmentError(f"histogram name {name!r} must be a non-empty string")
        if len(name.encode()) >= NAME_BYTES:
            raise MetricsSegmentError(f"histogram name {name!r} is longer than {NAME_BYTES - 1} bytes")
        if name in seen:
            raise MetricsSegmentError(f"histogram name {name!r} is given twice")
        seen.add(name)
    if len(names) > MAX_HISTOGRAMS:
        raise MetricsSegmentError(f"{len(names)} histograms; at most {MAX_HISTOGRAMS}")
    return list(names)


def segment_size(count: int) -> int:
    return _HEADER_BYTES + count * NAME_BYTES + count * SLOTS * 8


class MetricsSegment:
    """Histograms in shared memory. ``create`` in the supervisor, ``attach`` anywhere else."""

    def __init__(self, shm: Segment, names: list[str], owner: bool):
        self._shm = shm
        self._owner = owner
        self.names: tuple[str, ...] = tuple(names)
        count = len(names)
        self._header = np.ndarray((_HEADER_WORDS,), dtype="<i8", buffer=shm.buf, offset=0)
        data_offset = _HEADER_BYTES + count * NAME_BYTES
        self._data = np.ndarray((count, SLOTS), dtype="<i8", buffer=shm.buf, offset=data_offset)
        self._index = {name: i for i, name in enumerate(names)}

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, histogram_names: list[str] | tuple[str, ...]) -> "MetricsSegment":
        """Create the segment ``name`` (a POSIX shm name) with one zeroed histogram per name."""
        names = _validate_names(list(histogram_names))
        try:
            shm = Segment.create(name, segment_size(len(names)))
        except FileExistsError:
            raise MetricsSegmentError(
                f"shared memory {name!r} already exists (a run still going, or one that crashed: "
                f"unlink /dev/shm/{name.lstrip('/')} if nothing uses it)"
            ) from None
        table = np.ndarray((len(names), NAME_BYTES), dtype=np.uint8, buffer=shm.buf, offset=_HEADER_BYTES)
        for i, hist_name in enumerate(names):
            encoded = hist_name.encode()
            table[i, : len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
        header = np.ndarray((_HEADER_WORDS,), dtype="<i8", buffer=shm.buf, offset=0)
        header[1:6] = (VERSION, len(names), SLOTS, NAME_BYTES, time.time_ns())
        header[0] = MAGIC  # last: an attach never sees a half-written segment as valid
        return cls(shm, names, owner=True)

    @classmethod
    def attach(cls, name: str) -> "MetricsSegment":
        """Attach to an existing segment; its names and layout are read from its header."""
        try:
            shm = Segment.attach(name)
        except SegmentNotFound:
            raise MetricsSegmentError(f"no metrics segment {name!r} (is the platform running?)") from None
        try:
            header = np.ndarray((_HEADER_WORDS,), dtype="<i8", buffer=shm.buf, offset=0).copy()
            if shm.size < _HEADER_BYTES or header[0] != MAGIC:
                raise MetricsSegmentError(f"shared memory {name!r} is not a metrics segment")
            if header[1] != VERSION or header[3] != SLOTS or header[4] != NAME_BYTES:
                raise MetricsSegmentError(
                    f"metrics segment {name!r} has version {header[1]} with {header[3]} slots; "
                    f"this build reads version {VERSION} with {SLOTS} slots"
                )
            count = int(header[2])
            table = np.ndarray((count, NAME_BYTES), dtype=np.uint8, buffer=shm.buf, offset=_HEADER_BYTES)
            names = [bytes(row).rstrip(b"\0").decode() for row in table]
            del table, header
            return cls(shm, names, owner=False)
        except BaseException:
            shm.close()
            raise

    def close(self) -> None:
        """Drop this process's mapping (views handed out become invalid)."""
        self._header = self._data = None  # type: ignore[assignment]
        # False if a caller still holds a view: the mapping then goes with the last view
        self._shm.close()

    def unlink(self) -> None:
        """Remove the segment name (the creator does this at the end of the run)."""
        self._shm.unlink()

    def __enter__(self) -> "MetricsSegment":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self._owner:
            self.unlink()

    # -- access ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._shm.name

    @property
    def created_unix_ns(self) -> int:
        return int(self._header[5])

    def histogram(self, name: str) -> np.ndarray:
        """The live int64 view of histogram ``name`` (record into it with ``histogram.record``)."""
        try:
            return self._data[self._index[name]]
        except KeyError:
            raise KeyError(f"no histogram {name!r} in metrics segment {self.name!r}; "
                           f"it has {sorted(self._index)}") from None

    def histograms(self, names: list[str] | tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Views by name (all, or the given ones): what the supervisor puts in ``ctx.histograms``."""
        return {n: self.histogram(n) for n in (self.names if names is None else names)}

    def snapshot(self) -> dict[str, np.ndarray]:
        """Private copies of every histogram, taken at one moment, for export."""
        data = self._data.copy()
        return {name: data[i] for i, name in enumerate(self.names)}

    def reset(self) -> None:
        """Zero every histogram (tests, or between runs that reuse one segment)."""
        self._data[:] = 0
