"""``Store``: the OMS database (PostgreSQL or SQLite) behind one small API.

Writes come only from the event writer, in batches of ``order_event`` records, one transaction
each, and are idempotent:

- ``order_events`` and ``fills`` (the PARTIAL/FILL events) are keyed by event id, so a batch
  retried after a partial or unacknowledged commit adds nothing twice;
- ``orders`` gets each order's latest event in the batch, upserted only if it is newer than the
  row's ``last_event_id``: replays and out-of-order batches never move an order backwards.

PostgreSQL, fast path: binary COPY (built straight from numpy, no Python per row) into
``order_events`` and ``fills``, and into a temporary table for the ``orders`` upsert. A batch that
was (partly) written before makes the COPY fail on a duplicate key; it is then rolled back and
written the careful way. The careful way (and SQLite's only way): stage the batch in a temporary
table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` and the upsert.

Reads serve recovery (``load_orders``), the CLI (``list_orders``, ``events_of``) and checks
(``check_consistency``).
"""

from __future__ import annotations

import math
import os
import re
import socket
import struct
import time
from typing import Any

import numpy as np
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from hftshm.codes import OrderEventKind, Reason
from hftshm.oms import order_table_nb, oms_nb, states
from hftshm.oms.models import EVENT_COLUMNS, FILL_COLUMNS, ORDER_COLUMNS, Base
from hftshm.transport.layout import load

ORDER_EVENT = load("order_event")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
STAGE = "oms_event_stage"
ORDER_STAGE = "oms_order_stage"
_TERMINAL = ", ".join(str(int(s)) for s in sorted(states.TERMINAL_STATES))
_FILL_KIND_VALUES = np.array([int(OrderEventKind.PARTIAL), int(OrderEventKind.FILL)])
_FILL_KINDS = ", ".join(str(k) for k in _FILL_KIND_VALUES)

# fills column <- staging expression
_FILL_SOURCE = {"price": "exec_price", "qty": "exec_qty"}
# orders column <- staging expression (the rest share the name)
_ORDER_SOURCE = {"updated_ts_ns": "local_ts_ns", "last_event_id": "event_id"}


class StoreError(RuntimeError):
    """The database is unreachable or unusable; the message names it (password hidden)."""


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class Store:
    def __init__(self, url: str, *, schema: str = "", connect_timeout_s: float = 2.0, create: bool = True):
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(f"{url!r} is not a database URL (postgresql+psycopg://user@host:5432/db, "
                             f"sqlite:///path/file.sqlite)") from None
        if schema and not _IDENTIFIER.match(schema):
            raise StoreError(f"schema {schema!r} must be letters, digits and _ (not starting with a digit)")
        self.url = url
        self.schema = schema
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("postgresql", "sqlite"):
            raise StoreError(f"database {safe_url(url)}: only postgresql and sqlite are supported")
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is what is installed
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
            self.engine: Engine = create_engine(parsed, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            args: dict[str, Any] = {"connect_timeout": max(1, int(math.ceil(connect_timeout_s)))}
            if schema:
                args["options"] = f"-csearch_path={schema}"
            self.engine = create_engine(parsed, connect_args=args, pool_pre_ping=True, pool_size=2)
        if create:
            self.create_schema()

    # -- lifecycle ---------------------------------------------------------------------------------

    def create_schema(self) -> None:
        try:
            with self.engine.begin() as conn:
                if self.schema and self.dialect == "postgresql":
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot reach or prepare database {safe_url(self.url)}: {_short(exc)}") from None

    def drop_schema(self) -> None:
        """Drop every OMS table (and the schema, if one was given). Tests clean up with this."""
        with self.engine.begin() as conn:
            if self.schema and self.dialect == "postgresql":
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
                return
        Base.metadata.drop_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def reset_connections(self) -> None:
        """After an error: drop pooled connections so the next use reconnects."""
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # -- epochs --------------------------------------------------------------------------------------

    def new_epoch(self) -> int:
        """Register an OMS start; its number is the high part of the run's order and event ids."""
        with self.engine.begin() as conn:
            top = conn.exec_driver_sql("SELECT COALESCE(MAX(epoch), 0) FROM oms_epochs").scalar_one()
            # ids already used must stay unique even if the epochs table was emptied by hand
            used = conn.exec_driver_sql("SELECT COALESCE(MAX(order_id), 0) FROM orders").scalar_one()
            events = conn.exec_driver_sql("SELECT COALESCE(MAX(event_id), 0) FROM order_events").scalar_one()
            epoch = max(int(top), int(used) >> oms_nb.ID_SHIFT, int(events) >> oms_nb.ID_SHIFT) + 1
            conn.execute(text("INSERT INTO oms_epochs (epoch, started_unix_ns, host, pid) VALUES (:e, :t, :h, :p)"),
                         {"e": epoch, "t": time.time_ns(), "h": socket.gethostname()[:255], "p": os.getpid()})
        return epoch

    # -- writes --------------------------------------------------------------------------------------

    def write_events(self, events: np.ndarray) -> int:
        """Persist a batch of ``order_event`` records in one transaction; returns len(events).

        Idempotent: writing the same events again changes nothing.
        """
        if len(events) == 0:
            return 0
        with self.engine.connect() as conn:
            try:
                self._write(conn, events)
            except BaseException:
                # temporary tables created in a rolled-back transaction are gone: create them again
                conn.connection.info.pop("oms_stage", None)
                raise
        return len(events)

    def _write(self, conn, events: np.ndarray) -> None:
        if self.dialect == "postgresql":
            try:
                with conn.begin():
                    self._copy_postgresql(conn, events)
                return
            except Exception as exc:  # noqa: BLE001 - only a duplicate key is expected here
                if not _is_duplicate_key(exc):
                    raise
                # written (partly) before: the careful way below
                conn.connection.info.pop("oms_stage", None)
        with conn.begin():
            if self.dialect == "postgresql":
                self._prepare_temp_tables(conn)
                _copy(conn, STAGE, EVENT_COPY, events)
            else:
                self._stage_sqlite(conn, events)
            for statement in _MOVE_STATEMENTS:
                conn.exec_driver_sql(statement)
            if self.dialect == "sqlite":
                conn.exec_driver_sql(f"DELETE FROM {STAGE}")

    def _prepare_temp_tables(self, conn) -> None:
        info = conn.connection.info
        if not info.get("oms_stage"):
            conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE order_events) ON COMMIT DELETE ROWS")
            conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {ORDER_STAGE} (LIKE orders) ON COMMIT DELETE ROWS")
            info["oms_stage"] = True

    def _copy_postgresql(self, conn, events: np.ndarray) -> None:
        self._prepare_temp_tables(conn)
        _copy(conn, "order_events", EVENT_COPY, events)
        fills = events[np.isin(events["kind"], _FILL_KIND_VALUES)]
        if len(fills):
            _copy(conn, "fills", FILL_COPY, fills)
        _copy(conn, ORDER_STAGE, ORDER_COPY, latest_per_order(events))
        conn.exec_driver_sql(_ORDER_UPSERT)

    def _stage_sqlite(self, conn, events: np.ndarray) -> None:
        info = conn.connection.info
        if not info.get("oms_stage"):
            conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} AS SELECT * FROM order_events WHERE 0")
            conn.exec_driver_sql(f"DELETE FROM {STAGE}")
            info["oms_stage"] = True
        placeholders = ", ".join("?" for _ in EVENT_COLUMNS)
        rows = events[list(EVENT_COLUMNS)].tolist()
        conn.exec_driver_sql(f"INSERT INTO {STAGE} ({', '.join(EVENT_COLUMNS)}) VALUES ({placeholders})", rows)

    # -- reads ---------------------------------------------------------------------------------------

    def load_orders(self, recent_terminal: int = 10000) -> np.ndarray:
        """Open orders plus the ``recent_terminal`` latest finished ones, oldest first, as
        ``ORDER_SLOT_DTYPE`` rows for ``OmsEngine.restore``."""
        columns = ", ".join(ORDER_COLUMNS)
        with self.engine.connect() as conn:
            open_rows = conn.exec_driver_sql(
                f"SELECT {columns} FROM orders WHERE state NOT IN ({_TERMINAL}) ORDER BY order_id").fetchall()
            done_rows = []
            if recent_terminal > 0:
                done_rows = conn.exec_driver_sql(
                    f"SELECT {columns} FROM orders WHERE state IN ({_TERMINAL}) "
                    f"ORDER BY order_id DESC LIMIT {int(recent_terminal)}"
                ).fetchall()
        rows = list(reversed(done_rows)) + list(open_rows)
        out = np.zeros(len(rows), dtype=order_table_nb.ORDER_SLOT_DTYPE)
        for i, row in enumerate(rows):
            r = dict(zip(ORDER_COLUMNS, row))
            slot = out[i]
            for name in ("order_id", "client_order_id", "request_client_order_id", "created_ts_ns", "strategy_id",
                         "symbol_id", "side", "order_type", "tif", "state", "attempt"):
                slot[name] = r[name] or 0
            for name in ("price", "qty", "cum_qty", "leaves_qty", "pending_price", "pending_qty"):
                slot[name] = np.nan if r[name] is None else r[name]
            flags = int(r["flags"] or 0)
            slot["pending"] = flags & oms_nb.EVENT_PENDING_MASK
            slot["flags"] = order_table_nb.FLAG_ACKED if flags & oms_nb.EVENT_FLAG_ACKED else 0
            slot["owner"] = r["strategy_id"] or 0
        return out

    def count(self, table: str) -> int:
        if table not in ("orders", "order_events", "fills", "oms_epochs"):
            raise ValueError(f"unknown table {table!r}")
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())

    def list_orders(self, *, states_in: list[int] | None = None, strategy_id: int | None = None,
                    symbol_id: int | None = None, limit: int = 50) -> list[dict]:
        """Latest orders first, filtered; each a dict of the ``orders`` columns."""
        where, params = [], {}
        if states_in:
            where.append(f"state IN ({', '.join(str(int(s)) for s in states_in)})")
        if strategy_id is not None:
            where.append("strategy_id = :strategy")
            params["strategy"] = strategy_id
        if symbol_id is not None:
            where.append("symbol_id = :symbol")
            params["symbol"] = symbol_id
        sql = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY order_id DESC LIMIT {int(limit)}"
        with self.engine.connect() as conn:
            return [dict(zip(ORDER_COLUMNS, row)) for row in conn.execute(text(sql), params)]

    def get_order(self, order_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE order_id = :o"),
                               {"o": int(order_id)}).fetchone()
        return None if row is None else dict(zip(ORDER_COLUMNS, row))

    def events_of(self, order_id: int) -> list[dict]:
        """An order's audit trail, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT {', '.join(EVENT_COLUMNS)} FROM order_events WHERE order_id = :o "
                                     f"ORDER BY event_id"), {"o": int(order_id)}).fetchall()
        return [dict(zip(EVENT_COLUMNS, row)) for row in rows]

    def fills_of(self, order_id: int) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT {', '.join(FILL_COLUMNS)} FROM fills WHERE order_id = :o "
                                     f"ORDER BY event_id"),
                                {"o": int(order_id)}).fetchall()
        return [dict(zip(FILL_COLUMNS, row)) for row in rows]

    def venue_cancels(self, session_started_ns: int) -> list[dict]:
        """The CANCELLED events (reason ``venue_restart``) one new exchange session caused: the OMS
        stamps them with the session's start (``exch_ts_ns`` of its announcement). Oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM order_events WHERE kind = :kind AND reason = :reason "
                f"AND exch_ts_ns = :started ORDER BY event_id"),
                {"kind": int(OrderEventKind.CANCELLED), "reason": int(Reason.VENUE_RESTART),
                 "started": int(session_started_ns)}).fetchall()
        return [dict(zip(EVENT_COLUMNS, row)) for row in rows]

    def reconcile_open_orders(self, limit: int = 20) -> list[str]:
        """Problems with the open orders a restart reloads (empty when consistent): each row must be
        its latest event. Index-driven, so it stays cheap on a large history (unlike
        ``check_consistency``, which replays everything)."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT o.order_id, o.state, e.state, o.last_event_id FROM orders o "
                "LEFT JOIN order_events e ON e.event_id = o.last_event_id "
                f"WHERE o.state NOT IN ({_TERMINAL}) AND (e.event_id IS NULL OR e.state <> o.state "
                "OR e.order_id <> o.order_id OR EXISTS (SELECT 1 FROM order_events n "
                "WHERE n.order_id = o.order_id AND n.event_id > o.last_event_id)) "
                f"LIMIT {int(limit)}").fetchall()
        return [f"open order {r[0]}: row state {r[1]} does not match its latest event ({r[3]}, state {r[2]})"
                for r in rows]

    def check_consistency(self, limit: int = 20) -> list[str]:
        """Problems found (empty when consistent): every order's row must equal its latest event,
        every event must belong to an order row, and every history must be legal in the state table."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            mismatched = conn.exec_driver_sql(
                "SELECT o.order_id, o.state, e.state, o.last_event_id, e.event_id FROM orders o "
                "LEFT JOIN (SELECT order_id, MAX(event_id) AS top FROM order_events GROUP BY order_id) t "
                "ON t.order_id = o.order_id LEFT JOIN order_events e ON e.event_id = t.top "
                "WHERE e.event_id IS NULL OR e.state <> o.state OR e.event_id <> o.last_event_id "
                f"LIMIT {int(limit)}").fetchall()
            problems += [f"order {r[0]}: row state {r[1]} / last event {r[3]}, latest event {r[4]} has state {r[2]}"
                         for r in mismatched]
            orphans = conn.exec_driver_sql(
                "SELECT DISTINCT e.order_id FROM order_events e LEFT JOIN orders o ON o.order_id = e.order_id "
                f"WHERE o.order_id IS NULL LIMIT {int(limit)}").fetchall()
            problems += [f"events of order {r[0]} but no order row" for r in orphans]
            trail = conn.exec_driver_sql(
                "SELECT order_id, kind, prev_state, state FROM order_events ORDER BY order_id, event_id").fetchall()
        state: dict[int, int] = {}
        for order_id, kind, prev_state, new_state in trail:
            before = state.get(order_id, states.NO_STATE)
            if kind == OrderEventKind.REFUSED:
                if new_state != before:
                    problems.append(f"order {order_id}: a refused event changed state {before} -> {new_state}")
                continue
            expected = states.next_state(before, kind)
            if prev_state != before or expected == 0 or new_state not in (expected, states.normalize(expected, 1.0)):
                problems.append(f"order {order_id}: {OrderEventKind(kind).name} from {before} to {new_state} "
                                f"(recorded from {prev_state}) is not in the state table")
            state[order_id] = new_state
            if len(problems) >= limit:
                break
        return problems[:limit]


def _is_duplicate_key(exc: BaseException) -> bool:
    # the COPY runs on the raw psycopg cursor, so its errors arrive unwrapped
    return isinstance(exc, IntegrityError) or getattr(exc, "sqlstate", None) == "23505"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the CLI) never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _short(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text_[0] if text_ else type(exc).__name__


def _order_upsert(source: str, where: str) -> str:
    target = ", ".join(ORDER_COLUMNS)
    columns = ", ".join(_ORDER_SOURCE.get(c, c) for c in ORDER_COLUMNS) if source == STAGE else target
    updates = ", ".join(f"{c} = excluded.{c}" for c in ORDER_COLUMNS if c != "order_id")
    return (f"INSERT INTO orders ({target}) SELECT {columns} FROM {source} WHERE {where} "
            f"ON CONFLICT (order_id) DO UPDATE SET {updates} WHERE orders.last_event_id < excluded.last_event_id")


def _move_statements() -> tuple[str, ...]:
    events = ", ".join(EVENT_COLUMNS)
    fills_target = ", ".join(FILL_COLUMNS)
    fills_source = ", ".join(_FILL_SOURCE.get(c, c) for c in FILL_COLUMNS)
    return (
        f"INSERT INTO order_events ({events}) SELECT {events} FROM {STAGE} WHERE true "
        f"ON CONFLICT (event_id) DO NOTHING",
        f"INSERT INTO fills ({fills_target}) SELECT {fills_source} FROM {STAGE} WHERE kind IN ({_FILL_KINDS}) "
        f"ON CONFLICT (event_id) DO NOTHING",
        _order_upsert(STAGE, f"event_id IN (SELECT MAX(event_id) FROM {STAGE} GROUP BY order_id)"),
    )


_MOVE_STATEMENTS = _move_statements()
_ORDER_UPSERT = _order_upsert(ORDER_STAGE, "true")


def latest_per_order(events: np.ndarray) -> np.ndarray:
    """The last event of each order in ``events`` (ids ascend within a batch: last = newest)."""
    reversed_ids = events["order_id"][::-1]
    _, first_in_reversed = np.unique(reversed_ids, return_index=True)
    return events[len(events) - 1 - first_in_reversed]


# -- PostgreSQL binary COPY, straight from numpy ------------------------------------------------------

_PG_TYPES = {"BIGINT": ">i8", "INTEGER": ">i4", "SMALLINT": ">i2", "FLOAT": ">f8", "DOUBLE PRECISION": ">f8"}
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


class CopyFormat:
    """One table's binary COPY tuple as a packed big-endian numpy record: a field count, then
    (length, value) per column. Every column is fixed-width and never NULL, so building a COPY
    stream is a few vectorised assignments, no Python per row."""

    def __init__(self, table, source: dict[str, str]):
        fields: list[tuple[str, str]] = [("count", ">i2")]
        self.columns: list[tuple[str, str, str]] = []  # (column, source field, big-endian type)
        for column in table.columns:
            big = _PG_TYPES[str(column.type).upper()]
            fields += [(f"len_{column.name}", ">i4"), (column.name, big)]
            self.columns.append((column.name, source.get(column.name, column.name), big))
        self.dtype = np.dtype(fields)
        self.column_list = ", ".join(c for c, _, _ in self.columns)

    def payload(self, events: np.ndarray) -> bytes:
        rows = np.empty(len(events), dtype=self.dtype)
        rows["count"] = len(self.columns)
        for column, source, big in self.columns:
            rows[f"len_{column}"] = np.dtype(big).itemsize
            rows[column] = events[source]
        return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def _copy_formats() -> tuple[CopyFormat, CopyFormat, CopyFormat]:
    from hftshm.oms.models import Fill, Order, OrderEvent

    return (CopyFormat(OrderEvent.__table__, {}), CopyFormat(Fill.__table__, _FILL_SOURCE),
            CopyFormat(Order.__table__, _ORDER_SOURCE))


EVENT_COPY, FILL_COPY, ORDER_COPY = _copy_formats()


def copy_binary(events: np.ndarray) -> bytes:
    """``events`` as a PostgreSQL binary COPY stream for the ``order_events`` column list."""
    return EVENT_COPY.payload(events)


def _copy(conn, table: str, fmt: CopyFormat, events: np.ndarray) -> None:
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(f"COPY {table} ({fmt.column_list}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(fmt.payload(events))
    finally:
        cursor.close()
