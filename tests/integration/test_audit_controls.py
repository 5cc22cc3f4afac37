"""Operator controls and their audit against the real services: the Redis control keys (set by hand
or by the CLI) apply, persist and audit once with actor "redis"; with PostgreSQL stopped, controls
still apply at once and their audit rows arrive, none lost, when it is back."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from hftshm.audit.controls import Actor, ControlWatcher, OperatorControls
from hftshm.audit.log import AuditLog
from hftshm.redis_config import RedisConfig
from hftshm.risk.control import ControlBlock, ControlStore
from hftshm.risk.redis_mirror import connect
from tests.e2e.platform_harness import cli_env, hftshm, shipped_config_text
from tests.integration.oms_db import POSTGRES_URL

REDIS_URL = "redis://localhost:6379/0"


@pytest.fixture
def redis_config():
    config = RedisConfig(url=REDIS_URL, namespace=f"audit-{uuid.uuid4().hex[:8]}")
    yield config
    client = connect(config)
    client.delete(config.key("kill_switch"), config.key("trading_state"))
    client.close()


def test_redis_key_set_by_hand_applies_persists_and_audits_once(tmp_path, redis_config):
    block = ControlBlock.private()
    audit = AuditLog(tmp_path, f"sqlite:///{tmp_path / 'oms.sqlite'}")
    ops = OperatorControls(tmp_path, redis_config, audit, find_block=lambda: block)
    watcher = ControlWatcher(ops)
    watcher.poll()  # the baseline
    client = connect(redis_config)
    try:
        client.set(redis_config.key("kill_switch"), "1")  # an operator on another host, with redis-cli
        assert watcher.poll() == 1
        assert block.kill_switch is True and ControlStore(tmp_path).load()["kill_switch"] is True
        assert watcher.poll() == 0  # one change, one row
        client.set(redis_config.key("trading_state"), "reducing")
        assert watcher.poll() == 1 and block.trading_state.name == "REDUCING"
        client.set(redis_config.key("trading_state"), "sideways")  # not a state: refused, audited
        assert watcher.poll() == 0 and block.trading_state.name == "REDUCING"
    finally:
        client.close()
    rows, total = audit.rows()
    assert total == 3
    assert [(r["action"], r["actor"], r["source"], r["previous"], r["new"], r["outcome"]) for r in rows] == [
        ("trading_state", "redis", "redis", "", "sideways", "refused"),
        ("trading_state", "redis", "redis", "active", "reducing", "applied"),
        ("kill_switch", "redis", "redis", "off", "on", "applied")]


def test_cli_writes_redis_and_the_watcher_does_not_audit_it_twice(tmp_path, redis_config):
    run_dir = tmp_path / "run"
    config = tmp_path / "config" / "platform.toml"
    config.parent.mkdir()
    text = shipped_config_text(run_dir).replace('\nurl = ""', f'\nurl = "{REDIS_URL}"', 1)
    text = text.replace('namespace = "default"', f'namespace = "{redis_config.namespace}"', 1)
    config.write_text(text)
    block = ControlBlock.private()
    audit = AuditLog(run_dir, f"sqlite:///{run_dir / 'oms.sqlite'}")
    watcher = ControlWatcher(OperatorControls(run_dir, redis_config, audit, find_block=lambda: block))
    watcher.poll()
    out = hftshm(["kill-switch", "on", "--config", str(config)])
    assert out.returncode == 0, out.stderr
    client = connect(redis_config)
    assert client.get(redis_config.key("kill_switch")) == b"1"
    client.close()
    assert watcher.poll() == 0  # the key changed, but to what the CLI already persisted and audited
    rows, total = audit.rows()
    assert total == 1 and (rows[0]["actor"], rows[0]["source"], rows[0]["new"]) == (os_user(), "cli", "on")


def os_user() -> str:
    from hftshm.audit.log import os_user as user

    return user()


def _pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True,
                   capture_output=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not os.path.isdir("/etc/postgresql"),
                    reason="needs root and pg_ctlcluster to stop and start the real PostgreSQL server")
def test_postgresql_down_controls_apply_at_once_and_audit_rows_arrive_later(tmp_path):
    schema = f"audit_test_{uuid.uuid4().hex[:10]}"
    import psycopg

    with psycopg.connect("dbname=test user=postgres host=localhost", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    block = ControlBlock.private()
    audit = AuditLog(tmp_path, POSTGRES_URL, schema)
    ops = OperatorControls(tmp_path, None, audit, find_block=lambda: block)
    me = Actor("carol", "risk", "api")
    ops.set_kill_switch(True, me)
    assert audit.try_drain() and audit.rows()[1] == 1  # up: delivered at once
    _pg_cluster("stop")
    try:
        for i in range(10):  # database down: every control still applies at once
            ops.set_kill_switch(i % 2 == 1, me)
            assert block.kill_switch is (i % 2 == 1)
        ops.set_trading_state("halted", Actor("dave", "", "cli"))
        assert block.trading_state.name == "HALTED"
        assert audit.try_drain() is False and len(audit.pending()) == 11
        rows, total = audit.rows()  # readable meanwhile, from the journal, marked pending
        assert total == 11 and all(r["pending"] for r in rows)
    finally:
        _pg_cluster("start")
    deadline = time.monotonic() + 60
    while not audit.try_drain() and time.monotonic() < deadline:
        time.sleep(0.5)
    rows, total = audit.rows(limit=1000)
    assert total == 12 and audit.pending() == []
    assert len({r["id"] for r in rows}) == 12 and rows[0]["action"] == "trading_state" and rows[0]["actor"] == "dave"
    audit.close()
    with psycopg.connect("dbname=test user=postgres host=localhost", autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
