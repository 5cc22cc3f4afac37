"""What every stage's rehearsal shares (numba kernels): when one is due, and the reset of its twin.

A stage rehearses its hot path on a private twin while it is idle, so the code that a tick runs
has run moments before (``oms.rehearsal_nb`` says why: with every line of the working set
prefetched, a cold OMS still took 3-4x its warm time; what was cold was the code's execution).
A rehearsal starts by copying ``(destination, source)`` pairs - the twin's state from a template
taken when it was built, or from the live stage's small tables so its checks see today's limits
and marks - and keeps a clock::

    clock  int64 [CLOCK_LAST: when the last rehearsal ended (ns), CLOCK_COUNT: rehearsals]
"""

from __future__ import annotations

from numba import literal_unroll, njit

from hftshm.transport.clock_nb import monotonic_ns

CLOCK_LAST, CLOCK_COUNT = 0, 1


@njit(cache=True, nogil=True, _nrt=False)
def _copy(dst, src):
    for i in range(src.shape[0]):
        dst[i] = src[i]


@njit(cache=True, nogil=True, _nrt=False)
def copy_pairs(pairs):
    """``dst[:] = src`` for every ``(dst, src)`` of ``pairs`` (a tuple of any array types)."""
    for pair in literal_unroll(pairs):
        _copy(pair[0], pair[1])


@njit(cache=True, nogil=True, _nrt=False)
def due(clock, every_ns, idle_ns, now_ns):
    """A rehearsal is due: the stage has been idle ``every_ns`` and the last one is as old (0: never)."""
    return every_ns > 0 and idle_ns >= every_ns and now_ns - clock[CLOCK_LAST] >= every_ns


@njit(cache=True, nogil=True, _nrt=False)
def rehearsed(clock, now_ns, started_ns):
    """Count a rehearsal that just ended: the next is due ``every_ns`` after its end, not its start.

    ``now_ns`` is the caller's clock when it asked (the one ``due`` compares against), and
    ``started_ns`` the monotonic clock when the rehearsal began: the end is ``now_ns`` plus the
    rehearsal's duration, in the caller's clock, so a caller with its own clock (a test, a
    simulated one) gets the same spacing as a live stage."""
    clock[CLOCK_LAST] = now_ns + (monotonic_ns() - started_ns)
    clock[CLOCK_COUNT] += 1
