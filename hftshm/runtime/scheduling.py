"""Linux scheduling policy of the platform's processes: who may preempt whom when it wakes.

On a machine with fewer cores than processes (the shipped 2-core placement: the feed pinned to one
CPU, the trading composite to the other), every wake-up of another process on a pinned CPU is
time taken from the hot path. A SCHED_BATCH task is never allowed to preempt a running task when
it wakes (it waits for the next scheduling point) and otherwise shares CPU time normally, so:

- pinned worker processes are normal tasks (``foreground``; set explicitly, because the policy is
  inherited across fork and exec from whoever started them);
- unpinned worker processes (``cpu = "none"``: the order-event writer) are batch tasks
  (``background``): as normal tasks, each OMS commit woke the writer onto the trading CPU, where it
  preempted the OMS between its event commit and its order publish (~0.3 ms of tick-to-order);
- a supervisor that only watches once its workers run (``hftshm run``, the pipeline benchmark)
  becomes a batch task with ``as_batch_task`` (``restore`` undoes it).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("hftshm.runtime")


def _set(policy: int) -> None:
    os.sched_setscheduler(0, policy, os.sched_param(0))


def foreground(logger: logging.Logger = log, what: str = "this process") -> None:
    """Make the calling process a normal (SCHED_OTHER) task if it is not one."""
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            _set(os.SCHED_OTHER)
    except (AttributeError, OSError) as exc:
        logger.warning("could not make %s a normal task: %s", what, exc)


def background(logger: logging.Logger = log, what: str = "this process") -> None:
    """Make the calling process a SCHED_BATCH task: its wake-ups never preempt a running task."""
    try:
        _set(os.SCHED_BATCH)
    except (AttributeError, OSError) as exc:
        logger.warning("could not make %s a batch task: %s", what, exc)


def as_batch_task() -> int | None:
    """``background`` for a supervisor; returns the policy ``restore`` puts back (None: unchanged)."""
    try:
        previous = os.sched_getscheduler(0)
        _set(os.SCHED_BATCH)
        return previous
    except (AttributeError, OSError):
        return None


def restore(policy: int | None) -> None:
    if policy is None:
        return
    try:
        _set(policy)
    except OSError:
        pass
