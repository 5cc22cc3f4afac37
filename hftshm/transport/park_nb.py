"""Parking a compiled loop on its rings' doorbells without leaving compiled code: ``park(bundle)``.

The compiled twin of ``doorbell.Parker.park`` for a loop that owns its duty cycle
(``runtime.trading_cycle_nb.run_slice``). Why it exists: a loop that returned to Python to park
paid, on every wake-up, the Python side of the wait strategy and the call back into compiled code
(unboxing ~100 arrays, tens of microseconds) between the producer's doorbell and the first look at
the ring: the tick that woke the process waited for all of it. Parked here, a wake-up resumes the
loop at the instruction after the syscall.

The hand-shake is ``doorbell``'s (see its docstring): arm every ring (doorbell value read, parked
flag set), full fence plus the heavy barrier (``membarrier``, the command ``barrier`` chose for
this process), re-check every ring, then ``futex_waitv`` on all consumer doorbells; disarm. A
producer's ``commit`` sees the parked flag and rings. When an input already holds data the loop
gets ``HAS_DATA`` back without sleeping: it cannot act on it (a full output), and the Python
parker, which also parks on full outputs' producer doorbells, takes over.

``ParkBundle.waiters`` is the kernel's ``struct futex_waitv`` array (three int64 words per ring:
expected value, address, flags) and ``deadline`` its ``struct timespec``, preallocated, so a park
allocates nothing. libc's ``syscall`` is linked by name, so kernels using this still cache.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.transport import descriptor as d
from hftshm.transport.atomics import address_of
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.doorbell_nb import _syscall
from hftshm.transport.ring_nb import arm_consumer_park, disarm_consumer_park, full_fence, has_data

SYS_MEMBARRIER = 324  # x86-64
SYS_FUTEX_WAITV = 449
FUTEX2_SIZE_U32 = 0x02
CLOCK_MONOTONIC = 1
UNSAFE_TIMEOUT_NS = 1_000_000  # without a heavy barrier a wake-up may be missed: sleep at most this
WAITV_WORDS = 3  # struct futex_waitv: u64 val, u64 uaddr, u32 flags + u32 reserved

# park() results
HAS_DATA = -1  # an input held data: not parked
TIMED_OUT = 0
WOKEN = 1

# ParkBundle.counts
ARMS, PARKS, WAKEUPS = 0, 1, 2


class ParkBundle(NamedTuple):
    enabled: int  # 0: the loop returns to Python to wait instead (spin-yield, no futex_waitv)
    ctrls: tuple  # the consumed rings' control words (one numba type: a UniTuple)
    waiters: np.ndarray  # int64[WAITV_WORDS * len(ctrls)]
    deadline: np.ndarray  # int64[2]: absolute CLOCK_MONOTONIC timespec
    timeout_ns: int  # longest sleep (the runner writes heartbeats after it)
    barrier_command: int  # membarrier command for the heavy barrier; 0: none (sleeps capped)
    counts: np.ndarray  # int64[3]: ARMS, PARKS, WAKEUPS


def park_bundle(ctrls, timeout_s: float, barrier_command: int, enabled: bool = True) -> ParkBundle:
    ctrls = tuple(ctrls)
    return ParkBundle(int(enabled and len(ctrls) > 0), ctrls, np.zeros(WAITV_WORDS * max(len(ctrls), 1), np.int64),
                      np.zeros(2, np.int64), int(timeout_s * 1e9), int(barrier_command), np.zeros(3, np.int64))


@njit(cache=True, nogil=True)
def park(p):
    """Sleep until a producer rings one of ``p.ctrls`` or ``p.timeout_ns`` passes. Returns WOKEN,
    TIMED_OUT, or HAS_DATA (an input held data; nothing slept)."""
    n = len(p.ctrls)
    p.counts[ARMS] += 1
    for i in range(n):
        bell = arm_consumer_park(p.ctrls[i])
        p.waiters[WAITV_WORDS * i] = bell & 0xFFFF_FFFF
        p.waiters[WAITV_WORDS * i + 1] = address_of(p.ctrls[i], d.CONSUMER_DOORBELL)
        p.waiters[WAITV_WORDS * i + 2] = FUTEX2_SIZE_U32
    full_fence()
    timeout_ns = p.timeout_ns
    if p.barrier_command == 0 or _syscall(SYS_MEMBARRIER, p.barrier_command, 0, 0, 0, 0, 0) != 0:
        timeout_ns = min(timeout_ns, UNSAFE_TIMEOUT_NS)
    waiting = False
    for i in range(n):
        if has_data(p.ctrls[i]):
            waiting = True
    if waiting:
        for i in range(n):
            disarm_consumer_park(p.ctrls[i], False)
        return HAS_DATA
    deadline_ns = monotonic_ns() + timeout_ns
    p.deadline[0] = deadline_ns // 1_000_000_000
    p.deadline[1] = deadline_ns % 1_000_000_000
    _syscall(SYS_FUTEX_WAITV, address_of(p.waiters, 0), n, 0, address_of(p.deadline, 0), CLOCK_MONOTONIC, 0)
    woken = TIMED_OUT
    for i in range(n):
        # a doorbell that moved is a wake-up (also when it moved before the sleep: EAGAIN)
        if (p.ctrls[i][d.CONSUMER_DOORBELL] & 0xFFFF_FFFF) != p.waiters[WAITV_WORDS * i]:
            woken = WOKEN
        disarm_consumer_park(p.ctrls[i], True)
    p.counts[PARKS] += 1
    p.counts[WAKEUPS] += woken
    return woken
