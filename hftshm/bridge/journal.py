"""The order-event journal: order events and execution reports as JetStream retains them.

A trading host exports its order events (``export = "nats:"`` on the ``oms.events`` ring) and
execution reports to ``hftshm.<namespace>.<ring>``; the stream keeps them within ``[bridge]``
limits. ``read_journal`` reads them back in stream order, for any run still retained, between two
record ids (an order event's ``event_id``, a report's ``seq``) or two times (when JetStream stored the
batch); ``hftshm journal replay`` prints them or writes order events into an OMS database through
``hftshm.oms.store.Store`` (idempotent: replaying twice adds nothing), rebuilding the ``orders``,
``order_events`` and ``fills`` tables on another host.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from hftshm.bridge import batch_header as bh
from hftshm.bridge.config import BridgeConfig
from hftshm.bridge.nats_thread import BridgeError, connect
from hftshm.transport import layout as layouts

FETCH_BATCH = 256


@dataclass(frozen=True)
class Bound:
    """Where a replay starts or stops: a record id (``event_id`` / ``seq``) or a time (UTC)."""

    record_id: int | None = None
    time: dt.datetime | None = None

    @classmethod
    def parse(cls, text: str | None, what: str) -> "Bound | None":
        if text is None or text == "":
            return None
        if text.isdigit():
            return cls(record_id=int(text))
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what} {text!r} is neither a record id (digits) nor an ISO time "
                             f"(2024-08-08T12:00:00, UTC unless it says otherwise)") from None
        return cls(time=when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc))


def id_field(layout: layouts.Layout) -> str:
    names = layout.dtype.names
    for candidate in ("event_id", "seq"):
        if candidate in names:
            return candidate
    raise ValueError(f"layout {layout.name} has no event_id or seq field to select records by")


@dataclass
class JournalBatch:
    records: np.ndarray   # copies, layout's dtype, already cut to the bounds
    stored: dt.datetime   # when JetStream stored the message
    epoch: int            # the exporting run


def read_journal(config: BridgeConfig, subject: str, layout: layouts.Layout, start: Bound | None = None,
                 stop: Bound | None = None, timeout_s: float = 10.0) -> Iterator[JournalBatch]:
    """The retained batches of ``subject`` in stream order, cut to ``[start, stop]`` (both inclusive)."""
    batches: list[JournalBatch] = []
    asyncio.run(_read(config, subject, layout, start, stop, timeout_s, batches))
    yield from batches


async def _read(config, subject, layout, start, stop, timeout_s, out) -> None:
    import nats.js.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    nc = await connect(config, "hftshm-journal")
    try:
        js = nc.jetstream()
        try:
            stream = await js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            raise BridgeError(f"no JetStream stream on {config.url} holds {subject!r} (is [bridge] namespace "
                              f"the exporting platform's, and did it export this ring?)") from None
        policy = dict(deliver_policy=DeliverPolicy.ALL)
        if start is not None and start.time is not None:
            policy = dict(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start.time.isoformat())
        psub = await js.pull_subscribe(subject, stream=stream, config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, inactive_threshold=60.0, **policy))
        key = id_field(layout)
        while True:
            try:
                messages = await psub.fetch(FETCH_BATCH, timeout=min(1.0, timeout_s))
            except nats.errors.TimeoutError:
                break
            for message in messages:
                header, payload = bh.decode(message.data)
                if header.flags:
                    continue  # END markers carry no records
                if header.fingerprint != layout.fingerprint:
                    raise BridgeError(f"{subject} carries layout fingerprint {header.fingerprint:016x}, "
                                      f"this installation's {layout.describe()}: replay with the same layouts/")
                stored = message.metadata.timestamp
                if stop is not None and stop.time is not None and stored > stop.time:
                    return
                records = np.frombuffer(payload, dtype=layout.dtype)
                keep = np.ones(len(records), dtype=bool)
                if start is not None and start.record_id is not None:
                    keep &= records[key] >= start.record_id
                if stop is not None and stop.record_id is not None:
                    keep &= records[key] <= stop.record_id
                if keep.any():
                    out.append(JournalBatch(records[keep].copy(), stored, header.epoch))
            if messages and messages[-1].metadata.num_pending == 0:
                break
        await psub.unsubscribe()
    finally:
        await nc.close()
