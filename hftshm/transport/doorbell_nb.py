"""Ringing a doorbell from a numba kernel: bump a futex word in shared memory and FUTEX_WAKE it.

The waiting side (``hftshm.transport.doorbell``) parks in ``futex_waitv`` on the doorbells of every
ring it waits for. The wake is the shared (not ``_PRIVATE``) futex op because waker and sleeper are
different processes mapping the same segment. libc's ``syscall`` is linked by name
(``ExternalFunction``), so kernels using it still cache.
"""

from __future__ import annotations

from numba import njit, types

from hftshm.transport.atomics import address_of, fetch_add

SYS_FUTEX = 202  # x86-64
FUTEX_WAKE = 1
WAKE_ALL = 0x7FFF_FFFF

_syscall = types.ExternalFunction(
    "syscall", types.int64(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64, types.int64)
)


@njit(cache=True, nogil=True)
def ring_doorbell(ctrl, word):
    """Bump the doorbell ``ctrl[word]`` and wake whoever waits on it. Returns processes woken."""
    # The bump is what makes a wake-up impossible to lose: a sleeper passes the value it read before
    # its last check for work, so the kernel refuses to sleep once the value has moved.
    fetch_add(ctrl, word, 1)
    return _syscall(SYS_FUTEX, address_of(ctrl, word), FUTEX_WAKE, WAKE_ALL, 0, 0, 0)
