"""Closing the one gap a crash can leave between the audit trail and the OMS's report rings.

Per batch the OMS commits its events, then its orders, then its reports, and only then releases
the inputs. A crash between the event commit and a report commit leaves exchange reports that are
*in the database* (so after the restart they are stale and refused) but *not forwarded* to the
strategies or risk, who would then never see a fill. At start-up, after the open orders are
reloaded, ``reforward_lost_reports`` compares the re-delivered reports (still unreleased in the
input ring) with the last records each report ring holds (a ring keeps its last ``capacity``
records in place after they are read) and forwards, ring by ring, those that are applied but
missing. Orders need no such step: a NEW order that never reached the exchange is sent again by
its ack timeout.

A new exchange session's announcement (``ReportEvent.SESSION``, ``hftshm.oms.session_nb``) has no
order of its own: its reports are the CANCELs (reason ``venue_restart``) of every order the OMS then
held open. If it is among the re-delivered reports, those cancels are read back from the database
(``Store.venue_cancels``: the events stamped with the session's start) and go through the same
comparison.
"""

from __future__ import annotations

import time

import numpy as np

from hftshm.codes import OrderState, Reason, ReportEvent


def _applied(engine, report: np.void) -> bool:
    """Whether the reloaded state already reflects ``report`` (fills, cancels, rejects: the ones
    that move positions and open orders)."""
    row = engine.order(int(report["order_id"]))
    if row is None:
        return False
    event = int(report["event"])
    if event in (ReportEvent.PARTIAL, ReportEvent.FILL):
        return report["cum_qty"] > 0 and row["cum_qty"] >= report["cum_qty"] - 1e-9 * max(1.0, row["qty"])
    if event == ReportEvent.CANCEL:
        return row["state"] == OrderState.CANCELLED
    if event == ReportEvent.REJECT:
        return row["state"] == OrderState.REJECTED
    return False


def _key(record: np.void) -> tuple:
    return int(record["order_id"]), int(record["event"]), round(float(record["cum_qty"]), 9)


def _recent(ring, window: int) -> np.ndarray:
    """The last ``window`` records this process's predecessor published to ``ring`` (copies)."""
    end = ring.producer_position
    count = min(window, end, ring.capacity)
    seqs = np.arange(end - count, end)
    return ring.records[seqs & (ring.capacity - 1)].copy()


def _pending(ring, window: int) -> np.ndarray:
    """Up to ``window`` unreleased records of an input ring (the batch a crash left in hand first)."""
    start = ring.consumer_position
    count = min(window, ring.producer_position - start)
    seqs = np.arange(start, start + count)
    return ring.records[seqs & (ring.capacity - 1)].copy()


def _venue_cancels(store, session: np.void, dtype: np.dtype) -> list[np.void]:
    """The CANCEL reports the OMS forwarded (or was forwarding) for the new session ``session``."""
    events = store.venue_cancels(int(session["exch_ts_ns"]))
    out = np.zeros(len(events), dtype=dtype)
    for k, e in enumerate(events):
        r = out[k]
        r["exch_ts_ns"] = e["exch_ts_ns"]
        r["local_ts_ns"] = time.monotonic_ns()
        for name in ("order_id", "client_order_id", "price", "cum_qty", "strategy_id", "symbol_id", "side"):
            r[name] = e[name]
        r["qty"] = e["exec_qty"]
        r["event"] = ReportEvent.CANCEL
        r["reason"] = Reason.VENUE_RESTART
    return list(out)


def reforward_lost_reports(engine, reports_in, reports_out: list, window: int, store=None) -> int:
    """Forward applied-but-unforwarded reports to each report ring that lacks them; returns how many.
    ``store``: where the cancels of a re-delivered new-session announcement are read back from."""
    pending = _pending(reports_in, window)
    candidates = [r for r in pending if _applied(engine, r)]
    if store is not None:
        for session in pending[pending["event"] == ReportEvent.SESSION]:
            candidates += _venue_cancels(store, session, pending.dtype)
    if not candidates:
        return 0
    sent = 0
    for ring in reports_out:
        published = {_key(r) for r in _recent(ring, window)}
        missing = [r for r in candidates if _key(r) not in published]
        if not missing:
            continue
        records = np.array(missing, dtype=ring.dtype)
        written = 0
        while written < len(records):
            view = ring.claim(len(records) - written)
            if not len(view):
                raise RuntimeError(f"oms: report ring {ring.name} is full at start-up; cannot forward "
                                   f"{len(records) - written} report(s) the crash left unsent")
            start = ring.producer_position
            view[:] = records[written:written + len(view)]
            view["seq"] = np.arange(start, start + len(view))
            ring.commit(len(view))
            written += len(view)
        sent += len(records)
    return sent
