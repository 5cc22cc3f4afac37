"""numba kernel: the live feed's receive-to-publish latency per published event."""

from __future__ import annotations

from numba import njit

from hftshm.codes import EventKind
from hftshm.metrics.histogram_nb import record as record_latency


@njit(cache=True)
def receive_to_publish(hist, staged, start, stop, publish_wall_ns):
    """Record ``publish_wall_ns - local_ts_ns`` (both the wall clock the frames were stamped with on
    receipt) for the staged events ``start:stop``; CLEAR records (made by the feed, not received) are
    skipped. A negative difference (the wall clock stepped back) counts as 0, never below."""
    for i in range(start, stop):
        if staged[i].kind == EventKind.CLEAR:
            continue
        delay = publish_wall_ns - staged[i].local_ts_ns
        record_latency(hist, delay if delay > 0 else 0)
