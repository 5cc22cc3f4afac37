"""Where everything lives in a ring's shared-memory segment: offsets and sizes only (as Agrona's
``RingBufferDescriptor``). Word indices are into the ``ctrl`` int64 view of the header.

The header is 8 blocks of 128 bytes. A block is two cache lines because the adjacent-line prefetcher
pulls lines in pairs: a cursor written by one core must not share a 128-byte block with anything the
other core writes, or every write bounces the pair between the cores (false sharing)::

    byte    block                          words (int64 index: meaning)                  written by
    0       IDENTITY        0 magic  1 header format version (written LAST = ready)     creator, once
                            2 layout fingerprint  3 capacity (power of two)
                            4 record size (bytes)  5 backpressure (0 block, 1 drop)
                            6 header bytes (records start here)  7 layout version
                            8..11 layout name (32 bytes ASCII, NUL padded)
    128     REGISTRATION    16 producer pid  17 consumer pid  18 heartbeat ns           attach / runner
    256     PRODUCER_CURSOR 32 producer cursor: sequences < it are published            producer
    384     PRODUCER_OWN    48 cached consumer cursor  49 full events (claims refused    producer
                            for lack of room, once per episode)  50 drops
                            51 "ring is full" flag (counts each full episode once)
                            52 consumer wakes issued  53 producer parks
    512     CONSUMER_CURSOR 64 consumer cursor: sequences < it are released             consumer
    640     CONSUMER_OWN    80 cached producer cursor  81 producer wakes issued          consumer
                            82 consumer parks
    768     CONSUMER_WAKE   96 consumer parked flag  97 consumer doorbell (futex word)   consumer sets the
                                                                                        flag, producer rings
    896     PRODUCER_WAKE   112 producer parked flag  113 producer doorbell (futex word) the reverse
    1024    records[capacity] of record_size bytes; sequence s lives at s & (capacity - 1)

Sequences are int64 counts that never wrap (2^63 records at 1e9/s is 292 years). Cursors are only
ever written by their owner, so the ring needs no read-modify-write on its hot path.
"""

from __future__ import annotations

MAGIC = 0x4846_5453_484D_5231  # "HFTSHMR1"
FORMAT_VERSION = 1

WORD_BYTES = 8
BLOCK_BYTES = 128
BLOCK_WORDS = BLOCK_BYTES // WORD_BYTES
HEADER_BLOCKS = 8
HEADER_BYTES = HEADER_BLOCKS * BLOCK_BYTES
HEADER_WORDS = HEADER_BYTES // WORD_BYTES
LAYOUT_NAME_BYTES = 32

# block 0: identity, written once by the creator
MAGIC_WORD = 0
VERSION_WORD = 1
FINGERPRINT_WORD = 2
CAPACITY_WORD = 3
RECORD_SIZE_WORD = 4
BACKPRESSURE_WORD = 5
HEADER_BYTES_WORD = 6
LAYOUT_VERSION_WORD = 7
LAYOUT_NAME_WORD = 8  # 4 words

# block 1: registration and liveness
PRODUCER_PID = 16
CONSUMER_PID = 17
HEARTBEAT_NS = 18

# block 2: the producer cursor alone
PRODUCER_CURSOR = 32

# block 3: producer-private state and producer-written counters
CACHED_CONSUMER_CURSOR = 48
FULL_EVENTS = 49
DROPS = 50
FULL_FLAG = 51
CONSUMER_WAKES = 52
PRODUCER_PARKS = 53

# block 4: the consumer cursor alone
CONSUMER_CURSOR = 64

# block 5: consumer-private state and consumer-written counters
CACHED_PRODUCER_CURSOR = 80
PRODUCER_WAKES = 81
CONSUMER_PARKS = 82

# block 6/7: park flags and futex doorbells (a futex uses the low 32 bits of the word)
CONSUMER_PARKED = 96
CONSUMER_DOORBELL = 97
PRODUCER_PARKED = 112
PRODUCER_DOORBELL = 113

BACKPRESSURE_BLOCK = 0
BACKPRESSURE_DROP = 1
BACKPRESSURE_MODES = {"block": BACKPRESSURE_BLOCK, "drop": BACKPRESSURE_DROP}


def segment_bytes(capacity: int, record_size: int) -> int:
    """Size of a ring's segment: the header then the records."""
    return HEADER_BYTES + capacity * record_size
