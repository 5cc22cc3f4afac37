"""The OMS database as the record a restarted consumer of its reports rebuilds from.

Risk and the strategies keep positions, PnL and open orders in process memory, updated from the
OMS's execution reports. A worker killed and restarted by the supervisor has lost that memory; its
report ring resumes at the released cursor and redelivers what the predecessor had not released
(at-least-once). The OMS database is the system of record for orders and fills, so a restarted
worker rebuilds from it (``RunRecord``) and then applies the ring from its cursor, skipping what the
record already holds (``RunRecord.fill_marks``: per order, the cumulative quantity the record has
filled; a fill report at or below it is a redelivery).

The database is written behind (``hftshm.oms.writer``), so it may lag the rings. ``CatchUp`` waits
until it holds every event behind every report the predecessor released: the OMS commits an
order's events to its ``order_event`` ring before the reports about them, and the writer commits
that ring in order, so once the database holds the event of the ring's last published record it
holds every earlier one. Events the OMS spilled to disk while that ring was full reach it later,
after reports about them went out: with a spill pending, the target is the ring's newest record
once the spill has drained into it (a spill means the database is down or slow; the restart waits
for it, as the OMS's own recovery does).

What belongs to this run: fills whose event happened since the run's control block was created,
orders open now, and finished orders touched since then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hftshm.oms import states
from hftshm.oms.config import journal_path, spill_path
from hftshm.oms.journal import journal_pending_records
from hftshm.transport.layout import load as load_layout

ORDER_EVENT = load_layout("order_event")

FILL_DTYPE = np.dtype([("event_id", "i8"), ("order_id", "i8"), ("strategy_id", "i8"), ("symbol_id", "i8"),
                       ("side", "i8"), ("price", "f8"), ("qty", "f8"), ("fee", "f8"), ("cum_qty", "f8"),
                       ("exch_ts_ns", "i8")])
ORDER_DTYPE = np.dtype([("order_id", "i8"), ("client_order_id", "i8"), ("strategy_id", "i8"), ("symbol_id", "i8"),
                        ("side", "i8"), ("order_type", "i8"), ("tif", "i8"), ("price", "f8"), ("qty", "f8"),
                        ("cum_qty", "f8"), ("leaves_qty", "f8"), ("state", "i8"), ("flags", "i8"),
                        ("request_client_order_id", "i8"), ("pending_qty", "f8"), ("open", "i8")])
_FILL_COLUMNS = ("event_id", "order_id", "strategy_id", "symbol_id", "side", "price", "qty", "fee", "cum_qty",
                 "exch_ts_ns")
_ORDER_COLUMNS = tuple(n for n in ORDER_DTYPE.names if n != "open")
_TERMINAL = ", ".join(str(int(s)) for s in sorted(states.TERMINAL_STATES))
QTY_TOLERANCE = 1e-9


@dataclass
class RunRecord:
    """This run's fills (event order) and orders (open ones, and finished ones touched this run)."""

    fills: np.ndarray  # FILL_DTYPE, ascending event_id
    orders: np.ndarray  # ORDER_DTYPE, ascending order_id
    since_ns: int = 0
    _marks: dict | None = field(default=None, repr=False)

    @property
    def open_orders(self) -> np.ndarray:
        return self.orders[self.orders["open"] == 1]

    def fill_marks(self) -> dict[int, float]:
        """order id -> cumulative quantity of its fills in this record (the highest cum_qty)."""
        if self._marks is None:
            marks: dict[int, float] = {}
            for order_id, cum in zip(self.fills["order_id"].tolist(), self.fills["cum_qty"].tolist()):
                if cum > marks.get(order_id, 0.0):
                    marks[order_id] = cum
            self._marks = marks
        return self._marks

    def filled_qty(self, order_id: int) -> float:
        return self.fill_marks().get(int(order_id), 0.0)

    def open_leaves(self, order: np.void) -> float:
        """What of an open order can still fill, consistent with the fills in this record.

        Fills are read before orders, so an order row may already count a fill this record does not
        hold; that fill's report is still to be applied, and will take its quantity off then.
        """
        qty = float(order["qty"])
        return max(qty - self.filled_qty(int(order["order_id"])), 0.0) if qty == qty else 0.0

    def keys(self) -> set[tuple[int, int]]:
        """(strategy id, client order id) of every order in the record."""
        return set(zip(self.orders["strategy_id"].tolist(), self.orders["client_order_id"].tolist()))

    def finished_keys(self) -> set[tuple[int, int]]:
        done = self.orders[self.orders["open"] == 0]
        return set(zip(done["strategy_id"].tolist(), done["client_order_id"].tolist()))


def load_run(store, since_ns: int) -> RunRecord:
    """Read the record of the run that started at ``since_ns`` (wall clock) from ``store``.

    Fills first, then orders: a fill committed in between shows in an order row but not among the
    fills, and ``RunRecord.open_leaves`` counts only the fills read (the report of the missing one
    is applied later, like any newer report).
    """
    with store.engine.connect() as conn:
        fills = conn.exec_driver_sql(
            f"SELECT {', '.join(_FILL_COLUMNS)} FROM fills WHERE local_ts_ns >= {int(since_ns)} "
            "ORDER BY event_id").fetchall()
        orders = conn.exec_driver_sql(
            f"SELECT {', '.join(_ORDER_COLUMNS)}, CASE WHEN state IN ({_TERMINAL}) THEN 0 ELSE 1 END FROM orders "
            f"WHERE state NOT IN ({_TERMINAL}) OR updated_ts_ns >= {int(since_ns)} ORDER BY order_id").fetchall()
    return RunRecord(_array(fills, FILL_DTYPE), _array(orders, ORDER_DTYPE), int(since_ns))


def _array(rows, dtype: np.dtype) -> np.ndarray:
    out = np.zeros(len(rows), dtype=dtype)
    if not rows:
        return out
    for name, column in zip(dtype.names, zip(*rows)):
        if dtype[name].kind == "f":  # SQLite keeps a NaN (a market order's price) as NULL
            out[name] = np.array(column, dtype=np.float64)  # None -> nan
        else:
            out[name] = [0 if value is None else value for value in column]
    return out


class CatchUpTimeout(RuntimeError):
    pass


class CatchUp:
    """Wait, a poll at a time, until the OMS database holds every event the OMS had published when
    ``begin`` ran; then read the run's record.

    ``events`` is the OMS's ``order_event`` ring (attached here without a role: only its positions
    and last record are read). Without one the OMS journals its events in-process before it
    publishes the reports about them, and the journal's newest record is the target instead.
    """

    def __init__(self, store, run_dir, since_ns: int, events=None, timeout_s: float = 60.0, log=None):
        self.store = store
        self.run_dir = run_dir
        self.since_ns = int(since_ns)
        self.events = events
        self.timeout_s = timeout_s
        self.log = log
        self.target_event_id = 0
        self._deadline = 0.0
        self._last_log = 0.0
        self._begun = False
        self._retarget = False

    def begin(self) -> None:
        """Note how far the OMS has published. Call after the ring positions that must be covered
        were read (the caller's report and order rings)."""
        self._deadline = time.monotonic() + self.timeout_s
        self._begun = True
        # events spilled while the writer's ring was full reach the ring only later, after older
        # reports were published: with a spill pending, the target is taken once it has drained
        self._retarget = self._spilling()
        self.target_event_id = self._last_event_id()

    def _last_event_id(self) -> int:
        ring = self.events
        if ring is None:
            return last_journaled_event_id(journal_path(self.run_dir))
        while True:
            end = ring.producer_position
            if end == 0:
                return 0
            event_id = int(ring.records[(end - 1) & (ring.capacity - 1)]["event_id"])
            # the slot is rewritten only after the writer released it and the OMS went a whole ring
            # further: the copy is good if the producer did not come near that in the meantime
            if ring.producer_position - end < ring.capacity // 2:
                return event_id

    def _spilling(self) -> bool:
        return journal_pending_records(spill_path(self.run_dir), ORDER_EVENT.itemsize) > 0

    def caught_up(self) -> bool:
        if not self._begun:
            self.begin()
        if self._spilling():
            self._retarget = True
            return self._waiting("the OMS's spill file (events made while its writer ring was full)")
        if self._retarget:
            self._retarget = False
            self.target_event_id = self._last_event_id()
        if self.target_event_id == 0:
            return True
        try:
            with self.store.engine.connect() as conn:
                found = conn.exec_driver_sql(
                    f"SELECT 1 FROM order_events WHERE event_id = {self.target_event_id}").fetchone()
        except Exception as exc:  # noqa: BLE001 - a database down is waited out like a lagging one
            return self._waiting(f"the database ({type(exc).__name__})")
        if found is None:
            return self._waiting(f"order event {self.target_event_id}")
        return True

    def _waiting(self, what: str) -> bool:
        now = time.monotonic()
        if now >= self._deadline:
            raise CatchUpTimeout(f"the OMS database did not catch up within {self.timeout_s:.0f}s (waiting for "
                                 f"{what}); is the database up and the order-event writer running?")
        if self.log is not None and now - self._last_log >= 5.0:
            self._last_log = now
            self.log.info("restart: waiting for the OMS database to hold the previous run's events (%s)", what)
        return False

    def read(self) -> RunRecord:
        return load_run(self.store, self.since_ns)


def last_journaled_event_id(stem) -> int:
    """Event id of the newest record in a journal on disk (another process's), 0 if it is empty."""
    from pathlib import Path

    stem = Path(stem)
    if not stem.parent.is_dir():
        return 0
    prefix = stem.name + "."
    segments = sorted((p for p in stem.parent.iterdir()
                       if p.name.startswith(prefix) and p.name[len(prefix):].isdigit()),
                      key=lambda p: int(p.name[len(prefix):]), reverse=True)
    size = ORDER_EVENT.itemsize
    for path in segments:
        try:
            with open(path, "rb") as f:
                whole = f.seek(0, 2) // size * size
                if whole == 0:
                    continue
                f.seek(whole - size)
                data = f.read(size)
        except OSError:
            continue
        if len(data) == size:
            return int(np.frombuffer(data, dtype=ORDER_EVENT.dtype)[0]["event_id"])
    return 0


def events_ring_of(ctx):
    """The OMS's ``order_event`` ring of this run, attached read-only; None if the topology has none
    or it cannot be found (the caller then reads the database as it is)."""
    config = ctx.config
    if config is None:
        return None
    names = [spec.name for spec in config.topology.rings if spec.layout == "order_event"]
    prefix = ring_prefix(ctx)
    if len(names) != 1 or prefix is None:
        return None
    from hftshm.transport.ring import Ring, RingAttachError

    try:
        return Ring.attach(f"{prefix}ring.{names[0]}", ORDER_EVENT)
    except (RingAttachError, ValueError, OSError):
        return None


def ring_prefix(ctx) -> str | None:
    """The run's segment prefix, from the name of one of the worker's rings (``<prefix>ring.<name>``)."""
    for key, ring in {**ctx.inputs, **ctx.outputs}.items():
        suffix = f"ring.{key}"
        if ring.name.endswith(suffix):
            return ring.name[: -len(suffix)]
    return None


def catch_up_for(ctx, log=None) -> CatchUp | None:
    """A ``CatchUp`` on the OMS database of the run ``ctx`` belongs to; None without a platform
    config or a control block (no database, or no way to tell this run's records apart)."""
    if ctx.config is None or ctx.control is None:
        return None
    from hftshm.oms.store import Store

    oms = ctx.config.oms
    store = Store(oms.database_url_for(ctx.run_dir), schema=oms.database_schema,
                  connect_timeout_s=oms.connect_timeout_s, create=False)
    return CatchUp(store, ctx.run_dir, ctx.control.created_unix_ns, events_ring_of(ctx),
                   timeout_s=oms.recovery_timeout_s, log=log)


def recent(ring, window: int | None = None) -> np.ndarray:
    """Copies of the last ``window`` (default: capacity) records published to ``ring``, oldest first;
    only safe on a ring this process produces (nobody else can overwrite them meanwhile)."""
    end = ring.producer_position
    count = min(ring.capacity if window is None else window, end)
    seqs = np.arange(end - count, end)
    return ring.records[seqs & (ring.capacity - 1)].copy()


def unreleased(ring) -> np.ndarray:
    """Copies of the records of ``ring`` its consumer has not released."""
    start, end = ring.consumer_position, ring.producer_position
    seqs = np.arange(start, end)
    return ring.records[seqs & (ring.capacity - 1)].copy()


class RebuildFromRecord:
    """A restarted stage's rebuild: poll (every ``POLL_INTERVAL_S``, from its duty cycle) until the
    database holds everything its predecessor saw, then read the run's record once and ``rebuild``
    from it. Subclasses set ``self.catch_up`` and implement ``rebuild(record)``."""

    POLL_INTERVAL_S = 0.02
    catch_up: "CatchUp"
    _next_poll: float = 0.0

    def step(self) -> bool:
        """True once the rebuild is done (call again until then)."""
        now = time.monotonic()
        if now < self._next_poll:
            return False
        self._next_poll = now + self.POLL_INTERVAL_S
        if not self.catch_up.caught_up():
            return False
        try:
            record = self.catch_up.read()
        finally:
            self.close()
        self.rebuild(record)
        return True

    def close(self) -> None:
        self.catch_up.store.close()
        if self.catch_up.events is not None:
            self.catch_up.events.close()
            self.catch_up.events = None

    def rebuild(self, record: "RunRecord") -> None:
        raise NotImplementedError

