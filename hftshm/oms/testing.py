"""Record builders and a ring rig for OMS tests and benchmarks (no test framework needed).

``OmsRig`` creates, in shared memory, the rings a supervisor would create around the OMS and its
writer, and plays the neighbours: it writes ``order`` records as risk would and execution reports as
the exchange would, and reads what the OMS publishes. The workers run in this process
(``start_oms``/``start_writer`` + ``step``) or in a child process (``python -m hftshm.oms.testing
serve ...``), which a test can SIGKILL and start again.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from hftshm.codes import Action, OrderType, ReportEvent, Side, TimeInForce
from hftshm.oms.engine import ORDER, REPORT
from hftshm.runtime.worker import Worker, WorkerContext
from hftshm.transport.ring import Ring

RING_LAYOUTS = {  # suffix -> (layout, direction seen from the OMS)
    "orders": ("order", "in"),
    "exchange.reports": ("execution_report", "in"),
    "exchange.orders": ("order", "out"),
    "reports.strategies": ("execution_report", "out"),
    "reports.risk": ("execution_report", "out"),
    "events": ("order_event", "out"),
}


def new_orders(*rows: dict) -> np.ndarray:
    """``order`` records from dicts; defaults: NEW LIMIT GTC BUY 0.1 @ 61,000, strategy 1, symbol 1,
    client ids 1, 2, 3, ... in order."""
    out = ORDER.zeros(len(rows))
    for i, row in enumerate(rows):
        rec = out[i]
        rec["action"] = Action.NEW
        rec["side"] = Side.BUY
        rec["order_type"] = OrderType.LIMIT
        rec["tif"] = TimeInForce.GTC
        rec["price"] = 61_000.0
        rec["qty"] = 0.1
        rec["strategy_id"] = 1
        rec["symbol_id"] = 1
        rec["client_order_id"] = i + 1
        for key, value in row.items():
            rec[key] = value
    return out


def reports(*rows: dict) -> np.ndarray:
    """``execution_report`` records from dicts (default event ACK, strategy 1, symbol 1, BUY)."""
    out = REPORT.zeros(len(rows))
    for i, row in enumerate(rows):
        rec = out[i]
        rec["event"] = ReportEvent.ACK
        rec["strategy_id"] = 1
        rec["symbol_id"] = 1
        rec["side"] = Side.BUY
        for key, value in row.items():
            rec[key] = value
    return out


def ack_for(order: np.void) -> dict:
    return {"order_id": int(order["order_id"]), "client_order_id": int(order["client_order_id"]),
            "event": ReportEvent.ACK, "price": float(order["price"]), "qty": float(order["qty"]),
            "leaves_qty": float(order["qty"])}


def fill_for(order: np.void, qty: float, cum_qty: float, price: float | None = None) -> dict:
    leaves = float(order["qty"]) - cum_qty
    return {"order_id": int(order["order_id"]), "client_order_id": int(order["client_order_id"]),
            "event": ReportEvent.FILL if leaves <= 1e-12 else ReportEvent.PARTIAL,
            "price": float(order["price"]) if price is None else price, "qty": qty, "cum_qty": cum_qty,
            "leaves_qty": max(leaves, 0.0)}


def scripted_events(epoch: int, n_orders: int, *, seed: int = 1) -> tuple[np.ndarray, dict[int, int]]:
    """Order events of ``n_orders`` orders driven through a real engine: each is acked, then filled
    in two parts, filled, or cancelled (and a few get a duplicate intent and a late fill refused).
    Returns (events in order, final state by order id)."""
    from hftshm.oms.engine import OmsEngine

    rng = np.random.default_rng(seed)
    eng = OmsEngine(max_orders=max(n_orders, 16), timeouts_ns=np.array([10**12], np.int64), epoch=epoch,
                    staging=4 * n_orders + 16)
    eng.on_orders(new_orders(*({"client_order_id": i + 1, "qty": 1.0} for i in range(n_orders))), 0, 1)
    ids = eng.staged().orders["order_id"].copy()
    rows = []
    for i, order_id in enumerate(ids):
        fate = rng.integers(0, 3)
        rows.append({"order_id": int(order_id), "event": ReportEvent.ACK})
        if fate == 0:
            rows.append({"order_id": int(order_id), "event": ReportEvent.PARTIAL, "qty": 0.5, "cum_qty": 0.5,
                         "leaves_qty": 0.5, "price": 61_000.0, "fee": 0.01})
            rows.append({"order_id": int(order_id), "event": ReportEvent.FILL, "qty": 0.5, "cum_qty": 1.0,
                         "price": 61_000.5, "fee": 0.01})
        elif fate == 1:
            rows.append({"order_id": int(order_id), "event": ReportEvent.FILL, "qty": 1.0, "cum_qty": 1.0,
                         "price": 61_001.0})
        else:
            rows.append({"order_id": int(order_id), "event": ReportEvent.CANCEL, "qty": 1.0})
            if i % 7 == 0:
                rows.append({"order_id": int(order_id), "event": ReportEvent.FILL, "qty": 1.0, "cum_qty": 1.0})
    eng.on_reports(reports(*rows), 1, 2)
    eng.on_orders(new_orders({"client_order_id": 1, "qty": 1.0}), 2, 3)  # a duplicate intent
    events = eng.staged().events.copy()
    final = {int(order_id): int(eng.order(int(order_id))["state"]) for order_id in ids}
    return events, final


class OmsRig:
    """The OMS's rings (created here, unlinked by ``close``) and the neighbours' ends of them."""

    def __init__(self, run_dir: str | Path, database_url: str, *, schema: str = "", prefix: str | None = None,
                 capacity: int = 4096, oms: dict | None = None, create: bool = True):
        self.run_dir = Path(run_dir)
        # "hftshm_<pid>_" like a supervisor's segments: other test runs on the machine leave them alone
        self.prefix = prefix or f"hftshm_{os.getpid()}_{uuid.uuid4().hex[:6]}_oms_"
        self.oms_overrides = {"database_url": database_url, "database_schema": schema, **(oms or {})}
        self.rings: dict[str, Ring] = {}
        self._owner = create
        for suffix, (layout, _direction) in RING_LAYOUTS.items():
            name = self.prefix + suffix
            if create:
                self.rings[suffix] = Ring.create(name, layout, capacity)
            else:
                self.rings[suffix] = Ring.attach(name, layout)
        self.workers: list = []
        # one counter row per worker name, kept across a worker's restarts as the supervisor's
        # status table keeps it (a restarted worker finds its predecessor's counts there)
        self._counters: dict[str, np.ndarray] = {}

    # -- the neighbours -------------------------------------------------------------------------

    def send_orders(self, records: np.ndarray) -> None:
        """Publish ``order`` records as risk would (stamping ``ts_ns`` like a real publisher)."""
        records = records.copy()
        records["ts_ns"][records["ts_ns"] == 0] = time.monotonic_ns()
        _write(self.rings["orders"], records)

    def offer_orders(self, records: np.ndarray) -> int:
        """Publish as many ``order`` records as fit now; returns how many."""
        ring = self.rings["orders"]
        view = ring.claim(len(records))
        n = len(view)
        if n:
            view[:] = records[:n]
            view["ts_ns"] = time.monotonic_ns()
            ring.commit(n)
        return n

    def send_reports(self, records: np.ndarray) -> None:
        """Publish execution reports as the exchange would (stamping ``local_ts_ns``)."""
        records = records.copy()
        records["local_ts_ns"][records["local_ts_ns"] == 0] = time.monotonic_ns()
        _write(self.rings["exchange.reports"], records)

    def exchange_orders(self) -> np.ndarray:
        return _drain(self.rings["exchange.orders"])

    def strategy_reports(self) -> np.ndarray:
        return _drain(self.rings["reports.strategies"])

    def risk_reports(self) -> np.ndarray:
        return _drain(self.rings["reports.risk"])

    # -- workers in this process ----------------------------------------------------------------

    def context(self, name: str, inputs: list[str], outputs: list[str], counters: int, histograms=()) -> WorkerContext:
        def attach(suffix: str, role: str) -> Ring:
            layout = RING_LAYOUTS[suffix][0]
            return Ring.attach(self.prefix + suffix, layout, role=role, takeover=True)

        counter_array = self._counters.get(name)
        if counter_array is None or len(counter_array) != max(counters, 1):
            counter_array = self._counters[name] = np.zeros(max(counters, 1), dtype=np.int64)
        from hftshm.metrics.histogram import new_histogram

        return WorkerContext(name=name, params={}, inputs={s: attach(s, "consumer") for s in inputs},
                             outputs={s: attach(s, "producer") for s in outputs}, config=None,
                             counters=counter_array, histograms={h: new_histogram() for h in histograms},
                             run_dir=self.run_dir, log=logging.getLogger(f"hftshm.{name}"))

    def start_oms(self, control=None, with_event_ring: bool = True, **params):
        from hftshm.oms.worker import OmsWorker

        worker = OmsWorker(oms=self.oms_overrides, **params)
        outputs = ["exchange.orders", "reports.strategies", "reports.risk"] + (["events"] if with_event_ring else [])
        ctx = self.context("oms", ["orders", "exchange.reports"], outputs, len(OmsWorker.COUNTER_NAMES),
                           OmsWorker.HISTOGRAMS)
        ctx.control = control
        worker.on_start(ctx)
        self.workers.append(worker)
        return worker

    def start_writer(self, oms: dict | None = None, **params):
        """The order-event writer on the rig's ring; ``oms`` overrides keys for it alone (a dead URL, say)."""
        from hftshm.oms.writer import OrderEventWriter

        worker = OrderEventWriter(oms={**self.oms_overrides, **(oms or {})}, **params)
        worker.on_start(self.context("oms_writer", ["events"], [], len(OrderEventWriter.COUNTER_NAMES)))
        self.workers.append(worker)
        return worker

    def step(self, cycles: int = 1) -> int:
        work = 0
        for _ in range(cycles):
            for worker in self.workers:
                work += worker.do_work()
        return work

    def run_until(self, predicate, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.step() == 0:
                time.sleep(0.001)
        return predicate()

    def stop_workers(self) -> None:
        for worker in reversed(self.workers):
            while worker.on_drain():
                pass
            worker.on_close()
            for ring in list(worker.ctx.inputs.values()) + list(worker.ctx.outputs.values()):
                ring.close()
        self.workers = []

    def close(self) -> None:
        if self.workers:
            self.stop_workers()
        for ring in self.rings.values():
            if self._owner:
                ring.unlink()
            ring.close()
        self.rings = {}


# -- neighbours as pipeline workers (for supervised multi-process tests) ----------------------------


class OrderSource(Worker):
    """Plays risk: publishes ``count`` new orders (client ids 1..count, qty 1) and reads the OMS's
    reports to risk. Resumes from its ring's producer position after a restart."""

    COUNTER_NAMES = ("sent", "reports", "rejects")

    def __init__(self, count: int = 1000, batch: int = 25, interval_ms: float = 0.0):
        self.count, self.batch = count, batch
        self.interval_ns = int(interval_ms * 1e6)
        self._next_ns = 0

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        self.out = next(r for r in ctx.outputs.values() if r.layout.name == "order")
        self.reports_in = [r for r in ctx.inputs.values() if r.layout.name == "execution_report"]
        self.sent = self.out.producer_position

    def do_work(self) -> int:
        work = 0
        for ring in self.reports_in:
            view = ring.poll(1024)
            if len(view):
                self.ctx.counters[1] += len(view)
                self.ctx.counters[2] += int(np.count_nonzero(view["event"] == ReportEvent.REJECT))
                ring.release(len(view))
                work += len(view)
        if self.sent < self.count and time.monotonic_ns() >= self._next_ns:
            self._next_ns = time.monotonic_ns() + self.interval_ns
            view = self.out.claim(min(self.batch, self.count - self.sent))
            n = len(view)
            if n:
                rows = np.repeat(new_orders({"qty": 1.0}), n)
                rows["client_order_id"] = np.arange(self.sent + 1, self.sent + n + 1)
                rows["seq"] = np.arange(self.sent, self.sent + n)
                rows["ts_ns"] = time.monotonic_ns()
                view[:] = rows
                self.out.commit(n)
                self.sent += n
                self.ctx.counters[0] = self.sent
                work += n
        return work


class EchoExchange(Worker):
    """Plays the exchange: acks each new order once and fills by client id (multiples of 3 in full,
    ``1 mod 3`` by half); a NEW for an order id it has seen (a resend) is re-acked, never a second
    order, as the OMS expects of an exchange."""

    COUNTER_NAMES = ("orders", "distinct_orders", "resends", "reports")

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        self.inp = next(r for r in ctx.inputs.values() if r.layout.name == "order")
        self.out = next(r for r in ctx.outputs.values() if r.layout.name == "execution_report")
        self.seen: set[int] = set()

    def do_work(self) -> int:
        if self.out.capacity - self.out.occupancy() < 2 * 64:
            return 0
        view = self.inp.poll(64)
        if not len(view):
            return 0
        answers = []
        for order in view:
            order_id = int(order["order_id"])
            if order["action"] != Action.NEW:
                continue
            first = order_id not in self.seen
            self.seen.add(order_id)
            self.ctx.counters[2] += 0 if first else 1
            answers.append(ack_for(order))
            cid = int(order["client_order_id"])
            if first and cid % 3 == 0:
                answers.append(fill_for(order, 1.0, 1.0))
            elif first and cid % 3 == 1:
                answers.append(fill_for(order, 0.5, 0.5))
        if answers:
            records = reports(*answers)
            records["local_ts_ns"] = time.monotonic_ns()
            _write(self.out, records)
        self.ctx.counters[0] += len(view)
        self.ctx.counters[1] = len(self.seen)
        self.ctx.counters[3] += len(answers)
        self.inp.release(len(view))
        return len(view)


class ReportSink(Worker):
    """Plays the strategies: counts the reports the OMS sends them, by event."""

    COUNTER_NAMES = ("reports", "acks", "fills", "rejects")

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        self.inputs = [r for r in ctx.inputs.values() if r.layout.name == "execution_report"]

    def do_work(self) -> int:
        work = 0
        for ring in self.inputs:
            view = ring.poll(1024)
            n = len(view)
            if n:
                c = self.ctx.counters
                c[0] += n
                c[1] += int(np.count_nonzero(view["event"] == ReportEvent.ACK))
                fills = (view["event"] == ReportEvent.FILL) | (view["event"] == ReportEvent.PARTIAL)
                c[2] += int(np.count_nonzero(fills))
                c[3] += int(np.count_nonzero(view["event"] == ReportEvent.REJECT))
                ring.release(n)
                work += n
        return work


def _write(ring: Ring, records: np.ndarray) -> None:
    done = 0
    deadline = time.monotonic() + 30.0
    while done < len(records):
        view = ring.claim(len(records) - done)
        if len(view) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"ring {ring.name} stayed full")
            time.sleep(0.001)
            continue
        view[:] = records[done:done + len(view)]
        ring.commit(len(view))
        done += len(view)


def _drain(ring: Ring) -> np.ndarray:
    parts = []
    while True:
        view = ring.poll(1 << 16)
        if not len(view):
            break
        parts.append(view.copy())
        ring.release(len(view))
    if not parts:
        return np.zeros(0, dtype=ring.dtype)
    return np.concatenate(parts)


def _serve(argv: list[str]) -> int:
    """Run the OMS and its writer on an existing rig's rings until SIGTERM (or SIGKILL)."""
    parser = argparse.ArgumentParser(prog="python -m hftshm.oms.testing serve")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema", default="")
    parser.add_argument("--ack-timeout-ms", type=float, default=60_000.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    rig = OmsRig(args.run_dir, args.db, schema=args.schema, prefix=args.prefix, create=False,
                 oms={"ack_timeout_ms": args.ack_timeout_ms})
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rig.start_writer()
    rig.start_oms()
    print("ready", flush=True)
    while not stop:
        if rig.step() == 0:
            time.sleep(0.0005)
    rig.stop_workers()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(_serve(sys.argv[2:]))
    print("usage: python -m hftshm.oms.testing serve --prefix P --run-dir D --db URL [--schema S]", file=sys.stderr)
    sys.exit(2)
