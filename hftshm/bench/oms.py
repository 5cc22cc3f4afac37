"""``hftshm bench oms``: order events persisted per second, and the OMS hot path with and without a database.

Set-up, as in the platform: the OMS worker runs in this process on real shared-memory rings (this
process also plays risk and the exchange, untimed); the order-event writer runs in a child process
on the ``order_event`` ring and writes behind to the database.

* ``oms-postgresql`` / ``oms-sqlite``: throughput. ``--orders`` orders, each created, acked and
  filled (3 events), pushed through the OMS in batches; ops/s = events / (time from the first
  event published to the last one committed in the database). Percentiles: OMS time per event,
  per batch (``do_work`` time / events it produced).
* ``oms-latency-<db>`` and ``oms-latency-no-db``: the hot path one input at a time (a new order, its
  ack, its fill), each ``do_work`` timed: poll, kernel, publish to every ring, release. With the
  database attached (the writer committing in its own process) and with a null consumer draining
  the event ring instead, the percentiles must be the same: the OMS never waits for the database.
"""

from __future__ import annotations

import os
import time
import uuid

import typer

POSTGRES_URL = "postgresql+psycopg://postgres@localhost:5432/test"


def register(bench_app: typer.Typer) -> None:
    bench_app.command("oms")(oms_command)


def oms_command(
    orders: int = typer.Option(100_000, help="orders for the throughput runs (3 events each)"),
    latency_orders: int = typer.Option(5_000, help="orders for the latency runs (3 timed inputs each)"),
    batch: int = typer.Option(512, help="records per ring poll in the throughput runs"),
    writer_batch: int = typer.Option(5000, help="events per database transaction ([oms] writer_batch_size)"),
    postgres_url: str = typer.Option(POSTGRES_URL, "--postgres-url", help="PostgreSQL to write to"),
    backends: str = typer.Option("postgresql,sqlite", help="comma-separated: postgresql, sqlite"),
    json_path: str = typer.Option(None, "--json", help="write the results as JSON here"),
) -> None:
    """Order events per second through the write-behind writer; OMS hot-path latency with and without a DB."""
    import tempfile
    from pathlib import Path

    from hftshm.bench.report import emit

    wanted = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = set(wanted) - {"postgresql", "sqlite"}
    if unknown:
        typer.secho(f"unknown backend(s) {sorted(unknown)}; choose from postgresql, sqlite", fg="red", err=True)
        raise typer.Exit(2)
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix="hftshm-bench-oms-") as tmp:
        for backend in wanted:
            url, schema = (postgres_url, f"bench_oms_{uuid.uuid4().hex[:10]}") if backend == "postgresql" else (
                f"sqlite:///{Path(tmp) / backend / 'oms.sqlite'}", "")
            try:
                row, note = _throughput(Path(tmp) / f"{backend}-tp", url, schema, orders, batch, backend,
                                        writer_batch)
                results.append({"name": f"oms-{backend}", **row})
                notes.append(note)
                row, note = _latency(Path(tmp) / f"{backend}-lat", url, schema, latency_orders, with_db=True)
                results.append({"name": f"oms-latency-{backend}", **row})
                notes.append(note)
            finally:
                _drop(url, schema)
        url = f"sqlite:///{Path(tmp) / 'nodb' / 'oms.sqlite'}"
        row, note = _latency(Path(tmp) / "nodb-lat", url, "", latency_orders, with_db=False)
        results.append({"name": "oms-latency-no-db", **row})
        notes.append(note)
    notes.append(f"{len(os.sched_getaffinity(0))} CPUs, shared with the writer process and whatever else runs: "
                 "figures from a busy machine are noisy; compare rows taken together.")
    emit("OMS: order events persisted, hot path per event", results, json_path, notes)


# -- the writer (or a null consumer) in a child process ------------------------------------------------


def _writer_main(prefix: str, run_dir: str, overrides: dict, with_db: bool, stop, report) -> None:
    """Child process: drain the rig's ``events`` ring into the database (or just release it)."""
    import logging

    from hftshm.oms.testing import OmsRig

    logging.basicConfig(level=logging.WARNING)
    rig = OmsRig(run_dir, overrides["database_url"], schema=overrides.get("database_schema", ""), prefix=prefix,
                 create=False, oms=overrides)
    ring = rig.rings["events"]
    writer = rig.start_writer() if with_db else None
    if writer is None:
        ring.register_consumer(takeover=True)
    report.send("ready")
    released = 0
    while not stop.is_set():
        if writer is not None:
            if writer.do_work() == 0:
                time.sleep(0.001)  # as a parked worker would: leave the GIL to the database thread
            continue
        view = ring.poll(1 << 16)
        if len(view):
            released += len(view)
            ring.release(len(view))
        else:
            time.sleep(0.0002)
    rig.stop_workers()  # the writer flushes what it holds
    stats = {"released": released}
    if writer is not None:
        w = writer.writer
        stats = {"written": w.events_written, "batches": w.batches, "db_errors": w.db_errors,
                 "db_events_per_busy_s": round(w.events_written / max(w.db_busy_s, 1e-9))}
    ring.close()
    rig.close()
    report.send(stats)


class _Bench:
    """Rings, the OMS here, the writer (or a null consumer) in a child process."""

    def __init__(self, run_dir, url: str, schema: str, with_db: bool, batch: int, capacity: int = 1 << 16,
                 writer_batch: int = 5000):
        import multiprocessing

        from hftshm.oms.testing import OmsRig

        run_dir.mkdir(parents=True, exist_ok=True)
        overrides = {"database_url": url, "database_schema": schema, "ack_timeout_ms": 600_000.0,
                     "batch_size": batch, "max_orders": 1 << 20, "writer_batch_size": writer_batch}
        self.rig = OmsRig(run_dir, url, schema=schema, capacity=capacity, oms=overrides)
        spawn = multiprocessing.get_context("spawn")
        self.stop = spawn.Event()
        self.report, child_end = spawn.Pipe(duplex=False)
        self.child = spawn.Process(target=_writer_main, args=(self.rig.prefix, str(run_dir), overrides, with_db,
                                                               self.stop, child_end), daemon=True)
        self.child.start()
        # the writer must be running while we measure, not still importing
        if not self.report.poll(120) or self.report.recv() != "ready":
            raise RuntimeError("the writer process did not start")
        self.oms = self.rig.start_oms()
        if not self.rig.run_until(lambda: not self.oms.recovering, 120):
            raise RuntimeError("the OMS did not finish its start-up recovery")

    def unwritten(self) -> int:
        """Events not yet in the database: in the OMS's spill file, the ring, the writer's journal.
        Keeps the OMS cycling meanwhile (it hands its spill to the ring)."""
        from hftshm.oms.config import journal_path
        from hftshm.oms.engine import ORDER_EVENT
        from hftshm.oms.journal import journal_pending_records

        self.oms.do_work()
        return (self.oms.overflow_n + self.rig.rings["events"].occupancy()
                + journal_pending_records(journal_path(self.rig.run_dir), ORDER_EVENT.itemsize))

    def close(self) -> dict:
        self.rig.stop_workers()
        self.stop.set()
        stats = self.report.recv() if self.report.poll(120) else {}
        self.child.join(30)
        if self.child.is_alive():
            self.child.kill()
        self.rig.close()
        return stats


def _orders(n: int, first_client_order_id: int):
    """``n`` new limit orders (what risk sends), built column-wise: the driver must not be the bottleneck."""
    import numpy as np

    from hftshm.oms.testing import new_orders

    out = np.repeat(new_orders({}), n)
    out["client_order_id"] = np.arange(first_client_order_id, first_client_order_id + n)
    return out


def _reports_for(sent, event: int):
    """One report of ``event`` per order in ``sent`` (what the exchange sends), column-wise."""
    import numpy as np

    from hftshm.codes import ReportEvent
    from hftshm.oms.engine import REPORT

    out = REPORT.zeros(len(sent))
    for name in ("order_id", "client_order_id", "strategy_id", "symbol_id", "side", "price"):
        out[name] = sent[name]
    out["event"] = event
    if event == ReportEvent.FILL:
        out["qty"] = out["cum_qty"] = sent["qty"]
    else:
        out["leaves_qty"] = sent["qty"]
    out["local_ts_ns"] = time.monotonic_ns()
    out["exch_ts_ns"] = np.arange(len(sent)) + 1_723_075_200 * 10**9
    return out


def _throughput(run_dir, url: str, schema: str, n_orders: int, batch: int, backend: str,
                writer_batch: int) -> tuple[dict, str]:
    import numpy as np

    from hftshm.bench.report import percentiles_ns
    from hftshm.codes import ReportEvent
    from hftshm.oms.oms_nb import ST_EVENTS

    bench = _Bench(run_dir, url, schema, with_db=True, batch=batch, writer_batch=writer_batch)
    rig, oms = bench.rig, bench.oms
    stats_words = oms.engine.stats
    per_event_ns = []
    t_first = None
    try:
        for start in range(0, n_orders, batch):
            n = min(batch, n_orders - start)
            rig.send_orders(_orders(n, start + 1))
            inputs = [None, ReportEvent.ACK, ReportEvent.FILL]
            for event in inputs:
                if event is not None:
                    rig.send_reports(_reports_for(sent, event))
                before = int(stats_words[ST_EVENTS])
                t0 = time.perf_counter_ns()
                oms.do_work()
                elapsed = time.perf_counter_ns() - t0
                t_first = t_first or t0
                per_event_ns.append(elapsed / max(int(stats_words[ST_EVENTS]) - before, 1))
                if event is None:
                    sent = rig.exchange_orders()
            rig.strategy_reports()
            rig.risk_reports()
        t_produced = time.perf_counter_ns()
        events_made = int(stats_words[ST_EVENTS])
        while bench.unwritten() and time.perf_counter_ns() - t_first < 600 * 10**9:
            time.sleep(0.001)
        t_done = time.perf_counter_ns()
        left = bench.unwritten()
    finally:
        stats = bench.close()
    seconds = (t_done - t_first) / 1e9
    row = {"ops_per_s": events_made / seconds, **percentiles_ns(np.array(per_event_ns)), "events": events_made,
           "seconds": round(seconds, 3)}
    note = (f"{backend}: {events_made:,} events ({n_orders:,} orders x created/ack/fill) produced by the OMS in "
            f"{(t_produced - t_first) / 1e9:.2f}s, all committed after {seconds:.2f}s; writer {stats}; "
            f"{left} left unwritten")
    return row, note


def _latency(run_dir, url: str, schema: str, n_orders: int, with_db: bool) -> tuple[dict, str]:
    import numpy as np

    from hftshm.bench.report import percentiles_ns
    from hftshm.codes import ReportEvent

    bench = _Bench(run_dir, url, schema, with_db=with_db, batch=64)
    rig, oms = bench.rig, bench.oms
    warm = 200
    samples = np.empty(3 * n_orders, dtype=np.int64)
    k = 0
    try:
        intents = _orders(n_orders + warm, 1)
        for i in range(n_orders + warm):
            rig.send_orders(intents[i:i + 1])
            t0 = time.perf_counter_ns()
            oms.do_work()
            t1 = time.perf_counter_ns()
            sent = rig.exchange_orders()
            if i >= warm:
                samples[k] = t1 - t0
                k += 1
            for event in (ReportEvent.ACK, ReportEvent.FILL):
                rig.send_reports(_reports_for(sent, event))
                t0 = time.perf_counter_ns()
                oms.do_work()
                t1 = time.perf_counter_ns()
                if i >= warm:
                    samples[k] = t1 - t0
                    k += 1
            rig.strategy_reports()
            rig.risk_reports()
        while with_db and bench.unwritten():
            time.sleep(0.001)
    finally:
        stats = bench.close()
    samples = samples[:k]
    row = {"ops_per_s": 1e9 / samples.mean(), **percentiles_ns(samples), "events": int(k)}
    where = url.split(":")[0].split("+")[0] if with_db else "no database (null consumer)"
    note = f"latency, {where}: {k:,} inputs timed one at a time (do_work: poll, apply, publish, release); {stats}"
    return row, note


def _drop(url: str, schema: str) -> None:
    if not url.startswith("postgresql"):
        return
    try:
        from hftshm.oms.store import Store

        store = Store(url, schema=schema, create=False)
        store.drop_schema()
        store.close()
    except Exception as exc:  # noqa: BLE001 - a failed clean-up is reported, not fatal
        typer.secho(f"could not drop benchmark schema {schema}: {exc}", fg="yellow", err=True)
