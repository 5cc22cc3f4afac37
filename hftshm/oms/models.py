"""The OMS database schema (SQLAlchemy 2): orders, their append-only event trail, fills, run epochs.

``order_events`` is the audit trail: one row per ``order_event`` record, never updated. ``orders``
is derived from it: each row is the order as of its latest event (``last_event_id``), so an
order's state is always consistent with its events. ``fills`` repeats the executions for queries
that only want trades. Timestamps are int64 nanoseconds (wall clock since the Unix epoch, or the
exchange's clock), as in the records, so nothing is lost to a timestamp type's precision.

Column types are chosen so PostgreSQL's binary COPY can be fed straight from numpy: BIGINT for
int64, INTEGER for uint16, SMALLINT for uint8, DOUBLE PRECISION for float64. Float columns are
nullable because SQLite stores a NaN (a market order's price) as NULL; readers map NULL back to NaN.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, MetaData, SmallInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData()


class Epoch(Base):
    """One row per OMS start: the epoch is the high part of every order and event id of that run."""

    __tablename__ = "oms_epochs"

    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_unix_ns: Mapped[int] = mapped_column(BigInteger)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)


class Order(Base):
    __tablename__ = "orders"

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    client_order_id: Mapped[int] = mapped_column(BigInteger)
    strategy_id: Mapped[int] = mapped_column(Integer)
    symbol_id: Mapped[int] = mapped_column(Integer)
    side: Mapped[int] = mapped_column(SmallInteger)
    order_type: Mapped[int] = mapped_column(SmallInteger)
    tif: Mapped[int] = mapped_column(SmallInteger)
    price: Mapped[float | None] = mapped_column(Float)
    qty: Mapped[float | None] = mapped_column(Float)
    cum_qty: Mapped[float | None] = mapped_column(Float)
    leaves_qty: Mapped[float | None] = mapped_column(Float)
    state: Mapped[int] = mapped_column(SmallInteger)
    attempt: Mapped[int] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(Integer)  # order_event.flags of the latest event
    pending_price: Mapped[float | None] = mapped_column(Float)
    pending_qty: Mapped[float | None] = mapped_column(Float)
    request_client_order_id: Mapped[int] = mapped_column(BigInteger)
    created_ts_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ts_ns: Mapped[int] = mapped_column(BigInteger)
    last_event_id: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        # not unique: a strategy restarted from scratch may reuse client ids; the OMS refuses
        # duplicates among the orders it holds, the database keeps whatever happened
        Index("ix_orders_client", "strategy_id", "client_order_id"),
        Index("ix_orders_state", "state"),
        Index("ix_orders_symbol", "symbol_id"),
    )


class OrderEvent(Base):
    __tablename__ = "order_events"

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(BigInteger)
    client_order_id: Mapped[int] = mapped_column(BigInteger)
    exch_ts_ns: Mapped[int] = mapped_column(BigInteger)
    local_ts_ns: Mapped[int] = mapped_column(BigInteger)
    created_ts_ns: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[float | None] = mapped_column(Float)
    qty: Mapped[float | None] = mapped_column(Float)
    exec_price: Mapped[float | None] = mapped_column(Float)
    exec_qty: Mapped[float | None] = mapped_column(Float)
    cum_qty: Mapped[float | None] = mapped_column(Float)
    leaves_qty: Mapped[float | None] = mapped_column(Float)
    fee: Mapped[float | None] = mapped_column(Float)
    request_client_order_id: Mapped[int] = mapped_column(BigInteger)
    strategy_id: Mapped[int] = mapped_column(Integer)
    symbol_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[int] = mapped_column(SmallInteger)
    prev_state: Mapped[int] = mapped_column(SmallInteger)
    side: Mapped[int] = mapped_column(SmallInteger)
    order_type: Mapped[int] = mapped_column(SmallInteger)
    tif: Mapped[int] = mapped_column(SmallInteger)
    reason: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(Integer)
    pending_price: Mapped[float | None] = mapped_column(Float)
    pending_qty: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_order_events_order", "order_id", "event_id"),)


class Fill(Base):
    __tablename__ = "fills"

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(BigInteger)
    strategy_id: Mapped[int] = mapped_column(Integer)
    symbol_id: Mapped[int] = mapped_column(Integer)
    side: Mapped[int] = mapped_column(SmallInteger)
    price: Mapped[float | None] = mapped_column(Float)
    qty: Mapped[float | None] = mapped_column(Float)
    fee: Mapped[float | None] = mapped_column(Float)
    cum_qty: Mapped[float | None] = mapped_column(Float)
    leaves_qty: Mapped[float | None] = mapped_column(Float)
    exch_ts_ns: Mapped[int] = mapped_column(BigInteger)
    local_ts_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_fills_order", "order_id"),)


#: the order_event record field -> order_events column mapping is the identity; these are the columns
EVENT_COLUMNS: tuple[str, ...] = tuple(c.name for c in OrderEvent.__table__.columns)
ORDER_COLUMNS: tuple[str, ...] = tuple(c.name for c in Order.__table__.columns)
FILL_COLUMNS: tuple[str, ...] = tuple(c.name for c in Fill.__table__.columns)
