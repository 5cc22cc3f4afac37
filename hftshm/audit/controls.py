"""Operator controls (kill switch, trading state) applied, persisted and audited in one step.

    ops = OperatorControls(run_dir, redis_config, audit, find_block)
    ops.set_kill_switch(True, Actor("alice", "risk", "api"))

The order matters: the running platform's control block first (the next risk check sees it), then
the durable copies (``ControlStore``: run dir, Redis), then the audit journal. With no platform
running the first step is skipped and the change waits in the store for the next start. None of
this waits for a database.

``ControlWatcher`` runs in the supervisor: it follows the Redis keys (a change made with redis-cli or
by another host is applied, persisted and audited with actor "redis"), and drains the audit journal.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

from hftshm.audit.log import AuditEntry, AuditLog
from hftshm.codes import TradingState, parse_code
from hftshm.risk.control import ControlBlock, ControlStore

log = logging.getLogger("hftshm.audit")


@dataclass(frozen=True)
class Actor:
    name: str  # token subject, OS user, "redis"
    role: str  # the token's role; "" for the CLI and Redis
    source: str  # api | cli | redis


def _on_off(on: bool) -> str:
    return "on" if on else "off"


class OperatorControls:
    def __init__(self, run_dir, redis_config=None, audit: AuditLog | None = None,
                 find_block: Callable[[], ControlBlock | None] = lambda: None):
        self.store = ControlStore(run_dir, redis_config)
        self.audit = audit
        self.find_block = find_block

    def _record(self, **fields) -> None:
        if self.audit is not None:
            self.audit.record(AuditEntry(**fields))

    def current(self) -> dict:
        """The controls in force: the running block's if a platform runs, else the persisted ones."""
        persisted = self.store.load()
        block = self.find_block()
        if block is None:
            return {**persisted, "running": False}
        return {**persisted, "running": True, "kill_switch": block.kill_switch,
                "trading_state": block.trading_state.name.lower()}

    def set_kill_switch(self, on: bool, actor: Actor, detail: str = "") -> dict:
        block = self.find_block()
        previous = self.current()
        if block is not None:
            block.set_kill_switch(bool(on))
        redis_error = self.store.save(bool(on), previous["trading_state"], changed_by=actor.name, source=actor.source)
        self._record(action="kill_switch", actor=actor.name, role=actor.role, source=actor.source,
                     previous=_on_off(previous["kill_switch"]), new=_on_off(on), detail=detail)
        log.info("kill switch %s by %s (%s, %s)", _on_off(on).upper(), actor.name, actor.role or "-", actor.source)
        return {"previous": previous["kill_switch"], "kill_switch": bool(on), "running": block is not None,
                "redis_error": redis_error}

    def set_trading_state(self, state: str | TradingState, actor: Actor, detail: str = "") -> dict:
        new = state if isinstance(state, TradingState) else parse_code(TradingState, state, "trading state")
        block = self.find_block()
        previous = self.current()
        if block is not None:
            block.set_trading_state(new)
        redis_error = self.store.save(previous["kill_switch"], new, changed_by=actor.name, source=actor.source)
        self._record(action="trading_state", actor=actor.name, role=actor.role, source=actor.source,
                     previous=previous["trading_state"], new=new.name.lower(), detail=detail)
        log.info("trading state %s by %s (%s, %s)", new.name.lower(), actor.name, actor.role or "-", actor.source)
        return {"previous": previous["trading_state"], "trading_state": new.name.lower(), "running": block is not None,
                "redis_error": redis_error}

    def refused(self, action: str, actor: Actor, new: str, why: str, target: str = "") -> None:
        """A refused attempt (a role without the permission, a bad value): recorded, nothing changes."""
        self._record(action=action, actor=actor.name, role=actor.role, source=actor.source, target=target,
                     new=new, outcome="refused", detail=why)

    def load_into(self, block: ControlBlock) -> dict:
        """At a platform's start: the persisted controls into the new block, before any worker runs.
        A kill switch set only in Redis (by hand, or another host, while nothing ran here) is
        persisted and audited as a Redis change."""
        file_copy = self.store.read_file() or {}
        controls = self.store.apply_to(block)
        if controls["kill_switch"] and not file_copy.get("kill_switch"):
            self.store.save(True, controls["trading_state"], changed_by="redis", source="redis")
            self._record(action="kill_switch", actor="redis", role="", source="redis", previous="off", new="on",
                         detail="found set in Redis at platform start")
        return controls


class ControlWatcher:
    """In the supervisor: applies changes of the Redis control keys (edge-triggered: a key that
    changed since the last poll and disagrees with the persisted controls), and drains the audit."""

    def __init__(self, ops: OperatorControls, interval_s: float = 0.2):
        self.ops = ops
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict | None = None
        self.applied = 0

    def poll(self) -> int:
        """One poll; the number of changes applied."""
        store = self.ops.store
        if store.redis_config is None:
            return 0
        try:
            now = store.read_redis()
        except Exception:  # noqa: BLE001 - Redis down: the mirror reports it; retry next poll
            return 0
        last, self._last = self._last, now
        if last is None:
            return 0
        persisted = store.read_file() or {"kill_switch": False, "trading_state": "active"}
        redis = Actor("redis", "", "redis")
        applied = 0
        if now["kill_switch"] is not None and now["kill_switch"] != last["kill_switch"] \
                and now["kill_switch"] != bool(persisted.get("kill_switch")):
            self.ops.set_kill_switch(now["kill_switch"], redis, detail=f"key {store.redis_config.key('kill_switch')}")
            applied += 1
        state = now["trading_state"]
        if state and state != last["trading_state"] and state != persisted.get("trading_state"):
            try:
                self.ops.set_trading_state(state, redis, detail=f"key {store.redis_config.key('trading_state')}")
                applied += 1
            except ValueError as exc:
                self.ops.refused("trading_state", redis, state, str(exc))
        self.applied += applied
        return applied

    def start(self) -> "ControlWatcher":
        def run():
            while not self._stop.wait(self.interval_s):
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 - never let the watcher die silently
                    log.exception("control watcher poll failed")
                if self.ops.audit is not None and self.ops.audit.journal.exists() \
                        and self.ops.audit.journal.stat().st_size:
                    self.ops.audit.try_drain()

        self.poll()  # the baseline: changes are edges from here
        self._thread = threading.Thread(target=run, name="hftshm-control-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def operator_controls(config, run_dir=None, find_block: Callable[[], ControlBlock | None] = lambda: None,
                      audit: bool = True) -> OperatorControls:
    """``OperatorControls`` of a platform config: its run dir, its ``[redis]``, its OMS database."""
    from pathlib import Path

    run_dir = Path(run_dir or config.platform.run_dir)
    redis_config = getattr(config, "redis", None)
    log_ = AuditLog.for_config(config, run_dir) if audit and getattr(config, "oms", None) is not None else None
    return OperatorControls(run_dir, redis_config, log_, find_block)


def load_persisted_controls(block: ControlBlock, config, run_dir) -> dict:
    """The supervisor's step after creating a run's control block (see ``OperatorControls.load_into``)."""
    return operator_controls(config, run_dir).load_into(block)
