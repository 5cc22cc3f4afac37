"""Timing kernels for ``hftshm bench risk``: each check timed inside numba, and the clock's own cost."""

from __future__ import annotations

from numba import njit

from hftshm.risk.checks_nb import check_one
from hftshm.transport.clock_nb import monotonic_ns


@njit(cache=True)
def timed_checks(intents, n, decisions, target_order_ids, now_ns, symbols, strategies, account, table, control_words,
                 out_ns):
    """``check_intents`` with a clock read around every check: ``out_ns[k]`` = check k's time,
    including one clock read (see ``clock_cost_ns``). Counters in the block are not updated."""
    acct = account[0]
    approved = 0
    for k in range(n):
        t0 = monotonic_ns()
        reason = check_one(intents[k], now_ns, symbols, strategies, acct, table, control_words, target_order_ids, k)
        t1 = monotonic_ns()
        decisions[k] = reason
        out_ns[k] = t1 - t0
        if reason == 0:
            approved += 1
    return approved


@njit(cache=True)
def clock_cost_ns(out_ns):
    """Back-to-back clock reads: what each sample of ``timed_checks`` carries on top of the check."""
    for k in range(len(out_ns)):
        t0 = monotonic_ns()
        t1 = monotonic_ns()
        out_ns[k] = t1 - t0
