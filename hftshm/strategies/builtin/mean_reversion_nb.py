"""Mean reversion's decision, as compiled callbacks (``MeanReversion``'s ``on_book``).

The rolling window is a ring in the strategy's state; its mean and standard deviation are summed
the way numpy sums (pairwise, 8 accumulators per block of 128), so the z-score is bit for bit what
``np.mean``/``np.std`` of the same window give, and the decisions match the Python version's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hftshm.strategies import context_nb as cx

STATE = {"count": 0, "next_sample_ns": 0, "next_decision_ns": 0, "z": math.nan, "decisions": 0, "last_action": 0}

# last_action codes
ENTER_LONG, ENTER_SHORT, EXIT = 1, 2, 3


@njit(cache=True)
def _block_sum(a, lo, n):
    """numpy's pairwise-sum leaf (n <= 128): 8 accumulators, then the remainder."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def pairwise_sum(a, lo, n):
    """numpy's float64 pairwise summation of a[lo:lo+n] (same order of additions, same result):
    halves (rounded to 8) until a block is <= 128. Iterative (numba caches no recursion)."""
    if n <= 128:
        return _block_sum(a, lo, n)
    # post-order walk of the split tree with explicit stacks (depth <= 64)
    los = np.empty(128, np.int64)
    ns = np.empty(128, np.int64)
    stage = np.zeros(128, np.int64)
    vals = np.empty(128, np.float64)
    top = 0
    los[0], ns[0], stage[0] = lo, n, 0
    nvals = 0
    while top >= 0:
        m = ns[top]
        if m <= 128:
            vals[nvals] = _block_sum(a, los[top], m)
            nvals += 1
            top -= 1
            continue
        if stage[top] == 2:
            vals[nvals - 2] = vals[nvals - 2] + vals[nvals - 1]
            nvals -= 1
            top -= 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        if stage[top] == 0:
            stage[top] = 1
            los[top + 1], ns[top + 1], stage[top + 1] = los[top], n2, 0
        else:
            stage[top] = 2
            los[top + 1], ns[top + 1], stage[top + 1] = los[top] + n2, m - n2, 0
        top += 1
    return vals[0]


@njit(cache=True)
def _z(samples, count, window, mid, scratch):
    """z of ``mid`` against the window (oldest first, as a deque holds it); NaN if flat."""
    start = count % window
    for k in range(window):
        scratch[k] = samples[(start + k) % window]
    mean = pairwise_sum(scratch, 0, window) / window
    for k in range(window):
        d = scratch[k] - mean
        scratch[k] = d * d
    std = math.sqrt(pairwise_sum(scratch, 0, window) / window)
    if std <= 0.0:
        return math.nan
    return (mid - mean) / std


@njit(cache=True)
def on_book(ctx, book):
    mid = book.mid
    if not math.isfinite(mid):
        return
    p, s = ctx.params, ctx.state
    now = ctx.now_ns
    window = p.window
    if now >= s.next_sample_ns:
        s.samples[s.count % window] = mid
        s.count += 1
        s.next_sample_ns = now + int(p.sample_interval_ms * 1e6)
    if s.count < window:
        return
    z = _z(s.samples, s.count, window, mid, s.scratch)
    if z != z:
        return
    s.z = z
    if now < s.next_decision_ns or cx.open_orders(ctx):
        return
    position = cx.position(ctx)
    qty = p.quantity
    action = 0
    if z <= -p.entry_z and position + qty <= p.max_position + 1e-12:
        cx.buy(ctx, book.ask, qty, cx.IOC)
        action = ENTER_LONG
    elif z >= p.entry_z and position - qty >= -p.max_position - 1e-12:
        cx.sell(ctx, book.bid, qty, cx.IOC)
        action = ENTER_SHORT
    elif abs(z) <= p.exit_z and position != 0.0:
        if position > 0:
            cx.sell(ctx, book.bid, position, cx.IOC)
        else:
            cx.buy(ctx, book.ask, -position, cx.IOC)
        action = EXIT
    if action:
        cx.signal(ctx)
        s.decisions += 1
        s.last_action = action
        s.next_decision_ns = now + int(p.cooldown_ms * 1e6)

