"""The NATS client's own thread: an asyncio loop beside a worker's duty cycle.

nats-py is asyncio; a worker's duty cycle must never block. A bridge worker starts one
``NatsThread``; coroutines run on its loop (``submit``) while ``do_work`` only hands data over
(``call``) and reads counters. Workers other than the bridge never import this module: the hot path
of the trading workers never touches NATS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
from typing import Any, Awaitable, Callable

import nats
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from hftshm.bridge.config import BridgeConfig


class BridgeError(RuntimeError):
    """The bridge cannot go on (NATS unreachable at start, a layout mismatch): the message says why."""


# The duty cycle and the NATS thread share the GIL. With CPython's default 5 ms switch interval a
# spinning duty cycle would hold a message up to 5 ms; 100 us bounds that (bridge processes only).
SWITCH_INTERVAL_S = 0.0001


class NatsThread:
    def __init__(self, name: str):
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"nats-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Awaitable) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable, *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon (never blocks the caller)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self, closing: Awaitable, timeout_s: float = 5.0) -> None:
        """Run ``closing`` (a worker's drain and disconnect) on the loop, then stop the thread. A
        close that fails or times out still stops it: the worker is closing either way."""
        try:
            self.submit(closing).result(timeout_s)
        except Exception:
            pass
        self.stop(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        if not self._thread.is_alive():
            return

        async def cancel_all():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.submit(cancel_all()).result(timeout_s)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)


async def connect(config: BridgeConfig, name: str):
    """A connection that reconnects forever once up (a NATS restart mid-run is waited out, not
    fatal); the first connection must succeed within ``connect_timeout_s``."""
    log = logging.getLogger("hftshm.bridge")
    reported = set()

    async def on_error(exc: Exception) -> None:  # one line per kind of error, not a traceback per retry
        kind = type(exc).__name__
        if kind not in reported:
            reported.add(kind)
            log.warning("NATS %s (%s): %s", config.url, name, exc or kind)

    try:
        return await asyncio.wait_for(
            nats.connect(config.url, name=name, connect_timeout=config.connect_timeout_s, error_cb=on_error,
                         max_reconnect_attempts=-1, reconnect_time_wait=0.1, allow_reconnect=True),
            config.connect_timeout_s)
    except Exception as exc:
        raise BridgeError(f"cannot connect to NATS at {config.url} within {config.connect_timeout_s:g} s "
                          f"({type(exc).__name__}: {exc}); is nats-server running with -js?") from None


async def ensure_stream(js, config: BridgeConfig) -> None:
    """Create (or update the limits of) the namespace's stream ``HFTSHM_<namespace>``."""
    wanted = StreamConfig(
        name=config.stream, subjects=[f"hftshm.{config.namespace}.>"], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, max_age=config.max_age_s or None, max_bytes=config.max_bytes,
        max_msgs=config.max_msgs, duplicate_window=120.0,
    )
    try:
        await js.stream_info(config.stream)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(wanted)
            return
        except nats.js.errors.BadRequestError:
            pass  # another worker created it meanwhile
    await js.update_stream(wanted)
