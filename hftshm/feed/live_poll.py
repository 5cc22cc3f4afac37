"""The network loop's busy-poll selector: the live feed's websocket thread polls instead of sleeping.

The asyncio loop of the network thread (``live_client``, ``network = "thread"``) asks its selector for
ready sockets; the default selector blocks in ``epoll_wait`` until a read arrives. This one never
blocks: it polls with a timeout of 0, yields the CPU between polls, and when nothing has arrived for a
while it calls an idle hook (the live feed's rehearsal and keep-warm, ``LiveFeed._idle_work``)::

    asyncio _run_once ── select(timeout) ─▶ ┌─▶ epoll_wait(0) ─ ready ─▶ return: data_received ->
                                            │      │ nothing            LiveFeed.take_read (one call), or
                                            │      │                    the queue and LiveFeed.step
                                            │      ▼
                                            │  idle_period_s since the end of the last idle call?
                                            │      │ yes: idle()  (LiveFeed._idle_work: a twin feed takes a
                                            │      │   scripted read, the live connections' read path runs
                                            │      │   with no bytes, the feed's working set is prefetched)
                                            │      ▼
                                            │  timeout elapsed? ── yes ─▶ return []  (the loop's timers)
                                            │      │ no
                                            └── os.sched_yield()  (releases the GIL; runnable threads go first)

Why: on this KVM guest the feed's step costs 36 us back to back, 56 us after a 50 us sleep, 113 us after
a 4 ms sleep, but 38 us after 0.5 ms of spinning. Blocking in epoll halts the vCPU (the VM exit flushes
L1 and branch state) and the caches go cold, so the first frame after a quiet spell pays the refill:
receive->publish was ~350 us p50 at the recorded pace against a 50 us target. A prototype polling this
way, with a rehearsal every 0.5 ms of idle, halved p50 and the step's CPU. The price is a CPU kept busy
by the network thread (``sched_yield`` gives it to any other runnable thread of that CPU at once).

Counters (plain ints, read by ``LiveFeed.stats``): ``polls`` (epoll_wait calls), ``idle_calls``,
``idle_errors`` (an idle hook that raised is logged once and disabled; the loop carries on).
"""

from __future__ import annotations

import logging
import os
import selectors
import time
from typing import Callable

log = logging.getLogger("hftshm.feed.live")

IDLE_PERIOD_S = 0.0005  # the prototype's: 0.5 ms of idle between rehearsals


class BusyPollSelector(selectors.DefaultSelector):
    """An epoll selector whose ``select`` spins (poll with timeout 0, ``os.sched_yield`` between polls)
    instead of blocking, and calls ``idle()`` every ``idle_period_s`` while nothing arrives."""

    def __init__(self, idle: Callable[[], object] | None = None, idle_period_s: float = IDLE_PERIOD_S):
        if not idle_period_s > 0:
            raise ValueError(f"idle_period_s must be > 0, got {idle_period_s!r}")
        super().__init__()
        self.idle = idle
        self.idle_period_ns = int(idle_period_s * 1e9)
        self.polls = 0
        self.idle_calls = 0
        self.idle_errors = 0
        self._next_idle_ns = time.monotonic_ns() + self.idle_period_ns

    def select(self, timeout: float | None = None) -> list:
        poll = super().select
        ready = poll(0)
        self.polls += 1
        if ready or (timeout is not None and timeout <= 0):
            return ready
        clock = time.monotonic_ns
        deadline = None if timeout is None else clock() + int(timeout * 1e9)
        yield_cpu = os.sched_yield
        while True:
            now = clock()
            if now >= self._next_idle_ns and self.idle is not None:
                self._call_idle()
                now = clock()
            if deadline is not None and now >= deadline:
                return ready  # (empty) the loop's timers are due
            yield_cpu()
            ready = poll(0)
            self.polls += 1
            if ready:
                return ready

    def _call_idle(self) -> None:
        self.idle_calls += 1
        try:
            self.idle()
        except Exception:  # the hook is an optimisation: the loop (the live connection) must survive it
            self.idle_errors += 1
            hook, self.idle = self.idle, None
            log.exception("network loop: idle hook %r failed; disabled (the connection carries on)", hook)
        self._next_idle_ns = time.monotonic_ns() + self.idle_period_ns
