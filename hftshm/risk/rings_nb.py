"""The risk worker's hot path straight over shared-memory rings: poll, check/apply, publish, release.

One call per input ring and duty cycle, no Python per record. ``consume_intents`` checks only as many
intents as both output rings have room for, so every approved order and every reject it decides is
published in the same call: nothing is decided and then held back, and a full OMS ring slows risk
down (backpressure to the strategies) instead of losing records.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.metrics.histogram_nb import record as record_latency
from hftshm.risk.accounting_nb import apply_marks
from hftshm.risk.checks_nb import check_intents
from hftshm.risk.emit_nb import emit_decisions, emit_kill_cancels
from hftshm.risk.replay_nb import apply_new_reports
from hftshm.transport import ring_nb
from hftshm.transport.clock_nb import monotonic_ns

BACKPRESSURE = -1  # consume_intents: intents are waiting but an output ring is full


@njit(cache=True, nogil=True, inline="always")
def _room(ctrl, want):
    """Free slots of an output ring, looking at the consumer's cursor again if the cached one says
    fewer than ``want`` (the producer's cache only refreshes on demand)."""
    free = ring_nb.free_capacity(ctrl)
    if free < want:
        ring_nb.claim_contiguous(ctrl, want)  # re-reads the consumer cursor into the cache; claims nothing
        free = ring_nb.free_capacity(ctrl)
    return free


@njit(cache=True, nogil=True)
def consume_marks(ctrl, records, max_n, symbols, account, control_words):
    n = ring_nb.try_poll(ctrl, max_n)
    if n == 0:
        return 0
    apply_marks(records, ring_nb.consumer_position(ctrl), ring_nb.capacity(ctrl) - 1, n, symbols, account,
                control_words)
    ring_nb.release(ctrl, n)
    return n


@njit(cache=True, nogil=True)
def consume_reports(ctrl, records, max_n, symbols, account, table, control_words, replayed):
    """``replayed``: fills a restart rebuilt from the OMS's record (``replay_nb``), skipped when
    the ring delivers them again; empty otherwise."""
    n = ring_nb.try_poll(ctrl, max_n)
    if n == 0:
        return 0
    apply_new_reports(records, ring_nb.consumer_position(ctrl), ring_nb.capacity(ctrl) - 1, n, symbols, account,
                      table, control_words, replayed)
    ring_nb.release(ctrl, n)
    return n


@njit(cache=True, nogil=True)
def consume_intents(in_ctrl, in_records, max_n, order_ctrl, order_records, reject_ctrl, reject_records, clock_ns,
                    decisions, target_order_ids, symbols, strategies, account, table, control_words, hop_histogram):
    """Check up to ``max_n`` queued intents; publish orders and rejects. Returns intents consumed, or
    ``BACKPRESSURE``. ``hop_histogram`` (len 0 to skip) records strategy publish -> risk publish, ns."""
    limit = min(max_n, len(decisions))
    n = ring_nb.try_poll(in_ctrl, limit)
    if n == 0:
        return 0
    room = min(_room(order_ctrl, n), _room(reject_ctrl, n))
    if room <= 0:
        return BACKPRESSURE
    if n > room:
        n = room
    start = ring_nb.consumer_position(in_ctrl)
    in_mask = ring_nb.capacity(in_ctrl) - 1
    approved = check_intents(in_records, start, in_mask, n, decisions, target_order_ids, clock_ns, symbols,
                             strategies, account, table, control_words)
    rejected = n - approved
    order_seq = np.int64(0)
    reject_seq = np.int64(0)
    if approved > 0:
        order_seq = ring_nb.try_claim(order_ctrl, approved)  # cannot fail: room was checked, one producer
    if rejected > 0:
        reject_seq = ring_nb.try_claim(reject_ctrl, rejected)
    publish_ns = monotonic_ns()
    emit_decisions(in_records, start, in_mask, n, decisions, target_order_ids, order_records,
                   ring_nb.capacity(order_ctrl) - 1, order_seq, reject_records, ring_nb.capacity(reject_ctrl) - 1,
                   reject_seq, publish_ns)
    if approved > 0:
        ring_nb.commit(order_ctrl, order_seq, approved)
    if rejected > 0:
        ring_nb.commit(reject_ctrl, reject_seq, rejected)
    if len(hop_histogram) > 0:
        for k in range(n):
            record_latency(hop_histogram, publish_ns - in_records[(start + k) & in_mask].ts_ns)
    ring_nb.release(in_ctrl, n)
    return n


@njit(cache=True, nogil=True)
def publish_kill_cancels(table, cursor, order_ctrl, order_records, max_n, market_ts_ns, first_client_order_id):
    """Kill-switch cancels into the OMS ring from table slot ``cursor`` on, as many as fit.

    Returns ``(next_cursor, written)``; ``next_cursor == len(table)`` when the scan is complete."""
    room = min(_room(order_ctrl, max_n), max_n)
    if room <= 0:
        return cursor, 0
    # claim the room up front (the scan decides how many it uses); unused slots are simply not committed
    seq = ring_nb.producer_position(order_ctrl)
    next_cursor, written = emit_kill_cancels(table, cursor, order_records, ring_nb.capacity(order_ctrl) - 1, seq,
                                             room, monotonic_ns(), market_ts_ns, first_client_order_id)
    if written > 0:
        claimed = ring_nb.try_claim(order_ctrl, written)
        ring_nb.commit(order_ctrl, claimed, written)
    return next_cursor, written
