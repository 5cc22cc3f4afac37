"""Run the whole platform in-process under a ``Supervisor`` and collect everything a test judges.

    config = e2e_config(run_dir, {"strategies": {"market_maker": {"spread_bps": 0.5}}})
    result = run_platform(config, hooks=[kill_when("trading", lambda probe: probe.progress() > 0.3)])
    assert result.unconsumed_rings() == {}

``run_platform`` starts the workers (no web server), calls each hook every poll (about every 10 ms)
with a ``Probe`` so a test can act mid-run (kill a process, stop the database), waits until the data
has ended and the pipeline is quiet, asks every worker to quiesce (``Supervisor.quiesce``: the
strategies cancel their resting orders, the pipeline settles, nobody closes), takes the
``PlatformSnapshot`` (before the workers close: strategies unlink their status segment then),
drains, and then reads what the drain left: every ring's producer and consumer positions, every
worker's counters, the risk control block, the OMS database (through ``Store``) and, when
configured, the risk state mirrored to Redis. The ``*_problems`` functions judge the invariants.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hftshm.codes import OrderEventKind, OrderState, Side, WorkerState
from hftshm.config import read_toml
from hftshm.platform import PlatformConfig, merge
from hftshm.runtime import segments
from hftshm.runtime import status as st
from hftshm.runtime.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "config" / "platform.toml"
REAL_DAY = ROOT / "data" / "btcusdt_20240808.csv.gz"
# the shipped day: its events, and the consistent books the feed publishes from them
REAL_DAY_EVENTS = 598_754
REAL_DAY_BOOK_SNAPSHOTS = 6_548
TERMINAL = {int(OrderState.FILLED), int(OrderState.CANCELLED), int(OrderState.REJECTED)}
FILL_KINDS = {int(OrderEventKind.PARTIAL), int(OrderEventKind.FILL)}
QTY_TOLERANCE = 1e-9
HFTSHM = str(Path(sys.executable).with_name("hftshm"))  # the installed console script

# A busier market maker than the shipped one: requotes up to every 5 ms of market time inside a
# tighter spread, so orders, cancels and fills keep flowing through a fault, within [risk] limits.
BUSY_MARKET_MAKER = {"strategies": {"market_maker": {"spread_bps": 0.5, "min_requote_interval_ms": 5,
                                                     "max_inventory": 0.05}}}
# ... and a VWAP buyer taking liquidity all day: fills from the first minutes, on both sides of the
# symbol (the market maker mostly sells into this day's fall), so realized PnL is not zero
MARKET_MAKER_AND_VWAP = merge(BUSY_MARKET_MAKER, {"strategies": {"vwap": {
    "enabled": True, "side": "buy", "target_qty": 0.2, "horizon_s": 300}}})


def e2e_config(run_dir: Path, overrides: dict | None = None, rings: dict[str, dict] | None = None) -> PlatformConfig:
    """The shipped config, replaying the real day at speed 0 into ``run_dir``, with ``overrides``
    deep-merged in and ``rings`` = {ring name: {key: value}} changed in place."""
    raw = read_toml(SHIPPED_CONFIG)
    raw = merge(raw, {
        "platform": {"run_dir": str(run_dir), "log_level": "info"},
        "feed": {"speed": 0.0, "data": [str(REAL_DAY)]},
        # restarts must come back quickly within a test. The heartbeat timeout is long: a kernel whose
        # numba cache a source change invalidated compiles inside a RUNNING step (20-30 s on this
        # shared 2-core machine), and these tests kill processes themselves, they do not test hangs
        "supervisor": {"restart_backoff_s": 0.05, "restart_backoff_max_s": 0.5, "drain_timeout_s": 20.0,
                       "heartbeat_timeout_s": 300.0},
    })
    raw = merge(raw, overrides or {})
    for name, changes in (rings or {}).items():
        matches = [r for r in raw["rings"] if r["name"] == name]
        assert matches, f"no ring {name!r} in the shipped topology"
        matches[0].update(changes)
    return PlatformConfig.from_raw(raw, base_dir=ROOT).validate_all()


@dataclass
class RingEnd:
    """A ring after the drain."""

    name: str
    producer: str
    consumer: str
    backpressure: str
    capacity: int
    producer_position: int
    consumer_position: int
    full_events: int
    drops: int


@dataclass
class Probe:
    """What a hook sees each poll: the supervisor and live counters."""

    sup: Supervisor
    started: float
    fired: dict = field(default_factory=dict)
    # a hook holding a key keeps the run from finishing (e.g. while the database is down)
    holds: set = field(default_factory=set)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def counters(self, worker: str) -> dict[str, int]:
        entry = self.sup.manifest.worker(worker)
        values = self.sup.status.counters(entry.row)
        return {name: int(values[i]) for i, name in enumerate(entry.counter_names)}

    def progress(self) -> float:
        """Share of the data the exchange has seen (0..1): the last stage market data reaches, so
        everything upstream of it is busy at that point (the feed itself runs far ahead)."""
        total = self.counters("feed")["events_total"]
        return self.counters("exchange")["events_in"] / total if total else 0.0

    def all_running(self) -> bool:
        return all(s in (WorkerState.RUNNING, WorkerState.FINISHED) for s in self.sup.worker_states().values())


Hook = Callable[[Probe], None]


@dataclass
class RunResult:
    config: PlatformConfig
    run_dir: Path
    prefix: str
    elapsed_s: float
    snapshot: object  # hftshm.metrics.snapshot.PlatformSnapshot, taken when quiet, before the drain
    rings: dict[str, RingEnd]
    counters: dict[str, dict[str, int]]  # after the drain
    states: dict[str, str]  # after the drain
    restarts: dict[str, int]  # per process
    control: dict  # the risk control block after the drain
    orders: list[dict]
    events: list[dict]
    fills: list[dict]
    consistency: list[str]
    fired: dict
    quiesced: bool  # the pipeline went quiet after the drain request, within drain_timeout_s
    redis_risk: dict | None = None  # hftshm:<ns>:risk:{positions,pnl} when [redis] is configured
    logs: dict[str, str] = field(default_factory=dict)

    def unconsumed_rings(self) -> dict[str, tuple[int, int]]:
        """Rings whose consumer has not released everything produced: {name: (producer, consumer)}."""
        return {r.name: (r.producer_position, r.consumer_position) for r in self.rings.values()
                if r.producer_position != r.consumer_position}

    def restarted(self, worker: str) -> bool:
        """Whether the process running ``worker`` was restarted during the run."""
        topology = self.config.topology
        process = topology.worker(worker).process if topology.placement == "composite" else worker
        return self.restarts.get(process, 0) > 0

    def open_orders(self) -> list[dict]:
        return [o for o in self.orders if o["state"] not in TERMINAL]

    def events_by_order(self) -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = {}
        for event in self.events:
            out.setdefault(event["order_id"], []).append(event)
        return out


def run_platform(config: PlatformConfig, hooks: list[Hook] = (), timeout_s: float = 240.0,
                 quiet_s: float = 0.5) -> RunResult:
    """Run the platform on ``config`` until the data ends and the pipeline is quiet; see the module doc."""
    from hftshm.metrics.live import SharedMemoryView
    from hftshm.oms.store import Store
    from hftshm.units import units_by_id

    run_dir = Path(config.platform.run_dir)
    names = {s.symbol_id: s.name for s in config.symbols}
    started = time.monotonic()
    with Supervisor(config.topology, config) as sup:
        sup.start()
        probe = Probe(sup, time.monotonic())
        deadline = time.monotonic() + timeout_s
        while True:
            sup.poll()
            for hook in hooks:
                hook(probe)
            if sup.finished() and not probe.holds and not any(h.next_start_at for h in sup.handles.values()):
                # a process restarting (backoff) may still have work: only quiet with everyone up counts
                if probe.all_running() and sup.wait_quiet(quiet_s=quiet_s, timeout_s=30.0):
                    break
            assert time.monotonic() < deadline, (
                f"platform not finished after {timeout_s:.0f} s: {sup.worker_states()}, "
                f"feed {probe.counters('feed')}")
            time.sleep(0.01)
        elapsed_s = time.monotonic() - started
        quiesced = sup.quiesce()  # strategies cancel what rests; nobody has closed yet
        view = SharedMemoryView.from_manifest(sup.manifest, symbol_names=names,
                                              symbol_units=units_by_id(config.symbols))
        try:
            snapshot = view.snapshot()
        finally:
            view.close()
        sup.shutdown()
        rings = {}
        for entry in sup.manifest.rings:
            ring = sup.rings[entry.name]
            rings[entry.name] = RingEnd(entry.name, entry.producer, entry.consumer, entry.backpressure,
                                        entry.capacity, int(ring.producer_position), int(ring.consumer_position),
                                        int(ring.full_events), int(ring.drops))
        counters, states = {}, {}
        for entry in sup.manifest.workers:
            values = sup.status.counters(entry.row)
            counters[entry.name] = {n: int(values[i]) for i, n in enumerate(entry.counter_names)}
            states[entry.name] = WorkerState(int(sup.status.words[entry.row, st.STATE])).name.lower()
        restarts = {name: handle.restarts for name, handle in sup.handles.items()}
        control = sup.control.snapshot() if sup.control is not None else {}
        prefix = sup.prefix
    store = Store(config.oms.database_url_for(run_dir), schema=config.oms.database_schema, create=False)
    try:
        orders = store.list_orders(limit=10_000_000)
        with store.engine.connect() as conn:
            from hftshm.oms.models import EVENT_COLUMNS, FILL_COLUMNS

            events = [dict(zip(EVENT_COLUMNS, row)) for row in conn.exec_driver_sql(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM order_events ORDER BY event_id")]
            fills = [dict(zip(FILL_COLUMNS, row)) for row in conn.exec_driver_sql(
                f"SELECT {', '.join(FILL_COLUMNS)} FROM fills ORDER BY event_id")]
        consistency = store.check_consistency(limit=50)
    finally:
        store.close()
    redis_risk = None
    if config.redis.enabled:
        redis_risk = read_redis_risk(config)
    logs = {p.stem: p.read_text(errors="replace") for p in (run_dir / "logs").glob("*.log")}
    return RunResult(config, run_dir, prefix, elapsed_s, snapshot, rings, counters, states, restarts, control,
                     orders, events, fills, consistency, probe.fired, quiesced, redis_risk, logs)


def read_redis_risk(config: PlatformConfig) -> dict | None:
    import redis

    try:
        client = redis.Redis.from_url(config.redis.url, socket_connect_timeout=1, decode_responses=True)
        positions = client.hgetall(config.redis.key("risk", "positions"))
        pnl = client.hgetall(config.redis.key("risk", "pnl"))
        client.close()
    except redis.RedisError:
        return None
    # the PnL hash carries its unit ("unit": "USD") beside the figures
    return {"positions": {k: float(v) for k, v in positions.items()},
            "pnl": {k: (v if k == "unit" else float(v)) for k, v in pnl.items()}}


def delete_redis_namespace(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"hftshm:{namespace}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- hooks -------------------------------------------------------------------------------------------


def kill_when(process: str, when: Callable[[Probe], bool]) -> Hook:
    """SIGKILL ``process`` once, at the first poll where ``when(probe)`` holds."""
    key = f"kill:{process}"

    def hook(probe: Probe) -> None:
        if key in probe.fired or not when(probe):
            return
        handle = probe.sup.handles[process]
        if handle.process is None or not handle.process.is_alive():
            return
        os.kill(handle.process.pid, signal.SIGKILL)
        probe.fired[key] = {"pid": handle.process.pid, "progress": probe.progress()}

    return hook


# -- recomputations ----------------------------------------------------------------------------------


@dataclass
class Book:
    """Average-cost position keeping, as a reference: realized PnL on the reducing part of a fill,
    the average price reset when a fill flips the position through zero."""

    position: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    bought: float = 0.0
    sold: float = 0.0

    def fill(self, side: int, price: float, qty: float, fee: float) -> None:
        signed = qty if side == Side.BUY else -qty
        if side == Side.BUY:
            self.bought += qty
        else:
            self.sold += qty
        self.fees += fee
        if self.position == 0.0 or (self.position > 0) == (signed > 0):
            total = self.position + signed
            self.avg_price = (self.avg_price * abs(self.position) + price * qty) / abs(total)
            self.position = total
            return
        closing = min(qty, abs(self.position))
        direction = 1.0 if self.position > 0 else -1.0
        self.realized += closing * (price - self.avg_price) * direction
        remaining = self.position + signed
        if abs(remaining) <= QTY_TOLERANCE:
            self.position, self.avg_price = 0.0, 0.0
        elif (remaining > 0) != (self.position > 0):
            self.position, self.avg_price = remaining, price
        else:
            self.position = remaining


def platform_fills(result: RunResult, ids: bool = True) -> list[tuple]:
    """A run's fills as (exchange time, client order id, side, price, qty, fee), sorted, to compare
    with ``backtest_fills``. Client order ids are relative to the run's first (the platform starts
    them from the wall clock); ``ids=False`` puts 0 instead (several strategies number apart)."""
    coid = {o["order_id"]: o["client_order_id"] for o in result.orders}
    first = min(coid.values())
    return sorted((int(f["exch_ts_ns"]), int(coid[f["order_id"]]) - first if ids else 0, int(f["side"]),
                   float(f["price"]), float(f["qty"]), float(f["fee"])) for f in result.fills)


def backtest_fills(result, ids: bool = True) -> list[tuple]:
    """A backtest's fills in ``platform_fills``' form (its client order ids start at 1)."""
    return sorted((int(f["exch_ts_ns"]), int(f["client_order_id"]) - 1 if ids else 0, int(f["side"]),
                   float(f["price"]), float(f["qty"]), float(f["fee"])) for f in result.fills)


def books_from_fills(fills: list[dict]) -> dict[int, Book]:
    """Per symbol id, in exchange-time order (the order the fills happened)."""
    books: dict[int, Book] = {}
    for f in sorted(fills, key=lambda f: (f["exch_ts_ns"], f["event_id"])):
        books.setdefault(int(f["symbol_id"]), Book()).fill(int(f["side"]), float(f["price"]), float(f["qty"]),
                                                          float(f["fee"] or 0.0))
    return books


def positions_from_orders(orders: list[dict]) -> dict[int, float]:
    """Per symbol id, from the orders table: signed cum_qty of every order."""
    out: dict[int, float] = {}
    for o in orders:
        cum = float(o["cum_qty"] or 0.0)
        if math.isnan(cum):
            cum = 0.0
        signed = cum if int(o["side"]) == Side.BUY else -cum
        out[int(o["symbol_id"])] = out.get(int(o["symbol_id"]), 0.0) + signed
    return out


# -- CLI helpers -------------------------------------------------------------------------------------


def shipped_config_text(run_dir: Path, extra: str = "", speed: float = 0.0) -> str:
    """The shipped config file with run_dir, data and speed replaced (TOML text, for subprocess runs)."""
    text = SHIPPED_CONFIG.read_text()
    text = text.replace('run_dir = "run"', f'run_dir = "{run_dir}"', 1)
    text = text.replace('data = ["data/btcusdt_20240808.csv.gz"]', f'data = ["{REAL_DAY}"]', 1)
    text = text.replace("speed = 10.0", f"speed = {speed}", 1)
    assert str(run_dir) in text and str(REAL_DAY) in text and f"speed = {speed}" in text, "shipped config changed shape"
    return text + extra


def hftshm(args: list[str], timeout_s: float = 240.0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([HFTSHM, *args], capture_output=True, text=True, timeout=timeout_s, cwd=cwd or ROOT,
                          env=cli_env())


def cli_env() -> dict:
    return {**os.environ, "COLUMNS": "200"}  # rich wraps tables to the terminal width


def segments_of_pid(pid: int) -> list[str]:
    return segments.segments_of(f"{segments.SEGMENT_PREFIX}{pid}_")


# -- invariants: each returns the problems found (empty = holds), so a failure lists all of them ------


def pipeline_problems(r: RunResult) -> list[str]:
    """No sequence gap: every ring fully consumed, nothing dropped on a block ring, every event of
    the data published and seen by both market-data consumers, every worker closed cleanly."""
    problems = []
    for ring in r.rings.values():
        if ring.producer_position != ring.consumer_position:
            problems.append(f"ring {ring.name} ({ring.producer} -> {ring.consumer}): consumer released "
                            f"{ring.consumer_position} of {ring.producer_position} records")
        if ring.backpressure == "block" and ring.drops:
            problems.append(f"block ring {ring.name} dropped {ring.drops} records")
    feed = r.counters["feed"]
    total = feed["events_total"]
    if total <= 0 or feed["events_published"] != total:
        problems.append(f"feed published {feed['events_published']} of {total} events")
    # a restarted feed may publish the batch it was killed in again (at-least-once), never less
    feed_restarted = r.restarted("feed")
    for ring in r.rings.values():
        if ring.producer == "feed" and _layout_of(r, ring.name) == "market_event":
            ok = ring.producer_position >= total if feed_restarted else ring.producer_position == total
            if not ok:
                problems.append(f"ring {ring.name} carried {ring.producer_position} market events of {total}")
    seen = {"strategies": r.counters["strategies"]["events"], "exchange": r.counters["exchange"]["events_in"]}
    for worker, count in seen.items():
        if count < total:
            problems.append(f"{worker} consumed {count} market events of {total}")
    not_stopped = {w: s for w, s in r.states.items() if s != "stopped"}
    if not_stopped:
        problems.append(f"workers not cleanly stopped after the drain: {not_stopped}")
    return problems


def _layout_of(r: RunResult, ring: str) -> str:
    return next(spec.layout for spec in r.config.topology.rings if spec.name == ring)


def database_problems(r: RunResult) -> list[str]:
    """The OMS database: a legal, consistent event history per order (``Store.check_consistency``);
    every order terminal or, if left open, counted by the OMS's open-order gauge; fills equal to
    the fill events; each order's cum_qty the sum of its fills; no execution recorded twice; one
    order per client order id (a re-delivered intent is refused as a duplicate, not re-created)."""
    problems = list(r.consistency)
    open_orders = r.open_orders()
    gauge = r.counters["oms"]["open_orders_gauge"]
    if len(open_orders) != gauge:
        problems.append(f"{len(open_orders)} open orders in the database, the OMS counts {gauge}: "
                        f"{[(o['order_id'], OrderState(o['state']).name) for o in open_orders[:5]]}")
    fill_events = {e["event_id"] for e in r.events if e["kind"] in FILL_KINDS}
    fill_ids = {f["event_id"] for f in r.fills}
    if fill_events != fill_ids:
        problems.append(f"fills table ({len(fill_ids)}) differs from the fill events ({len(fill_events)})")
    by_order: dict[int, list[dict]] = {}
    for f in r.fills:
        by_order.setdefault(f["order_id"], []).append(f)
    for o in r.orders:
        fills = sorted(by_order.get(o["order_id"], []), key=lambda f: f["event_id"])
        executed = sum(float(f["qty"]) for f in fills)
        cum = float(o["cum_qty"] or 0.0)
        if abs(executed - cum) > QTY_TOLERANCE:
            problems.append(f"order {o['order_id']}: cum_qty {cum} but its fills sum to {executed}")
        if cum > float(o["qty"]) + QTY_TOLERANCE:
            problems.append(f"order {o['order_id']}: cum_qty {cum} above its quantity {o['qty']}")
        cums = [float(f["cum_qty"]) for f in fills]
        if any(b <= a for a, b in zip(cums, cums[1:])):
            problems.append(f"order {o['order_id']}: an execution recorded twice (cum_qty sequence {cums})")
        if o["state"] == OrderState.FILLED and abs(cum - float(o["qty"])) > QTY_TOLERANCE:
            problems.append(f"order {o['order_id']}: FILLED with cum_qty {cum} of {o['qty']}")
    client_ids: dict[tuple[int, int], int] = {}
    for o in r.orders:
        key = (o["strategy_id"], o["client_order_id"])
        client_ids[key] = client_ids.get(key, 0) + 1
    repeated = {k: n for k, n in client_ids.items() if n > 1}
    if repeated:
        problems.append(f"client order ids with more than one order: {list(repeated.items())[:5]}")
    first_kinds = {events[0]["kind"] for events in r.events_by_order().values()}
    if first_kinds - {int(OrderEventKind.CREATED)}:
        problems.append(f"order histories not starting with CREATED: {first_kinds}")
    return problems


def _close(a: float, b: float, tolerance: float = 1e-6) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


def position_problems(r: RunResult, *, strategies: bool = True, risk: bool = True) -> list[str]:
    """Positions per symbol from the OMS orders table, the fills, risk (the Redis mirror when
    configured) and the strategies agree to 1e-9; realized PnL and fees of risk and of each
    strategy agree with an average-cost recomputation from the fills."""
    problems = []
    names = {s.symbol_id: s.name for s in r.config.symbols}
    books = books_from_fills(r.fills)
    from_orders = positions_from_orders(r.orders)
    for sid in set(books) | set(from_orders):
        a, b = from_orders.get(sid, 0.0), books[sid].position if sid in books else 0.0
        if abs(a - b) > QTY_TOLERANCE:
            problems.append(f"{names.get(sid, sid)}: position {a} from the orders table, {b} from the fills")
    if risk:
        realized = sum(b.realized for b in books.values())
        fees = sum(b.fees for b in books.values())
        if not _close(r.control["realized_pnl"], realized):
            problems.append(f"risk realized PnL {r.control['realized_pnl']}, recomputed from fills {realized}")
        if not _close(r.control["fees"], fees):
            problems.append(f"risk fees {r.control['fees']}, recomputed from fills {fees}")
        if r.redis_risk is not None:
            for sid, book in books.items():
                mirrored = r.redis_risk["positions"].get(names[sid], 0.0)
                if abs(mirrored - book.position) > QTY_TOLERANCE:
                    problems.append(f"{names[sid]}: risk position {mirrored}, fills {book.position}")
    if strategies:
        ids = {s.name: s.strategy_id for s in r.snapshot.strategies}
        per_strategy: dict[tuple[int, int], Book] = {}
        for f in sorted(r.fills, key=lambda f: f["event_id"]):
            per_strategy.setdefault((int(f["strategy_id"]), int(f["symbol_id"])), Book()).fill(
                int(f["side"]), float(f["price"]), float(f["qty"]), float(f["fee"] or 0.0))
        by_symbol_name = {v: k for k, v in names.items()}
        seen = set()
        for p in r.snapshot.positions:
            key = (ids[p.strategy], by_symbol_name[p.symbol])
            seen.add(key)
            book = per_strategy.get(key, Book())
            if abs(p.quantity - book.position) > QTY_TOLERANCE:
                problems.append(f"strategy {p.strategy} {p.symbol}: position {p.quantity}, fills {book.position}")
            if not _close(p.realized_pnl, book.realized):
                problems.append(f"strategy {p.strategy}: realized PnL {p.realized_pnl}, fills {book.realized}")
            if not _close(p.fees, book.fees):
                problems.append(f"strategy {p.strategy}: fees {p.fees}, fills {book.fees}")
        missing = [k for k, b in per_strategy.items() if k not in seen and abs(b.position) > QTY_TOLERANCE]
        if missing:
            problems.append(f"positions with fills but no strategy row: {missing}")
        filled = {s.name: s.fills for s in r.snapshot.strategies}
        for name, sid in ids.items():
            executions = sum(1 for f in r.fills if int(f["strategy_id"]) == sid)
            if filled[name] != executions:
                problems.append(f"strategy {name} counted {filled[name]} fills, the database has {executions}")
    return problems


def open_order_problems(r: RunResult) -> list[str]:
    """Risk, the strategies and the exchange hold open exactly the orders the database holds open."""
    in_db = len(r.open_orders())
    problems = []
    if r.control["open_orders"] != in_db:
        problems.append(f"risk holds {r.control['open_orders']} open orders, the database {in_db}")
    at_exchange = r.counters["exchange"]["open_orders_gauge"] + r.counters["exchange"]["pending_orders_gauge"]
    if at_exchange != in_db:
        problems.append(f"the exchange holds {at_exchange} open orders, the database {in_db}")
    strategies = sum(s.open_orders for s in r.snapshot.strategies)
    if strategies != in_db:
        problems.append(f"the strategies hold {strategies} open orders, the database {in_db}")
    return problems


def event_delivery_problems(r: RunResult) -> list[str]:
    """Every order event the OMS published reached the database, once (no restart of the OMS or
    its writer in between: then the counts are exact)."""
    published = r.rings["oms.events"].producer_position
    problems = []
    if len(r.events) != published:
        problems.append(f"{len(r.events)} order events in the database, the OMS published {published}")
    if r.counters["oms_writer"]["events_written"] != published:
        problems.append(f"writer wrote {r.counters['oms_writer']['events_written']} of {published} events")
    if r.counters["oms"]["events"] != published:
        problems.append(f"OMS counted {r.counters['oms']['events']} events, its ring carried {published}")
    return problems


# -- test-only slow workers (wired with the config's class key) ---------------------------------------


def _slowed(base):
    class Slow(base):
        """``base`` sleeping ``sleep_ms`` before every step: a consumer that cannot keep up."""

        def __init__(self, sleep_ms: float = 1.0, **params):
            super().__init__(**params)
            self._sleep_s = sleep_ms / 1e3

        def do_work(self) -> int:
            time.sleep(self._sleep_s)
            return super().do_work()

    Slow.__name__ = Slow.__qualname__ = f"Slow{base.__name__}"
    return Slow


def _slow_classes():
    from hftshm.risk.worker import RiskWorker
    from hftshm.strategies.worker import StrategyWorker

    return _slowed(StrategyWorker), _slowed(RiskWorker)


SlowStrategyWorker, SlowRiskWorker = _slow_classes()


def wait_for_running(run_dir: Path, process: subprocess.Popen, timeout_s: float = 180.0):
    """The manifest of the platform ``process`` runs under ``run_dir``, once every worker runs."""
    from hftshm.runtime.manifest import NoRunningPlatform, read_running

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"hftshm run exited early ({process.returncode}): {process.stdout.read()}"
        try:
            manifest = read_running(run_dir)
        except (NoRunningPlatform, ValueError, OSError):  # not written yet, or mid-write
            time.sleep(0.2)
            continue
        status = st.StatusTable.attach(manifest.status_segment, len(manifest.workers))
        try:
            states = {w.name: WorkerState(int(status.words[w.row, st.STATE])) for w in manifest.workers}
        finally:
            status.close()
        if all(s == WorkerState.RUNNING for s in states.values()):
            return manifest
        time.sleep(0.2)
    raise AssertionError(f"platform under {run_dir} not running after {timeout_s} s")


def assert_holds(*problem_lists: list[str]) -> None:
    """Fail listing every problem the invariant checks found."""
    problems = [p for problems in problem_lists for p in problems]
    assert not problems, "invariants broken:\n  " + "\n  ".join(problems)
