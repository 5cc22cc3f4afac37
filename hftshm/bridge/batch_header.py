"""The header of one bridge message: a batch of ring records sent over NATS JetStream.

One NATS message carries many records of one layout, as their raw ring bytes, behind a fixed
48-byte header (little-endian int64 words; declared here once, as the ring header is in
``hftshm.transport.descriptor``)::

    byte  word  field          meaning
    0     0     magic          "HFTSHMB1": this is a bridge batch
    8     1     fingerprint    layout fingerprint of the records (hftshm.transport.layout); the
                               importer refuses a batch whose layout differs from its ring's
    16    2     first_seq      sequence of the first record in the exporting ring (its consumer
                               cursor: a count of records since that ring was created)
    24    3     count (low 32 bits) | flags (high 32 bits)
                               records in the batch; flag END = the exporting platform finished
                               (count 0), the importer's worker then finishes too; flag START
                               (count 0, on ``<subject>.start``) = a new run begins here
    32    4     record_size    bytes per record (the payload is count * record_size bytes)
    40    5     epoch          the exporting run's start (ns since the epoch, from its manifest):
                               sequences restart at 0 when the exporting platform restarts, the
                               epoch tells a new stream from a redelivered old one
    48          records[count] (count * record_size bytes, exactly as in the ring)

Sequences make the import exactly-once: a batch entirely below the importer's next expected
sequence is a duplicate (a redelivery), dropped and counted; a batch starting above it is a gap
(records the stream no longer holds: retention exceeded, or the exporter lost them), reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAGIC = 0x3142_4D48_5354_4648  # b"HFTSHMB1" little-endian
HEADER_BYTES = 48
HEADER_WORDS = HEADER_BYTES // 8

MAGIC_WORD = 0
FINGERPRINT_WORD = 1
FIRST_SEQ_WORD = 2
COUNT_FLAGS_WORD = 3
RECORD_SIZE_WORD = 4
EPOCH_WORD = 5

FLAG_END = 1
FLAG_START = 2
START_SUFFIX = ".start"  # the subject of a run's START marker: <subject>.start
COUNT_MASK = 0xFFFF_FFFF


class BatchError(ValueError):
    """A message is not a valid bridge batch (truncated, foreign, inconsistent sizes)."""


@dataclass(frozen=True)
class BatchHeader:
    fingerprint: int
    first_seq: int
    count: int
    record_size: int
    epoch: int
    flags: int = 0

    @property
    def end(self) -> bool:
        return bool(self.flags & FLAG_END)

    @property
    def next_seq(self) -> int:
        return self.first_seq + self.count


def encode(fingerprint: int, first_seq: int, records: np.ndarray | bytes, record_size: int, epoch: int,
           flags: int = 0) -> bytes:
    """One message: the header then the records' bytes (one copy, into the message)."""
    payload = records if isinstance(records, (bytes, bytearray, memoryview)) else records.view(np.uint8)
    size = len(payload) if isinstance(payload, (bytes, bytearray)) else payload.nbytes
    if size % record_size:
        raise BatchError(f"payload of {size} bytes is not a whole number of {record_size}-byte records")
    count = size // record_size
    message = bytearray(HEADER_BYTES + size)
    words = np.frombuffer(message, dtype="<i8", count=HEADER_WORDS)
    words[MAGIC_WORD] = MAGIC
    words[FINGERPRINT_WORD] = fingerprint
    words[FIRST_SEQ_WORD] = first_seq
    words[COUNT_FLAGS_WORD] = (flags << 32) | count
    words[RECORD_SIZE_WORD] = record_size
    words[EPOCH_WORD] = epoch
    message[HEADER_BYTES:] = payload if not isinstance(payload, np.ndarray) else payload.tobytes()
    return bytes(message)


def decode(message: bytes) -> tuple[BatchHeader, memoryview]:
    """The header and a view of the records' bytes; ``BatchError`` if the message is not a batch."""
    if len(message) < HEADER_BYTES:
        raise BatchError(f"message of {len(message)} bytes is shorter than the {HEADER_BYTES}-byte batch header")
    words = np.frombuffer(message, dtype="<i8", count=HEADER_WORDS)
    if int(words[MAGIC_WORD]) != MAGIC:
        raise BatchError(f"message is not an hftshm bridge batch (magic {int(words[MAGIC_WORD]) & (2**64 - 1):#x})")
    count_flags = int(words[COUNT_FLAGS_WORD])
    header = BatchHeader(fingerprint=int(words[FINGERPRINT_WORD]), first_seq=int(words[FIRST_SEQ_WORD]),
                         count=count_flags & COUNT_MASK, record_size=int(words[RECORD_SIZE_WORD]),
                         epoch=int(words[EPOCH_WORD]), flags=count_flags >> 32)
    if header.record_size <= 0 or len(message) - HEADER_BYTES != header.count * header.record_size:
        raise BatchError(f"batch says {header.count} records of {header.record_size} bytes but carries "
                         f"{len(message) - HEADER_BYTES} bytes")
    return header, memoryview(message)[HEADER_BYTES:]
