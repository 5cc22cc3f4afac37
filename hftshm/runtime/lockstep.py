"""Deterministic replay (``[platform] deterministic = true``): what the stages share.

Why: a free-running pipeline's fills depend on process scheduling. If the exchange worker happens
to apply the next market message before an order caused by the previous one has reached it, the
order meets a different book. The in-process backtest (``hftshm.backtest``) has no such race: per
exchange message it (1) lets the exchange apply the message, orders that arrived before it first,
(2) hands the strategies every report due by the message's time, (3) gives them the message and
the book after it, (4) sends their intents through risk and the OMS to the exchange, stamped with
the message's market time. A deterministic run reproduces exactly that order across processes:

* feed: publishes one exchange message (book snapshots before the events, so whoever sees the
  events also sees the book), then waits until the whole pipeline has settled
  (``PipelineSettle``) before the next. After the last one has settled it publishes one
  ``EventKind.END_OF_DATA`` record (``end_of_data_record``) to the market_event rings.
* exchange: applies the message, keeps the reports it makes until their simulated arrival time
  (``local_ts_ns``, exchange time + response latency), then sends every report due by the message's
  time T and after them a ``ReportEvent.WATERMARK`` record with ``exch_ts_ns = T``. At the end of
  data it applies the orders still in flight (up to ``END_DRAIN_NS`` of market time, as a backtest
  does), sends everything, and the market is closed: new orders and replaces are rejected
  ``market_closed``, cancels are answered.
* OMS: applies reports up to the watermark, moves its clock to T, runs its ack timers at T, and
  forwards the watermark to every report ring; orders are handled at their market time.
* strategies: take message M (time T) only once a watermark >= T has arrived; then hand over the
  rejects and reports up to it (at market time T), the events, and the book, and publish the
  intents before releasing anything.
* risk: checks intents of market time T only once a watermark >= T has arrived on its report ring
  (reports and marks first).

Every stage commits its outputs before it releases its inputs, so "every ring empty, twice, with
no producer moving in between" means nothing is in flight anywhere. What the stages hold on
purpose (reports not yet due, orders on their way to the exchange) waits for market time, which
only the next message moves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hftshm.codes import EventFlag, EventKind, ReportEvent

WATERMARK = int(ReportEvent.WATERMARK)
_LAST = int(EventFlag.LAST_IN_MESSAGE)
#: market time after the last message in which orders already sent still reach the exchange
END_DRAIN_NS = 10 * 1_000_000_000


def enabled(ctx: Any) -> bool:
    """True when the run is deterministic (``[platform] deterministic``); False without a config."""
    platform = getattr(getattr(ctx, "config", None), "platform", None)
    return bool(getattr(platform, "deterministic", False))


class PipelineSettle:
    """Has every stage of the pipeline finished with everything published so far?

    Watches every ring's cursors (``ctx.observe_rings()``), except rings into sinks (a consumer that
    feeds nothing back, e.g. the database writer: it cannot change what the exchange sees; also one
    whose every output goes into sinks, e.g. a bridge export worker teeing order events to NATS and
    the writer, so no message waits for a JetStream round trip). Settled
    = producer positions read, consumer positions read, producer positions read again: all equal.
    A stage between taking a record and publishing what it caused still holds that record
    unreleased, so its ring is not empty; a stage that published meanwhile moved a producer cursor
    between the two reads."""

    def __init__(self, rings: dict):
        """``rings``: {ring name: (ring, producer worker, consumer worker)} for every ring of the run."""
        feeding = {producer for _ring, producer, _consumer in rings.values()}
        while True:  # a worker whose every output goes into sinks is a sink too
            fed = {producer for _ring, producer, consumer in rings.values() if consumer in feeding}
            if fed == feeding:
                break
            feeding = fed
        kept = sorted((name, ring) for name, (ring, _producer, consumer) in rings.items() if consumer in feeding)
        self.names = [name for name, _ring in kept]
        self.rings = [ring for _name, ring in kept]
        self.checks = 0

    def settled(self) -> bool:
        self.checks += 1
        before = [ring.producer_position for ring in self.rings]
        released = [ring.consumer_position for ring in self.rings]
        after = [ring.producer_position for ring in self.rings]
        return before == after == released

    def busy(self) -> list[str]:
        """Rings with records in them (for a log line when a deterministic run stalls)."""
        return [name for name, ring in zip(self.names, self.rings) if ring.producer_position != ring.consumer_position]


def message_end(events: np.ndarray) -> int:
    """Records of the first exchange message in ``events`` (up to and including the one flagged
    LAST_IN_MESSAGE); 0 if the view ends before the message does."""
    flagged = np.flatnonzero(events["flags"] & _LAST)
    return int(flagged[0]) + 1 if len(flagged) else 0


def is_end_of_data(message: np.ndarray) -> bool:
    """The feed's end-of-data marker (a message of its own)."""
    return len(message) == 1 and int(message["kind"][0]) == EventKind.END_OF_DATA


def end_of_data_record(record: np.ndarray, exch_ts_ns: int) -> None:
    """Fill ``record`` (a 1-element market_event view) as the end-of-data marker at ``exch_ts_ns``."""
    record[:] = 0
    record["kind"] = EventKind.END_OF_DATA
    record["flags"] = EventFlag.LAST_IN_MESSAGE | EventFlag.END_OF_DATA
    record["exch_ts_ns"] = exch_ts_ns
    record["local_ts_ns"] = exch_ts_ns


def watermark_index(reports: np.ndarray, market_ts_ns: int) -> int:
    """Index of the first WATERMARK record in ``reports`` with time >= ``market_ts_ns``; -1 if none."""
    marks = np.flatnonzero((reports["event"] == WATERMARK) & (reports["exch_ts_ns"] >= market_ts_ns))
    return int(marks[0]) if len(marks) else -1


def without_watermarks(reports: np.ndarray) -> np.ndarray:
    """The reports about orders (a copy if watermarks had to be taken out, else the same view)."""
    marks = reports["event"] == WATERMARK
    return reports[~marks] if marks.any() else reports


def last_watermark(reports: np.ndarray, current: int) -> int:
    """The highest watermark time in ``reports``, or ``current`` if none is higher."""
    marks = reports["event"] == WATERMARK
    if not marks.any():
        return current
    return max(current, int(reports["exch_ts_ns"][marks].max()))
