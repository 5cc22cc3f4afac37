"""Lock-free single-producer single-consumer ring: the numba kernels over the ``ctrl`` header array.

Every function takes ``ctrl`` (the int64 header, ``Ring.ctrl``) and never raises or allocates; they
are meant to be called from inside your own ``@njit`` kernels. Record for sequence ``s`` is
``records[s & (capacity - 1)]`` (``slot(ctrl, s)``). Producer side::

    seq = try_claim(ctrl, n)              # or offer(ctrl, n): honours the ring's backpressure mode
    if seq >= 0:
        for i in range(n): records[slot(ctrl, seq + i)] = ...
        commit(ctrl, seq, n)              # publish; wakes the consumer if it is parked

Consumer side::

    n = try_poll(ctrl, max_n)             # 0 = NOTHING_AVAILABLE
    seq = consumer_position(ctrl)
    for i in range(n): use(records[slot(ctrl, seq + i)])
    release(ctrl, n)                      # frees the slots; wakes a producer blocked on a full ring

Ordering (why it is correct): the producer writes records, then ``store_release`` of its cursor; the
consumer ``load_acquire``s the cursor before reading records, so it never sees a half-written record.
Symmetrically the producer acquires the consumer cursor before overwriting slots. Each side caches the
other's cursor on its own cache line and re-reads the shared one only when the cache says "no room"/
"no data", so in steady state each side touches the other's line once per batch, not per record.

Wake-ups (Dekker hand-shake, see ``doorbell``): a parking consumer sets its parked flag, issues a
process-wide barrier (``barrier.heavy_barrier``: membarrier), and re-checks for work before sleeping;
``commit`` stores the cursor and reads the flag with only a compiler barrier between them, because
the parker's membarrier supplies the hardware barrier on the producer's CPU (asymmetric fence: the
rare side pays, the per-record side costs nothing). One of the two always sees the other, so a
wake-up is never lost, and the producer pays the syscall only when the flag is set (it clears it
with a CAS, so one park costs one wake however many commits follow). ``release`` mirrors this for a
producer parked on a full ring.
"""

from __future__ import annotations

from numba import njit

from hftshm.transport import barrier
from hftshm.transport import descriptor as d
from hftshm.transport.atomics import compare_exchange, compiler_fence, fence, load_acquire, store_release
from hftshm.transport.doorbell_nb import ring_doorbell

# every process that runs these kernels must receive the parkers' expedited barriers
barrier.register_process()

INSUFFICIENT_CAPACITY = -1  # try_claim/offer: not enough free slots now (block mode: retry later)
DROPPED = -2  # offer in drop mode: the ring was full, the records were dropped and counted
NOTHING_AVAILABLE = 0  # try_poll: nothing to read


@njit(cache=True, nogil=True, inline="always")
def capacity(ctrl):
    return ctrl[d.CAPACITY_WORD]


@njit(cache=True, nogil=True, inline="always")
def slot(ctrl, seq):
    """Index into ``records`` of sequence ``seq``."""
    return seq & (ctrl[d.CAPACITY_WORD] - 1)


@njit(cache=True, nogil=True, inline="always")
def producer_position(ctrl):
    """Next sequence the producer will claim (the producer's own view; exact on the producer side)."""
    return load_acquire(ctrl, d.PRODUCER_CURSOR)


@njit(cache=True, nogil=True, inline="always")
def consumer_position(ctrl):
    """Sequence of the first record ``try_poll`` counts (the next one to read)."""
    return load_acquire(ctrl, d.CONSUMER_CURSOR)


# ---------------------------------------------------------------- producer side


@njit(cache=True, nogil=True)
def free_capacity(ctrl):
    """Slots the producer can claim now (re-reads the consumer cursor if the cache says full)."""
    claimed = ctrl[d.PRODUCER_CURSOR]
    cap = ctrl[d.CAPACITY_WORD]
    free = cap - (claimed - ctrl[d.CACHED_CONSUMER_CURSOR])
    if free <= 0:
        consumed = load_acquire(ctrl, d.CONSUMER_CURSOR)
        ctrl[d.CACHED_CONSUMER_CURSOR] = consumed
        free = cap - (claimed - consumed)
    return free


@njit(cache=True, nogil=True)
def claimable(ctrl, max_n):
    """How many slots (<= ``max_n``) ``try_claim`` would grant now; re-reads the consumer cursor
    only when the cached one says fewer than ``max_n``. For batch producers: claim what there is."""
    claimed = ctrl[d.PRODUCER_CURSOR]
    cap = ctrl[d.CAPACITY_WORD]
    free = cap - (claimed - ctrl[d.CACHED_CONSUMER_CURSOR])
    if free < max_n:
        consumed = load_acquire(ctrl, d.CONSUMER_CURSOR)
        ctrl[d.CACHED_CONSUMER_CURSOR] = consumed
        free = cap - (claimed - consumed)
    if free > max_n:
        return max_n
    if free < 0:
        return 0
    return free


@njit(cache=True, nogil=True)
def _mark_full(ctrl):
    # one event per episode of fullness, not per retry, so a blocked producer spinning on a full
    # ring does not inflate the counter
    if ctrl[d.FULL_FLAG] == 0:
        ctrl[d.FULL_FLAG] = 1
        store_release(ctrl, d.FULL_EVENTS, ctrl[d.FULL_EVENTS] + 1)


@njit(cache=True, nogil=True)
def try_claim(ctrl, n):
    """First sequence of ``n`` free slots, or ``INSUFFICIENT_CAPACITY`` (all or nothing).

    Does not publish anything: write the records, then ``commit(ctrl, seq, n)``."""
    cap = ctrl[d.CAPACITY_WORD]
    if n <= 0 or n > cap:
        return INSUFFICIENT_CAPACITY
    claimed = ctrl[d.PRODUCER_CURSOR]
    wrap_point = claimed + n - cap
    if wrap_point > ctrl[d.CACHED_CONSUMER_CURSOR]:
        consumed = load_acquire(ctrl, d.CONSUMER_CURSOR)
        ctrl[d.CACHED_CONSUMER_CURSOR] = consumed
        if wrap_point > consumed:
            _mark_full(ctrl)
            return INSUFFICIENT_CAPACITY
    if ctrl[d.FULL_FLAG] != 0:
        ctrl[d.FULL_FLAG] = 0
    return claimed


@njit(cache=True, nogil=True)
def offer(ctrl, n):
    """``try_claim`` honouring the ring's backpressure: in drop mode a full ring drops the ``n``
    records (counted in ``drops``) and returns ``DROPPED``; in block mode returns
    ``INSUFFICIENT_CAPACITY`` and the caller retries (``Ring.wait_for_space`` waits)."""
    seq = try_claim(ctrl, n)
    if seq < 0 and ctrl[d.BACKPRESSURE_WORD] == d.BACKPRESSURE_DROP:
        store_release(ctrl, d.DROPS, ctrl[d.DROPS] + n)
        return DROPPED
    return seq


@njit(cache=True, nogil=True)
def wake_consumer_if_parked(ctrl):
    """Ring the consumer's doorbell if it is parked (after the cursor store). Returns 1 if it rang."""
    compiler_fence()
    if load_acquire(ctrl, d.CONSUMER_PARKED) != 0:
        if compare_exchange(ctrl, d.CONSUMER_PARKED, 1, 0) == 1:
            ring_doorbell(ctrl, d.CONSUMER_DOORBELL)
            ctrl[d.CONSUMER_WAKES] += 1
            return 1
    return 0


@njit(cache=True, nogil=True)
def commit(ctrl, seq, n):
    """Publish sequences ``seq .. seq+n-1``. Returns 1 if the consumer was parked; the doorbell has
    already been rung (callers need not do anything), 0 otherwise."""
    store_release(ctrl, d.PRODUCER_CURSOR, seq + n)
    return wake_consumer_if_parked(ctrl)


@njit(cache=True, nogil=True)
def commit_quiet(ctrl, seq, n):
    """``commit`` without ringing a parked consumer: for a consumer that may wait (a write-behind
    writer), so the producer rings it later with ``wake_consumer_if_parked``, off its hot path.
    Still no lost wake-up: that later check of the parked flag also follows the cursor store."""
    store_release(ctrl, d.PRODUCER_CURSOR, seq + n)


# ---------------------------------------------------------------- consumer side


@njit(cache=True, nogil=True)
def try_poll(ctrl, max_n):
    """How many records (<= ``max_n``) are readable from ``consumer_position(ctrl)``; 0 if none."""
    consumed = ctrl[d.CONSUMER_CURSOR]
    available = ctrl[d.CACHED_PRODUCER_CURSOR] - consumed
    if available < max_n:
        published = load_acquire(ctrl, d.PRODUCER_CURSOR)
        ctrl[d.CACHED_PRODUCER_CURSOR] = published
        available = published - consumed
    if available > max_n:
        return max_n
    if available < 0:
        return 0
    return available


@njit(cache=True, nogil=True)
def wake_producer_if_parked(ctrl):
    """Ring the producer's doorbell if it is parked on a full ring (after the cursor store)."""
    compiler_fence()
    if load_acquire(ctrl, d.PRODUCER_PARKED) != 0:
        if compare_exchange(ctrl, d.PRODUCER_PARKED, 1, 0) == 1:
            ring_doorbell(ctrl, d.PRODUCER_DOORBELL)
            ctrl[d.PRODUCER_WAKES] += 1
            return 1
    return 0


@njit(cache=True, nogil=True)
def release(ctrl, n):
    """Free the next ``n`` read records for the producer. Returns 1 if a producer blocked on the
    full ring was parked (its doorbell has been rung), else 0."""
    store_release(ctrl, d.CONSUMER_CURSOR, ctrl[d.CONSUMER_CURSOR] + n)
    return wake_producer_if_parked(ctrl)


@njit(cache=True, nogil=True)
def has_data(ctrl):
    """True if a record is published and not yet released (fresh read, for a parking consumer)."""
    return load_acquire(ctrl, d.PRODUCER_CURSOR) > load_acquire(ctrl, d.CONSUMER_CURSOR)


@njit(cache=True, nogil=True)
def occupancy(ctrl):
    """Records published and not released (a snapshot)."""
    return load_acquire(ctrl, d.PRODUCER_CURSOR) - load_acquire(ctrl, d.CONSUMER_CURSOR)


# ---------------------------------------------------------------- parking (the slow path)


@njit(cache=True, nogil=True)
def arm_consumer_park(ctrl):
    """First half of parking a consumer: returns the doorbell value to sleep on and sets the parked
    flag. The caller then issues ``barrier.heavy_barrier()``, re-checks ``has_data`` on every ring,
    and only then sleeps (``doorbell.Parker``)."""
    bell = load_acquire(ctrl, d.CONSUMER_DOORBELL)
    store_release(ctrl, d.CONSUMER_PARKED, 1)
    return bell


@njit(cache=True, nogil=True)
def disarm_consumer_park(ctrl, slept):
    store_release(ctrl, d.CONSUMER_PARKED, 0)
    if slept:
        ctrl[d.CONSUMER_PARKS] += 1


@njit(cache=True, nogil=True)
def arm_producer_park(ctrl):
    bell = load_acquire(ctrl, d.PRODUCER_DOORBELL)
    store_release(ctrl, d.PRODUCER_PARKED, 1)
    return bell


@njit(cache=True, nogil=True)
def disarm_producer_park(ctrl, slept):
    store_release(ctrl, d.PRODUCER_PARKED, 0)
    if slept:
        ctrl[d.PRODUCER_PARKS] += 1


@njit(cache=True, nogil=True)
def full_fence():
    fence()


@njit(cache=True, nogil=True)
def resync_producer(ctrl):
    """A (re)starting producer refreshes its cached consumer cursor: the cache in shared memory was
    written by a previous process, and this process's later reads are not ordered after it."""
    ctrl[d.CACHED_CONSUMER_CURSOR] = load_acquire(ctrl, d.CONSUMER_CURSOR)
    store_release(ctrl, d.PRODUCER_PARKED, 0)


@njit(cache=True, nogil=True)
def resync_consumer(ctrl):
    """A (re)starting consumer refreshes its cached producer cursor (see ``resync_producer``) and
    clears a parked flag a killed predecessor may have left set."""
    ctrl[d.CACHED_PRODUCER_CURSOR] = load_acquire(ctrl, d.PRODUCER_CURSOR)
    store_release(ctrl, d.CONSUMER_PARKED, 0)


# ---------------------------------------------------------------- helpers for the Python batch API


@njit(cache=True, nogil=True)
def claim_contiguous(ctrl, max_n):
    """Free slots (<= ``max_n``) that are contiguous in ``records`` from the producer position: the
    zero-copy batch ``Ring.claim`` hands out. 0 when the ring is full (a full event is counted)."""
    cap = ctrl[d.CAPACITY_WORD]
    claimed = ctrl[d.PRODUCER_CURSOR]
    free = cap - (claimed - ctrl[d.CACHED_CONSUMER_CURSOR])
    if free < max_n:
        consumed = load_acquire(ctrl, d.CONSUMER_CURSOR)
        ctrl[d.CACHED_CONSUMER_CURSOR] = consumed
        free = cap - (claimed - consumed)
    if free <= 0 or max_n <= 0:
        if max_n > 0:
            _mark_full(ctrl)
        return 0
    if ctrl[d.FULL_FLAG] != 0:
        ctrl[d.FULL_FLAG] = 0
    to_end = cap - (claimed & (cap - 1))
    count = max_n
    if free < count:
        count = free
    if to_end < count:
        count = to_end
    return count


@njit(cache=True, nogil=True)
def poll_contiguous(ctrl, max_n):
    """Readable records (<= ``max_n``) contiguous in ``records`` from the consumer position."""
    available = try_poll(ctrl, max_n)
    cap = ctrl[d.CAPACITY_WORD]
    to_end = cap - (ctrl[d.CONSUMER_CURSOR] & (cap - 1))
    if to_end < available:
        return to_end
    return available


@njit(cache=True, nogil=True)
def count_drops(ctrl, n):
    """The producer discarded ``n`` records because the ring was full (drop mode)."""
    store_release(ctrl, d.DROPS, ctrl[d.DROPS] + n)


@njit(cache=True, nogil=True)
def store_word(ctrl, word, value):
    """Release-store of a header word from Python (e.g. the version word, written last)."""
    store_release(ctrl, word, value)


@njit(cache=True, nogil=True)
def load_word(ctrl, word):
    return load_acquire(ctrl, word)
