"""Execution reports imported from another platform: into this host's database, and back out as the
positions and per-strategy fills its dashboard and ``/api/positions`` show.

A monitor host (config/monitor-host.toml) imports the trading host's ``oms.reports`` subject into a
ring read by ``ExecutionReportWriter``, which writes each batch into the table ``execution_reports``
of its OMS database and records, in the same transaction, how far into the ring it has written
(``execution_report_imports``): a writer restarted before releasing what it wrote skips it, so each
report is written once. The monitor host runs no strategies or risk stage, so its shared-memory
view has no positions; ``ImportedPositionsView`` wraps the view and fills them in from that table
(quantity, average price, realized PnL and fees per strategy and symbol, fills per strategy).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace

import sqlalchemy as sa

from hftshm.bridge import config as bridge_config
from hftshm.codes import ReportEvent, Side
from hftshm.instruments_nb import INVERSE, average_entry, position_pnl
from hftshm.runtime.worker import Worker, WorkerContext

WRITER = "hftshm.bridge.reports:ExecutionReportWriter"
FILL_EVENTS = (int(ReportEvent.PARTIAL), int(ReportEvent.FILL))
COLUMNS = ("seq", "exch_ts_ns", "order_id", "client_order_id", "price", "qty", "leaves_qty", "cum_qty", "fee",
           "strategy_id", "symbol_id", "event", "side", "reason")

metadata = sa.MetaData()
reports_table = sa.Table(
    "execution_reports", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run", sa.BigInteger, nullable=False),  # the importing run: seq restarts with each trading run
    *(sa.Column(c, sa.Float if c in ("price", "qty", "leaves_qty", "cum_qty", "fee") else sa.BigInteger,
                nullable=False) for c in COLUMNS),
)
imports_table = sa.Table(
    "execution_report_imports", metadata,
    sa.Column("run", sa.BigInteger, primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),  # ring records written so far in that run
)


def _engine(url: str, schema: str = "") -> sa.Engine:
    options = {"schema_translate_map": {None: schema}} if schema else {}
    return sa.create_engine(url, execution_options=options)


class ExecutionReportWriter(Worker):
    """Pipeline stage: an imported ``execution_report`` ring into the database (see the module doc)."""

    COUNTER_NAMES = ("reports_written", "fills_written", "batches", "db_errors", "skipped_rewritten")

    def __init__(self, batch: int = 4096):
        self.batch = batch

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        rings = [r for r in ctx.inputs.values() if r.layout.name == "execution_report"]
        if len(rings) != 1:
            raise RuntimeError(f"worker {ctx.name!r} needs exactly one execution_report input ring, found "
                               f"{[r.name for r in ctx.inputs.values()]}")
        self.ring = rings[0]
        oms = ctx.config.oms
        self.engine = _engine(oms.database_url_for(ctx.run_dir), oms.database_schema)
        metadata.create_all(self.engine)
        self.run = bridge_config.run_identity(ctx.run_dir)
        with self.engine.connect() as conn:
            written = conn.execute(sa.select(imports_table.c.position).where(imports_table.c.run == self.run)).scalar()
        self.written = int(written or 0)  # a predecessor may have written past the ring's consumer cursor

    def do_work(self) -> int:
        view = self.ring.poll(self.batch)
        n = len(view)
        if n == 0:
            return 0
        first = self.ring.consumer_position
        skip = max(0, min(n, self.written - first))
        rows = view[skip:]
        try:
            with self.engine.begin() as conn:
                if len(rows):
                    conn.execute(reports_table.insert(), [
                        {"run": self.run, **{c: (float(r[c]) if rows.dtype[c].kind == "f" else int(r[c]))
                                             for c in COLUMNS}} for r in rows])
                position = first + n
                updated = conn.execute(imports_table.update().where(imports_table.c.run == self.run)
                                       .values(position=position)).rowcount
                if not updated:
                    conn.execute(imports_table.insert().values(run=self.run, position=position))
        except sa.exc.SQLAlchemyError as exc:
            self.ctx.counters[3] += 1
            self.ctx.log.warning("writing execution reports failed (%s); retrying", exc.__class__.__name__)
            return 0  # nothing released: the same records again next cycle
        self.written = first + n
        c = self.ctx.counters
        c[0] += len(rows)
        c[1] += int(sum(1 for e in rows["event"] if int(e) in FILL_EVENTS))
        c[2] += 1
        c[4] += skip
        self.ring.release(n)
        return n

    def on_drain(self) -> int:
        return self.do_work()

    def on_close(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.dispose()


# ------------------------------------------------------------------------------ positions


@dataclass
class _Position:
    """Average-cost position of one (strategy, symbol); on an inverse market in contracts with a
    harmonic entry and PnL in the coin (``hftshm.instruments_nb``), as the strategies book it."""

    quantity: float = 0.0
    avg_price: float = math.nan
    realized_pnl: float = 0.0
    fees: float = 0.0
    fills: int = 0
    market: str = "linear"
    contract_size: float = 1.0
    last_price: float = math.nan

    def fill(self, side: int, qty: float, price: float, fee: float) -> None:
        signed = qty if side == Side.BUY else -qty
        inverse = self.market == "inverse"
        self.fills += 1
        self.fees += fee
        self.last_price = price
        if self.quantity == 0 or (self.quantity > 0) == (signed > 0):  # opening or adding: average in
            total = self.quantity + signed
            if self.quantity == 0:
                self.avg_price = price
            elif inverse:
                self.avg_price = float(average_entry(INVERSE, abs(self.quantity), self.avg_price, qty, price))
            else:
                self.avg_price = (self.avg_price * abs(self.quantity) + price * qty) / abs(total)
            self.quantity = total
            return
        closed = min(qty, abs(self.quantity))  # reducing (or flipping): book PnL on what closes
        direction = 1 if self.quantity > 0 else -1
        if inverse:
            self.realized_pnl += float(position_pnl(INVERSE, closed * direction, self.avg_price, price,
                                                    self.contract_size))
        else:
            self.realized_pnl += closed * (price - self.avg_price) * direction
        self.quantity += signed
        if abs(self.quantity) < 1e-12:
            self.quantity, self.avg_price = 0.0, math.nan
        elif (self.quantity > 0) == (signed > 0):  # flipped: the remainder opened at this price
            self.avg_price = price


class ImportedPositions:
    """Positions and fills per (strategy, symbol) from ``execution_reports``, read incrementally."""

    def __init__(self, url: str, schema: str = "", instruments: dict[int, tuple[str, float]] | None = None):
        self.engine = _engine(url, schema)
        self.positions: dict[tuple[int, int], _Position] = {}
        self.instruments = dict(instruments or {})  # symbol id -> (market, contract size)
        self._last_id = 0
        self._lock = threading.Lock()

    def refresh(self) -> dict[tuple[int, int], _Position]:
        t = reports_table
        with self._lock:
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(sa.select(t.c.id, t.c.strategy_id, t.c.symbol_id, t.c.side, t.c.qty, t.c.price,
                                                  t.c.fee).where(t.c.id > self._last_id, t.c.event.in_(FILL_EVENTS))
                                        .order_by(t.c.id)).all()
            except sa.exc.SQLAlchemyError:
                return self.positions  # no table yet (nothing imported) or the database is away: as before
            for row in rows:
                key = (row.strategy_id, row.symbol_id)
                if key not in self.positions:
                    market, contract_size = self.instruments.get(row.symbol_id, ("linear", 1.0))
                    self.positions[key] = _Position(market=market, contract_size=contract_size)
                self.positions[key].fill(row.side, row.qty, row.price, row.fee)
                self._last_id = row.id
            return self.positions


class ImportedPositionsView:
    """A platform view whose snapshot's positions and strategies' fills come from imported reports
    when the platform itself has none (every other attribute is the wrapped view's)."""

    def __init__(self, view, positions: ImportedPositions, symbol_names: dict[int, str],
                 symbol_units: dict[int, dict] | None = None):
        self._view = view
        self._positions = positions
        self._symbols = symbol_names
        self._units = dict(symbol_units or {})  # hftshm.units.units_by_id

    def __getattr__(self, name):
        return getattr(self._view, name)

    def snapshot(self):
        from hftshm.metrics.snapshot import PositionSnapshot, StrategySnapshot

        snap = self._view.snapshot()
        if snap.positions:
            return snap
        imported = self._positions.refresh()
        # no market data here: an inverse position's coin PnL is valued at its last fill price
        positions = [PositionSnapshot(strategy=strategy_name(sid), symbol=self._symbols.get(sym, str(sym)),
                                      quantity=p.quantity, avg_price=p.avg_price, realized_pnl=p.realized_pnl,
                                      fees=p.fees, **self._units.get(sym, {}),
                                      **({"mark_price": p.last_price} if p.market == "inverse" else {}))
                     for (sid, sym), p in sorted(imported.items())]
        strategies = list(snap.strategies)
        if not strategies:
            fills: dict[int, int] = {}
            symbol_of: dict[int, str] = {}
            for (sid, sym), p in imported.items():
                fills[sid] = fills.get(sid, 0) + p.fills
                symbol_of[sid] = self._symbols.get(sym, str(sym))
            strategies = [StrategySnapshot(name=strategy_name(sid), state="remote", symbol=symbol_of[sid],
                                           strategy_id=sid, fills=n) for sid, n in sorted(fills.items())]
        return replace(snap, positions=positions, strategies=strategies)


def strategy_name(strategy_id: int) -> str:
    return f"strategy-{strategy_id}"  # the trading host's names are not in the reports


def imports_reports(config) -> bool:
    """True if this platform imports execution reports into its database (a monitor host)."""
    topology = getattr(config, "topology", None)
    return any(w.factory == WRITER for w in getattr(topology, "workers", ()))


def with_imported_positions(config, view):
    """``view``, or (on a platform importing execution reports) a view that shows their positions."""
    if not imports_reports(config):
        return view
    oms = config.oms
    from hftshm.units import units_by_id

    instruments = {s.symbol_id: (s.market, s.contract_size) for s in config.symbols}
    return ImportedPositionsView(view, ImportedPositions(oms.database_url_for(config.platform.run_dir),
                                                         oms.database_schema, instruments),
                                 {s.symbol_id: s.name for s in config.symbols}, units_by_id(config.symbols))
