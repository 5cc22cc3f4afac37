"""numba kernels of the replay: merge sources by exchange time, stage a batch, update the books,
publish into rings.

``stage`` takes whole messages (a depth diff's levels, a bbo's two sides) from the source whose next
message has the earliest exchange time, copies them into a staging batch, applies each run of
messages to the books (``l2_apply_nb._run``, which writes a ``book_snapshot`` record at every consistent
point) and records exchange->receive latency. ``publish`` copies staged records into one ring.
A message longer than a whole batch is split across batches; the source is then finished first.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.book import l2_apply_nb
from hftshm.codes import EventFlag, EventKind
from hftshm.metrics.histogram_nb import record as record_latency
from hftshm.transport import ring_nb
from hftshm.transport.clock_nb import monotonic_ns

_LAST = int(EventFlag.LAST_IN_MESSAGE)
_NO_LIMIT = np.int64(9223372036854775807)

# replay state slots (int64)
RS_OPEN_SOURCE = 0  # source whose message was split across batches (-1: at a message boundary)
RS_STAGED_TOTAL = 1  # events staged since the start (all passes)
RS_PASS = 2  # current pass over the data (0-based) when repeating
N_REPLAY_STATE = 8


@njit(cache=True)
def _copy_run(src, start, stop, out, n, seq0, ts_shift, hist, offset_ns):
    for j in range(start, stop):
        rec = out[n]
        rec.seq = seq0 + n
        rec.exch_ts_ns = src[j].exch_ts_ns + ts_shift
        rec.local_ts_ns = src[j].local_ts_ns + ts_shift
        rec.publish_ts_ns = 0
        rec.price = src[j].price
        rec.qty = src[j].qty
        rec.update_id = src[j].update_id
        rec.symbol_id = src[j].symbol_id
        rec.kind = src[j].kind
        rec.side = src[j].side
        rec.flags = src[j].flags
        kind = src[j].kind
        if kind == EventKind.DEPTH or kind == EventKind.TRADE:
            # one-way feed latency above the best seen: local - exchange - min(local - exchange)
            record_latency(hist, src[j].local_ts_ns - src[j].exch_ts_ns - offset_ns)
        n += 1
    return n


@njit(cache=True)
def next_exch_ts(sources, cursors, ts_shift):
    """Exchange time (shifted) of the next event the merge would stage; int64 max if none is left."""
    best_ts = _NO_LIMIT
    for s in range(len(sources)):
        c = cursors[s]
        if c < len(sources[s]):
            ts = sources[s][c].exch_ts_ns + ts_shift
            if ts < best_ts:
                best_ts = ts
    return best_ts


@njit(cache=True)
def stage(sources, cursors, offsets_ns, ts_shift, limit_exch_ts, max_events, out, seq0, rstate, books, levels,
          out_snaps, scratch_px, scratch_qty, hist_exch_to_recv):
    """Stage up to ``max_events`` events whose message starts at or before ``limit_exch_ts``.

    ``sources``: typed list of market_event arrays; ``cursors``: next index per source;
    ``offsets_ns``: per source min(local - exch) (the clock offset estimate) for the latency histogram;
    ``ts_shift``: added to both timestamps (repeated passes keep time moving forward).
    Returns (events staged, snapshot records written into ``out_snaps``).
    """
    state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of = books
    n_sources = len(sources)
    n = 0
    n_snaps = 0
    run_source = -1
    run_start = 0
    run_stop = 0
    while n + (run_stop - run_start) < max_events:
        k = rstate[RS_OPEN_SOURCE]
        if k < 0:
            best_ts = _NO_LIMIT
            for s in range(n_sources):
                c = cursors[s]
                if c < len(sources[s]):
                    ts = sources[s][c].exch_ts_ns + ts_shift
                    if ts < best_ts or k < 0:
                        best_ts = ts
                        k = s
            if k < 0 or best_ts > limit_exch_ts:
                break
        src = sources[k]
        start = cursors[k]
        end = start
        size = len(src)
        while end < size and not (src[end].flags & _LAST):
            end += 1
        end = min(end + 1, size)
        room = max_events - n - (run_stop - run_start)
        if end - start > room:
            if n + (run_stop - run_start) > 0:
                break  # the next batch takes the whole message
            end = start + room  # a message longer than a batch: split it, finish this source first
            rstate[RS_OPEN_SOURCE] = k
        else:
            rstate[RS_OPEN_SOURCE] = -1
        if k != run_source or start != run_stop:
            if run_source >= 0:
                n, n_snaps = stage_run(sources[run_source], run_start, run_stop, out, n, seq0, ts_shift, hist_exch_to_recv,
                                       offsets_ns[run_source], state, params, bid_win, ask_win, fbp, fbq, fap, faq,
                                       issues, book_of, levels, out_snaps, n_snaps, scratch_px, scratch_qty)
            run_source = k
            run_start = start
        run_stop = end
        cursors[k] = end
        if rstate[RS_OPEN_SOURCE] >= 0:
            break
    if run_source >= 0:
        n, n_snaps = stage_run(sources[run_source], run_start, run_stop, out, n, seq0, ts_shift, hist_exch_to_recv,
                               offsets_ns[run_source], state, params, bid_win, ask_win, fbp, fbq, fap, faq,
                               issues, book_of, levels, out_snaps, n_snaps, scratch_px, scratch_qty)
    rstate[RS_STAGED_TOTAL] += n
    return n, n_snaps


@njit(cache=True)
def stage_run(src, start, stop, out, n, seq0, ts_shift, hist, offset_ns, state, params, bid_win, ask_win, fbp, fbq,
              fap, faq, issues, book_of, levels, out_snaps, n_snaps, scratch_px, scratch_qty):
    """One source's records ``src[start:stop]`` staged into ``out`` from ``n`` (sequenced, shifted
    by ``ts_shift``, their exchange -> receive latency recorded), then applied to the books, whose
    snapshots go to ``out_snaps`` from ``n_snaps``. Returns (staged, snapshots) counts after it.
    ``stage`` runs it per run of a source in the merge; the live feed's one call, on a batch."""
    first = n
    n = _copy_run(src, start, stop, out, n, seq0, ts_shift, hist, offset_ns)
    # the books see the staged copies (shifted timestamps), so snapshots carry the replayed times
    snaps = out_snaps[n_snaps:]
    _, rows, _, _, _ = l2_apply_nb._run(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, out, first, n,
                                    levels, None, scratch_px, scratch_qty, snaps, len(snaps))
    return n, n_snaps + rows


@njit(cache=True)
def publish(ctrl, records, staged, start, stop, publish_ts_ns, drop):
    """Copy ``staged[start:stop]`` into a ring (as many as fit), stamping ``seq`` with the ring's own
    sequence (dense per ring) and ``publish_ts_ns``. Returns how many were written; with ``drop`` the
    ones that did not fit are counted as the ring's drops and the return value is ``stop - start``.
    """
    want = stop - start
    if want <= 0:
        return 0
    # (claimable, not free_capacity: that one re-reads the consumer's cursor only when its cached copy
    # says full, so a cache stopped at 1 free slot let 1 record of a batch through and held the rest
    # back a step, though the consumer had emptied the ring: at every wrap of the ring)
    n = ring_nb.claimable(ctrl, want)
    if n <= 0:
        # full: a claim of a full ring counts the episode in the ring's full-event counter (what
        # monitoring shows as full waits), as every other producer's claims do
        ring_nb.claim_contiguous(ctrl, want)
    if n > 0:
        seq = ring_nb.try_claim(ctrl, n)
        if seq < 0:
            n = 0
        else:
            mask = ring_nb.capacity(ctrl) - 1
            for i in range(n):
                slot = (seq + i) & mask
                records[slot] = staged[start + i]
                records[slot].seq = seq + i
                records[slot].publish_ts_ns = publish_ts_ns
            ring_nb.commit(ctrl, seq, n)
    if drop and n < want:
        ring_nb.count_drops(ctrl, want - n)
        return want
    return n


@njit(cache=True)
def publish_now(ctrl, records, staged, start, stop, drop, stamp):
    """``publish`` stamped with the clock read here, in the kernel, just before the copy; the stamp
    is left in ``stamp[0]`` for the feed's own latency. A stamp read in Python before the call
    would date the records by the call's dispatch (unboxing three arrays: microseconds from cold
    caches at a real-time pace) before they are visible, and every consumer downstream would count
    that dispatch as its own latency."""
    now = monotonic_ns()
    stamp[0] = now
    return publish(ctrl, records, staged, start, stop, now, drop)


@njit(cache=True)
def recv_to_publish(hist, staged, start, stop, publish_ts_ns, due_base_ns, exch_base_ns, inv_speed, staged_ns):
    """Record the feed's own delay per event: publish time minus when the event was due (paced replay:
    its exchange time scaled from the start) or, at speed 0, minus when the batch was staged."""
    for i in range(start, stop):
        if inv_speed > 0.0:
            due = due_base_ns + np.int64((staged[i].exch_ts_ns - exch_base_ns) * inv_speed)
        else:
            due = staged_ns
        record_latency(hist, publish_ts_ns - due)
