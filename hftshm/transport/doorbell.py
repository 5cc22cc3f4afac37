"""Parking a process until a producer rings, and ringing from Python: futex doorbells in ring headers.

Every ring header holds two futex words (``descriptor``): the consumer doorbell, rung by the producer
when it publishes to a parked consumer, and the producer doorbell, rung by the consumer when it frees
slots for a producer blocked on a full ring. A process that consumes several rings (a worker with
several inputs, or a composite process running several workers) parks ONCE on all of their consumer
doorbells with ``futex_waitv`` (Linux >= 5.16) and any producer wakes it. Waker and sleeper are
different processes, so these are shared futexes (no ``FUTEX_PRIVATE_FLAG``).

The hand-shake that makes a lost wake-up impossible (consumer side; the producer side is the mirror):

    consumer (``Parker.park``)                  producer (``ring_nb.commit``)
    bell = doorbell; parked = 1   (each ring)   cursor = seq + n        (release store)
    heavy_barrier()  (membarrier)                compiler barrier only
    if any ring has data: parked = 0; return     if parked: CAS parked 1->0, doorbell += 1,
    futex_waitv(doorbells, bells, timeout)                   FUTEX_WAKE(doorbell)
    parked = 0

Either the consumer's re-check sees the new cursor, or the producer sees ``parked`` and bumps the
doorbell, which makes ``futex_waitv`` return at once even if it has not started sleeping yet. The
membarrier gives the producer's CPU the full fence the hand-shake needs without the producer paying
for one on every commit (``barrier``). The timeout (default 50 ms) is only a safety net so the
runner keeps writing heartbeats; without any membarrier support sleeps are capped at 1 ms.

Runner usage: ``parker = Parker(inputs, outputs=outputs)`` once per process with the rings all its
workers consume and produce; ``parker.park()`` when idle (the ``spin-park`` wait strategy does this
for you). Producers never call anything: ``commit`` rings, and ``release`` rings a blocked producer.
"""

from __future__ import annotations

import ctypes
import errno
import time
from typing import Iterable

import numpy as np

from hftshm.transport import barrier
from hftshm.transport import descriptor as d

SYS_FUTEX = 202
SYS_FUTEX_WAITV = 449
FUTEX_WAIT = 0
FUTEX_WAKE = 1
FUTEX2_SIZE_U32 = 0x02
DEFAULT_PARK_TIMEOUT_S = 0.05
UNSAFE_PARK_TIMEOUT_S = 0.001  # cap on a sleep when no heavy barrier exists (a wake-up may be missed)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _FutexWaitv(ctypes.Structure):
    _fields_ = [("val", ctypes.c_uint64), ("uaddr", ctypes.c_uint64), ("flags", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32)]


def _ctrl_of(ring_or_ctrl) -> np.ndarray:
    return ring_or_ctrl.ctrl if hasattr(ring_or_ctrl, "ctrl") else ring_or_ctrl


def _word_address(ctrl: np.ndarray, word: int) -> int:
    return ctrl.ctypes.data + word * d.WORD_BYTES


def futex_wait(ctrl: np.ndarray, word: int, expected: int, timeout_s: float) -> None:
    """Sleep while the low 32 bits of ``ctrl[word]`` equal ``expected`` (or until the timeout)."""
    seconds = int(timeout_s)
    timeout = _Timespec(seconds, int((timeout_s - seconds) * 1e9))
    _libc.syscall(SYS_FUTEX, ctypes.c_void_p(_word_address(ctrl, word)), FUTEX_WAIT,
                  ctypes.c_uint32(expected & 0xFFFF_FFFF), ctypes.byref(timeout), None, 0)


def futex_wake(ctrl: np.ndarray, word: int) -> int:
    """Bump the doorbell ``ctrl[word]`` and wake every waiter (the Python twin of ``ring_doorbell``)."""
    from hftshm.transport.doorbell_nb import ring_doorbell

    return int(ring_doorbell(ctrl, word))


def _heavy_barrier() -> bool:
    from hftshm.transport import ring_nb

    ring_nb.full_fence()  # this CPU's own StoreLoad barrier (membarrier covers the other CPUs)
    return barrier.heavy_barrier()


def _probe_futex_waitv() -> bool:
    waiter = (_FutexWaitv * 1)()
    # an empty wait list is rejected with EINVAL where the syscall exists, ENOSYS where it does not
    result = _libc.syscall(SYS_FUTEX_WAITV, waiter, 0, 0, None, 0)
    return not (result == -1 and ctypes.get_errno() == errno.ENOSYS)


HAVE_FUTEX_WAITV = _probe_futex_waitv()


class Parker:
    """Parks the calling process until a producer publishes to any of ``inputs`` (rings or ctrl arrays).

    One Parker per process: give it the consumed rings of every worker the process runs, and the
    rings they produce into (``outputs``). Outputs matter only in block mode: when an input has data
    but the duty cycle did nothing, a full output is what stops the worker, so the park waits for the
    consumer of a full output to free space (its ``release`` rings the producer doorbell) instead of
    spinning on the input."""

    def __init__(self, inputs: Iterable, timeout_s: float = DEFAULT_PARK_TIMEOUT_S, outputs: Iterable = ()):
        self.ctrls = [_ctrl_of(r) for r in inputs]
        self.outputs = [_ctrl_of(r) for r in outputs]
        self.timeout_s = timeout_s
        self.arms = 0  # park attempts (each may let a producer ring once)
        self.parks = 0  # times this process actually slept
        self.wakeups = 0  # sleeps ended by a doorbell rather than the timeout
        self._waiters = (_FutexWaitv * max(len(self.ctrls), len(self.outputs), 1))()
        self._deadline = _Timespec()
        from hftshm.transport import ring_nb

        self._nb = ring_nb

    def park(self, timeout_s: float | None = None) -> bool:
        """Sleep until a producer rings (or a full output drains) or ``timeout_s`` passes. Returns
        False only on timeout."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        nb = self._nb
        if not self.ctrls:
            time.sleep(timeout_s)
            return False
        self.arms += 1
        for i, ctrl in enumerate(self.ctrls):
            self._arm(i, ctrl, d.CONSUMER_DOORBELL, nb.arm_consumer_park(ctrl))
        if not _heavy_barrier():
            timeout_s = min(timeout_s, UNSAFE_PARK_TIMEOUT_S)
        if any(nb.has_data(ctrl) for ctrl in self.ctrls):
            for ctrl in self.ctrls:
                nb.disarm_consumer_park(ctrl, False)
            return self._park_on_full_outputs(timeout_s)
        woken = self._sleep(self.ctrls, d.CONSUMER_DOORBELL, timeout_s)
        for ctrl in self.ctrls:
            nb.disarm_consumer_park(ctrl, True)
        self.parks += 1
        self.wakeups += woken
        return woken

    def _park_on_full_outputs(self, timeout_s: float) -> bool:
        nb = self._nb
        full = [ctrl for ctrl in self.outputs if nb.free_capacity(ctrl) <= 0]
        if not full:
            return True  # work is waiting: back to the duty cycle
        for i, ctrl in enumerate(full):
            self._arm(i, ctrl, d.PRODUCER_DOORBELL, nb.arm_producer_park(ctrl))
        if not _heavy_barrier():
            timeout_s = min(timeout_s, UNSAFE_PARK_TIMEOUT_S)
        if any(nb.free_capacity(ctrl) > 0 for ctrl in full):
            for ctrl in full:
                nb.disarm_producer_park(ctrl, False)
            return True
        woken = self._sleep(full, d.PRODUCER_DOORBELL, timeout_s)
        for ctrl in full:
            nb.disarm_producer_park(ctrl, True)
        self.parks += 1
        self.wakeups += woken
        return woken

    def _arm(self, i: int, ctrl: np.ndarray, word: int, bell: int) -> None:
        self._waiters[i].uaddr = _word_address(ctrl, word)
        self._waiters[i].flags = FUTEX2_SIZE_U32
        self._waiters[i].val = bell & 0xFFFF_FFFF

    def _sleep(self, ctrls: list, word: int, timeout_s: float) -> bool:
        if len(ctrls) == 1 or not HAVE_FUTEX_WAITV:
            # one doorbell (or an old kernel): plain FUTEX_WAIT on the first; with several doorbells
            # on an old kernel the timeout is shortened so the others are polled
            wait_s = timeout_s if len(ctrls) == 1 else min(timeout_s, 0.001)
            before = self._waiters[0].val
            futex_wait(ctrls[0], word, before, wait_s)
            return (int(ctrls[0][word]) & 0xFFFF_FFFF) != before
        deadline_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + int(timeout_s * 1e9)
        self._deadline.tv_sec, self._deadline.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        result = _libc.syscall(SYS_FUTEX_WAITV, self._waiters, len(ctrls), 0,
                               ctypes.byref(self._deadline), time.CLOCK_MONOTONIC)
        if result >= 0:
            return True
        return ctypes.get_errno() == errno.EAGAIN  # a doorbell moved before we slept: woken


def wait_for_space(ring_or_ctrl, n: int = 1, timeout_s: float = DEFAULT_PARK_TIMEOUT_S) -> bool:
    """A producer blocked on a full ring parks until the consumer frees ``n`` slots (or the timeout).
    Returns True if there is room now. The consumer's ``release`` rings the producer doorbell."""
    from hftshm.transport import ring_nb as nb

    ctrl = _ctrl_of(ring_or_ctrl)
    if nb.free_capacity(ctrl) >= n:
        return True
    bell = nb.arm_producer_park(ctrl)
    if not _heavy_barrier():
        timeout_s = min(timeout_s, UNSAFE_PARK_TIMEOUT_S)
    if nb.free_capacity(ctrl) >= n:
        nb.disarm_producer_park(ctrl, False)
        return True
    futex_wait(ctrl, d.PRODUCER_DOORBELL, bell, timeout_s)
    nb.disarm_producer_park(ctrl, True)
    return nb.free_capacity(ctrl) >= n
