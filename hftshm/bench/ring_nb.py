"""numba kernels for ``hftshm bench ring``: hftshm ring producers/consumers and cache-line ping-pong.

Clock: ``clock_nb.monotonic_ns`` (CLOCK_MONOTONIC via the vDSO, ~24 ns a read here; the kernel's
clocksource is the invariant TSC, shared by both cores). Back-to-back runs stamp one record in
``stride`` so the clock read does not dominate a ~10 ns per-record path; the consumer reads the clock
only for stamped records. Paced runs stamp every record.
"""

from __future__ import annotations

from numba import njit

from hftshm.transport import ring_nb
from hftshm.transport.atomics import cpu_relax, load_acquire, store_release
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.wait_nb import pause

PING_SEQ, PING_STAMP, PONG_SEQ = 0, 1, 32  # ping on block 0, pong on block 2 (own 128-byte blocks)
FULL_PAUSES = 8
THROUGHPUT_EMPTY_PAUSES = 32


@njit(cache=True, nogil=True)
def _wait_until(deadline_ns):
    now = monotonic_ns()
    while now < deadline_ns:
        cpu_relax()
        now = monotonic_ns()
    return now


@njit(cache=True, nogil=True)
def produce_each(ctrl, records, count, stride, interval_ns):
    """One record per claim/commit. ``interval_ns`` > 0 paces sends (stamps every record)."""
    next_send = monotonic_ns()
    for seq in range(count):
        stamp = 0
        if interval_ns > 0:
            next_send += interval_ns
            stamp = _wait_until(next_send)
        elif seq % stride == 0:
            stamp = monotonic_ns()
        claimed = ring_nb.try_claim(ctrl, 1)
        while claimed < 0:
            pause(FULL_PAUSES)
            claimed = ring_nb.try_claim(ctrl, 1)
        record = records[ring_nb.slot(ctrl, claimed)]
        record.seq = seq
        record.publish_ts_ns = stamp
        record.price = seq * 0.5
        ring_nb.commit(ctrl, claimed, 1)
    return count


@njit(cache=True, nogil=True)
def produce_batch(ctrl, records, count, batch):
    """As many free slots as there are (up to ``batch``) per claim/commit; one clock read a batch."""
    written = 0
    while written < count:
        n = ring_nb.claimable(ctrl, min(batch, count - written))
        if n <= 0:
            pause(FULL_PAUSES)
            continue
        claimed = ring_nb.try_claim(ctrl, n)
        stamp = monotonic_ns()
        for i in range(n):
            record = records[ring_nb.slot(ctrl, claimed + i)]
            record.seq = written + i
            record.publish_ts_ns = stamp
            record.price = (written + i) * 0.5
        ring_nb.commit(ctrl, claimed, n)
        written += n
    return written


@njit(cache=True, nogil=True)
def consume(ctrl, records, count, batch, stride, samples, mark_ns, mark_count, empty_pauses):
    """Read ``count`` records, up to ``batch`` per poll. Latency of every ``stride``-th sequence
    goes to ``samples``; arrival time and count at the first record and then about every
    ``count / (len(mark_ns) - 1)`` records go to ``mark_ns``/``mark_count`` (throughput windows).
    Returns (samples taken, sequence errors, marks taken)."""
    received = 0
    taken = 0
    errors = 0
    windows = len(mark_ns) - 1
    window = max(count // windows, 1)
    marks = 0
    next_mark = 0
    while received < count:
        n = ring_nb.try_poll(ctrl, batch)
        if n == 0:
            if empty_pauses == 0:
                cpu_relax()
            else:
                pause(empty_pauses)
            continue
        base = ring_nb.consumer_position(ctrl)
        now = 0
        for i in range(n):
            record = records[ring_nb.slot(ctrl, base + i)]
            seq = record.seq
            if seq != received + i:
                errors += 1
            if seq % stride == 0 and taken < len(samples):
                if now == 0:
                    now = monotonic_ns()
                samples[taken] = now - record.publish_ts_ns
                taken += 1
        ring_nb.release(ctrl, n)
        if received >= next_mark and marks < len(mark_ns):
            mark_ns[marks] = monotonic_ns() if now == 0 else now
            mark_count[marks] = received
            marks += 1
            next_mark += window
        received += n
    if marks < len(mark_ns):
        mark_ns[marks] = monotonic_ns()
        mark_count[marks] = received
        marks += 1
    return taken, errors, marks


@njit(cache=True, nogil=True)
def ping(ctrl, count, interval_ns):
    """Write a stamped sequence to block 0, wait for the echo on block 2. Returns elapsed ns."""
    start = monotonic_ns()
    next_send = start
    for seq in range(1, count + 1):
        if interval_ns > 0:
            next_send += interval_ns
            _wait_until(next_send)
        ctrl[PING_STAMP] = monotonic_ns()
        store_release(ctrl, PING_SEQ, seq)
        while load_acquire(ctrl, PONG_SEQ) != seq:
            cpu_relax()
    return monotonic_ns() - start


@njit(cache=True, nogil=True)
def pong(ctrl, count, samples, mark_ns, mark_count):
    """Spin for each ping, record its one-way latency, echo it; windows as in ``consume``.
    Returns marks taken."""
    windows = len(mark_ns) - 1
    window = max(count // windows, 1)
    marks = 0
    for seq in range(1, count + 1):
        while load_acquire(ctrl, PING_SEQ) != seq:
            cpu_relax()
        now = monotonic_ns()
        if seq <= len(samples):
            samples[seq - 1] = now - ctrl[PING_STAMP]
        store_release(ctrl, PONG_SEQ, seq)
        if (seq - 1) % window == 0 and marks < len(mark_ns):
            mark_ns[marks] = now
            mark_count[marks] = seq - 1
            marks += 1
    if marks < len(mark_ns):
        mark_ns[marks] = monotonic_ns()
        mark_count[marks] = count
        marks += 1
    return marks
