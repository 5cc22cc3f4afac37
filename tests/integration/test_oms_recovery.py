"""Crash and outage recovery: the OMS SIGKILLed mid-run, and the PostgreSQL server stopped mid-run.

Nothing may be lost or doubled: every intent becomes exactly one order, every order the exchange
saw is in the database, and every order's row agrees with its event trail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hftshm.codes import Action, OrderEventKind as E, OrderState as S
from hftshm.oms.store import Store
from hftshm.oms.testing import OmsRig, ack_for, fill_for, new_orders, reports
from hftshm.oms.writer import OrderEventWriter

from tests.integration.oms_db import drop, new_database

REPO = Path(__file__).resolve().parents[2]


class Exchange:
    """The exchange's side of the rig: acks every new order once (a resend of a known order id is
    re-acked, never a second order), fills some, part-fills others."""

    def __init__(self, rig: OmsRig):
        self.rig = rig
        self.orders: dict[int, np.void] = {}  # order id -> first record seen
        self.sends = 0

    def pump(self) -> int:
        sent = self.rig.exchange_orders()
        out = []
        for order in sent:
            self.sends += 1
            order_id = int(order["order_id"])
            if order["action"] != Action.NEW:
                continue
            first = order_id not in self.orders
            if first:
                self.orders[order_id] = order.copy()
            out.append(ack_for(order))
            cid = int(order["client_order_id"])
            if first and cid % 3 == 0:
                out.append(fill_for(order, float(order["qty"]), float(order["qty"])))
            elif first and cid % 3 == 1:
                out.append(fill_for(order, float(order["qty"]) / 2, float(order["qty"]) / 2))
        if out:
            self.rig.send_reports(reports(*out))
        self.rig.strategy_reports()
        self.rig.risk_reports()
        return len(sent)


def expected_state(client_order_id: int) -> int:
    return {0: S.FILLED, 1: S.PARTIALLY_FILLED, 2: S.ACKNOWLEDGED}[client_order_id % 3]


def spawn(rig: OmsRig, url: str, schema: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "hftshm.oms.testing", "serve", "--prefix", rig.prefix, "--run-dir", str(rig.run_dir),
         "--db", url, "--schema", schema, "--ack-timeout-ms", "1000"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sigkill_mid_run_loses_and_doubles_nothing(kind, tmp_path):
    url, schema = new_database(kind, tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=1024)
    exchange = Exchange(rig)
    log = tmp_path / "oms.log"
    total = 900
    intents = new_orders(*({"client_order_id": i, "qty": 1.0} for i in range(1, total + 1)))
    child = spawn(rig, url, schema, log)
    try:
        # phase 1: two thirds of the intents, with the exchange answering as it goes
        pending = intents[:600]
        deadline = time.monotonic() + 120
        while len(exchange.orders) < 400 and time.monotonic() < deadline:
            pending = pending[rig.offer_orders(pending[:50]):]
            exchange.pump()
            time.sleep(0.002)
        assert len(exchange.orders) >= 400, log.read_text()[-3000:]
        child.send_signal(signal.SIGKILL)  # mid-run: orders, reports and events in flight
        child.wait(10)
        # a strategy that crashed too would resend its last intents: they must not become orders
        resent = intents[:20].copy()
        rig.send_orders(resent)
        child = spawn(rig, url, schema, log)
        pending = np.concatenate([pending, intents[600:]])
        deadline = time.monotonic() + 120
        while len(exchange.orders) < total and time.monotonic() < deadline:
            pending = pending[rig.offer_orders(pending[:50]):]
            exchange.pump()
            time.sleep(0.002)
        assert len(exchange.orders) == total, log.read_text()[-3000:]
        # let the last reports through, then stop gracefully (drain, flush the writer)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 1.5:
            if exchange.pump() or rig.rings["exchange.reports"].occupancy():
                quiet_since = time.monotonic()
            time.sleep(0.01)
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0, log.read_text()[-3000:]
        assert "recovered" in log.read_text() and "oms: epoch 2" in log.read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        rig.close()

    store = Store(url, schema=schema)
    try:
        rows = store.list_orders(limit=10 * total)
        by_client = {}
        for row in rows:
            assert row["client_order_id"] not in by_client, f"client id {row['client_order_id']} became two orders"
            by_client[row["client_order_id"]] = row
        assert sorted(by_client) == list(range(1, total + 1)), "every intent is exactly one order"
        assert {r["order_id"] for r in rows} == set(exchange.orders), "the database has what the exchange saw"
        for cid, row in by_client.items():
            assert row["state"] == expected_state(cid), (cid, row)
        assert store.check_consistency() == []
        assert store.count("oms_epochs") == 2
        epochs = {r["order_id"] >> 40 for r in rows}
        assert len(epochs) == 2, "orders of both runs, ids from two epochs"
        # the resent intents were refused and recorded on the original orders
        refused = [e for cid in range(1, 21) for e in store.events_of(by_client[cid]["order_id"])
                   if e["kind"] == E.REFUSED]
        assert len(refused) >= 20
        fills = store.count("fills")
        assert fills == sum(1 for cid in by_client if cid % 3 in (0, 1)), "no fill recorded twice"
    finally:
        store.close()
        drop(url, schema)


def _pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True,
                   capture_output=True, timeout=120)


def _pg_up(timeout_s: float = 60.0) -> bool:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            psycopg.connect("dbname=test user=postgres host=localhost", connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not os.path.isdir("/etc/postgresql"),
                    reason="needs root and pg_ctlcluster to stop and start the real PostgreSQL server")
def test_postgresql_stopped_and_started_mid_run_loses_nothing(tmp_path):
    url, schema = new_database("postgresql", tmp_path)
    rig = OmsRig(tmp_path / "run", url, schema=schema, capacity=1024,
                 oms={"reconnect_backoff_ms": 50, "reconnect_backoff_max_ms": 500})
    exchange = Exchange(rig)
    total = 1200
    pending = new_orders(*({"client_order_id": i, "qty": 1.0} for i in range(1, total + 1)))

    def pump(until) -> bool:
        nonlocal pending
        deadline = time.monotonic() + 60
        while not until() and time.monotonic() < deadline:
            pending = pending[rig.offer_orders(pending[:40]):]
            rig.step()
            exchange.pump()
            rig.step()
        return until()

    stopped = False
    try:
        writer = rig.start_writer()
        oms = rig.start_oms()
        assert rig.run_until(lambda: not oms.recovering)
        assert pump(lambda: len(exchange.orders) >= 400)
        _pg_cluster("stop")
        stopped = True
        # the hot path keeps going while the database is down; events queue in the writer's journal
        seen = len(exchange.orders)
        assert pump(lambda: len(exchange.orders) >= seen + 400 and not writer.writer.db_up)
        assert writer.writer.backlog_events > 0 and writer.writer.db_errors > 0
        lag = writer.ctx.counters[OrderEventWriter.COUNTER_NAMES.index("backlog_events_gauge")]
        assert lag > 0
        _pg_cluster("start")
        stopped = False
        assert _pg_up()
        assert pump(lambda: len(exchange.orders) == total and len(pending) == 0)
        assert rig.run_until(lambda: writer.writer.backlog_events == 0 and writer.writer.db_up, 60)
        assert writer.writer.reconnects >= 1
        rig.stop_workers()
    finally:
        if stopped:
            _pg_cluster("start")
        _pg_up()
        rig.close()

    store = Store(url, schema=schema)
    try:
        rows = store.list_orders(limit=10 * total)
        assert len(rows) == total and {r["order_id"] for r in rows} == set(exchange.orders)
        assert {r["client_order_id"] for r in rows} == set(range(1, total + 1))
        # every report the exchange sent is in the trail: one ACK per order, fills as sent
        acks = sum(1 for r in rows for e in store.events_of(r["order_id"])[:3] if e["kind"] == E.ACK)
        assert acks == total
        assert store.count("fills") == sum(1 for cid in range(1, total + 1) if cid % 3 in (0, 1))
        for row in rows:
            assert row["state"] == expected_state(row["client_order_id"])
        assert store.check_consistency() == []
    finally:
        store.close()
        drop(url, schema)
