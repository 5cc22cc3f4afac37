"""Risk state in Redis, behind the hot path: a write-behind mirror and the operator's kill-switch key.

The risk worker takes a snapshot of its arrays in its own thread every ``mirror_interval_ms`` (a few
microseconds for a few symbols) and hands it to this mirror's thread, which writes it to Redis: the
order path never waits for the network. The same thread polls ``hftshm:<ns>:kill_switch``; a value
of 1 (or on/true) trips the kill switch in the shared-memory control block.

Keys (``<p>`` = ``hftshm:<namespace>``)::

    <p>:kill_switch          operator input: "1" trips the kill switch (the CLI writes it too)
    <p>:risk:state           JSON snapshot: positions, average costs, PnL parts, open orders (restore source)
    <p>:risk:positions       hash symbol -> position            (for people and dashboards)
    <p>:risk:pnl             hash daily_pnl, realized_pnl, unrealized_pnl, fees, open_orders
    <p>:risk:limits          JSON of the limits in force
    <p>:risk:status          hash kill_switch, trading_state, updated_unix_ms

A Redis outage never stops trading: the mirror marks ``redis_status = -1`` in the control block, logs
once, and retries every interval; trading continues from shared memory.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from hftshm.redis_config import RedisConfig

TRUE_VALUES = (b"1", b"on", b"true", b"yes")


def connect(config: RedisConfig):
    import redis

    return redis.Redis.from_url(config.url, socket_timeout=config.socket_timeout_s,
                                socket_connect_timeout=config.socket_timeout_s)


class RedisMirror:
    def __init__(self, config: RedisConfig, control, log: logging.Logger | None = None):
        if not config.enabled:
            raise ValueError("RedisMirror needs [redis] url")
        self.config = config
        self.control = control
        self.log = log or logging.getLogger("hftshm.risk.redis")
        self._client = connect(config)
        self._lock = threading.Lock()
        self._pending: dict | None = None
        self._limits: dict | None = None
        self._last_state_json = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.writes = 0
        self.kill_trips = 0

    # -- keys ------------------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        return self.config.key(*parts)

    def keys(self) -> list[str]:
        """Every key the mirror writes (for cleanup and ``hftshm risk reset-state``)."""
        return [self.key("kill_switch")] + [self.key("risk", k) for k in ("state", "positions", "pnl", "limits",
                                                                         "status")]

    # -- start / restore -------------------------------------------------------------------------

    def load(self) -> dict | None:
        """The last mirrored snapshot, or None (nothing mirrored yet). Raises if Redis is unreachable."""
        raw = self._client.get(self.key("risk", "state"))
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            self.log.error("Redis key %s does not hold a risk snapshot; ignoring it", self.key("risk", "state"))
            return None

    def start(self, limits: dict | None = None) -> None:
        self._limits = limits
        self._thread = threading.Thread(target=self._run, name="risk-redis-mirror", daemon=True)
        self._thread.start()

    def offer(self, snapshot: dict, summary: dict, positions: dict) -> None:
        """Queue the newest state for writing (an older one not yet written is replaced: latest wins)."""
        with self._lock:
            self._pending = {"state": snapshot, "summary": summary, "positions": positions}

    def stop(self, final: tuple[dict, dict, dict] | None = None) -> None:
        """Stop the thread; write ``final`` (snapshot, summary, positions) first if given."""
        if final is not None:
            self.offer(*final)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._flush()  # whatever the thread did not get to
        try:
            self._client.close()
        except Exception:
            pass

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        interval = self.config.mirror_interval_s
        while not self._stop.is_set():
            self.poll_kill_switch()
            self._flush()
            self._stop.wait(interval)

    def poll_kill_switch(self) -> bool:
        """Trip the control block's kill switch if the operator key says so; True if it tripped now."""
        try:
            value = self._client.get(self.key("kill_switch"))
        except Exception as exc:
            self._failed(exc)
            return False
        if value is not None and value.strip().lower() in TRUE_VALUES and not self.control.kill_switch:
            self.control.set_kill_switch(True)
            self.kill_trips += 1
            self.log.warning("kill switch tripped by Redis key %s", self.key("kill_switch"))
            return True
        return False

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            self._write(pending)
        except Exception as exc:
            with self._lock:
                if self._pending is None:
                    self._pending = pending  # retry next interval unless something newer came
            self._failed(exc)
            return
        if self._failing:
            self.log.warning("Redis mirror recovered; risk state is mirrored again")
        self._failing = False
        self.control.array[0]["redis_status"] = 1

    def _write(self, pending: dict[str, Any]) -> None:
        state_json = json.dumps(pending["state"], separators=(",", ":"))
        record = self.control.array[0]
        pipe = self._client.pipeline(transaction=True)
        if state_json != self._last_state_json:
            pipe.set(self.key("risk", "state"), state_json)
        if pending["positions"]:
            pipe.hset(self.key("risk", "positions"), mapping=pending["positions"])
        pipe.hset(self.key("risk", "pnl"), mapping={k: v for k, v in pending["summary"].items()})
        pipe.hset(self.key("risk", "status"), mapping={
            "kill_switch": int(record["kill_switch"]), "trading_state": pending["state"].get("trading_state", ""),
            "updated_unix_ms": time.time_ns() // 1_000_000})
        limits = self._limits
        if limits is not None:
            pipe.set(self.key("risk", "limits"), json.dumps(limits))
        pipe.execute()
        self._limits = None  # limits do not change while running: once is enough
        self._last_state_json = state_json
        self.writes += 1

    def _failed(self, exc: Exception) -> None:
        self.control.array[0]["redis_status"] = -1
        if not self._failing:
            self.log.error("Redis mirror failing (%s); trading continues from shared memory, retrying every %.0f ms",
                           exc, self.config.mirror_interval_s * 1e3)
        self._failing = True


def set_kill_switch_key(config: RedisConfig, on: bool) -> None:
    """What the CLI does besides the control block: another host watching Redis sees it too."""
    client = connect(config)
    try:
        client.set(config.key("kill_switch"), "1" if on else "0")
    finally:
        client.close()


def delete_state(config: RedisConfig) -> int:
    """Remove every mirrored risk key of the namespace (``hftshm risk reset-state``); returns how many."""
    client = connect(config)
    try:
        keys = [config.key("risk", k) for k in ("state", "positions", "pnl", "limits", "status")]
        return int(client.delete(*keys))
    finally:
        client.close()
