"""Binance public market data over the network: combined-stream websockets and REST depth snapshots.

One websocket connection per market (spot, USD-M, COIN-M), subscribed to every chosen symbol's depth
diffs, trades and best bid/ask by the combined-stream URL. Frames go to a sink as raw bytes with
their local receive time (``time.time_ns``, the recordings' clock); nothing is decoded here.

Book synchronisation is not done here (``hftshm.feed.binance.BinanceImporter`` does it, for the
recorder and the live feed alike); this module only follows Binance's procedure for *when* to take
a snapshot: after subscribing, once the first depth diff of a symbol has arrived on the connection
(so the snapshot is never older than everything buffered), and again whenever the sink asks
(``request_snapshot``: a sequence gap, a snapshot older than the buffered diffs, a file rotation).

Reconnects: exponential backoff with jitter after an error or a close; a connection that delivers no
frame for ``heartbeat_timeout_s`` (a stall: the socket is open, the data stopped) is closed and
reopened. Websocket pings (the library's keepalive) catch dead peers as well.

The client runs on its own thread and asyncio loop (``start``/``stop``): the caller's thread never
blocks on the network.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Protocol

from hftshm.config import ConfigError

log = logging.getLogger("hftshm.feed.live")

_STREAM_PREFIX = b'{"stream":"'


@dataclass(frozen=True)
class Market:
    """One Binance market's endpoints and its depth stream's name (the update speed is in it)."""

    name: str
    ws_url: str  # combined-stream base: <ws_url>?streams=a/b/c
    rest_url: str  # depth snapshot: <rest_url>?symbol=X&limit=N
    depth_stream: str


DEFAULT_MARKETS = {
    "spot": Market("spot", "wss://stream.binance.com:9443/stream", "https://api.binance.com/api/v3/depth",
                   "depth@100ms"),
    "usdm": Market("usdm", "wss://fstream.binance.com/stream", "https://fapi.binance.com/fapi/v1/depth",
                   "depth@0ms"),
    "coinm": Market("coinm", "wss://dstream.binance.com/stream", "https://dapi.binance.com/dapi/v1/depth",
                    "depth@0ms"),
}
STREAM_KINDS = ("depth", "trade", "bookTicker")


def market_for(name: str, ws_url: str | None = None, rest_url: str | None = None) -> Market:
    """A market by name, with its default endpoints unless given (tests point them at 127.0.0.1)."""
    try:
        base = DEFAULT_MARKETS[name]
    except KeyError:
        raise ConfigError(f"unknown Binance market {name!r}; known: {', '.join(DEFAULT_MARKETS)}") from None
    for label, url, schemes in (("websocket", ws_url, ("ws://", "wss://")), ("REST", rest_url, ("http://", "https://"))):
        if url is not None and not url.startswith(schemes):
            raise ConfigError(f"{name} {label} endpoint {url!r} must start with {' or '.join(schemes)}")
    return Market(name, ws_url or base.ws_url, rest_url or base.rest_url, base.depth_stream)


@dataclass(frozen=True)
class Subscription:
    market: Market
    symbols: tuple[str, ...]  # upper case, as the exchange names them
    snapshot_limit: int = 1000

    def streams(self) -> list[str]:
        out = []
        for symbol in self.symbols:
            s = symbol.lower()
            out += [f"{s}@{self.market.depth_stream}", f"{s}@trade", f"{s}@bookTicker"]
        return out

    def url(self) -> str:
        return f"{self.market.ws_url}?streams={'/'.join(self.streams())}"


class StreamSink(Protocol):
    """What the client calls, on its own thread; implementations must not block."""

    def on_frame(self, market: str, recv_ns: int, frame: bytes) -> None: ...
    def on_snapshot(self, market: str, symbol: str, recv_ns: int, body: bytes) -> None: ...
    def on_connect(self, market: str, attempt: int) -> None: ...
    def on_disconnect(self, market: str, recv_ns: int, reason: str) -> None: ...


def frame_symbol(frame: bytes) -> bytes | None:
    """The symbol (lower case, as in the stream name) of a combined-stream frame; None if unreadable."""
    if not frame.startswith(_STREAM_PREFIX):
        return None
    at = frame.find(b"@", 11, 64)
    return frame[11:at] if at > 11 else None


def is_depth_frame(frame: bytes) -> bool:
    at = frame.find(b"@", 11, 64)
    return at > 0 and frame.startswith(b"depth", at + 1)


@dataclass
class ClientStats:
    frames: int = 0
    bytes: int = 0
    connects: int = 0
    disconnects: int = 0
    stalls: int = 0  # connections closed for delivering nothing for heartbeat_timeout_s
    snapshots: int = 0
    snapshot_errors: int = 0
    last_error: str = ""
    errors: dict = field(default_factory=dict)


class BinanceStreamClient:
    def __init__(self, subscriptions: list[Subscription], sink: StreamSink, *, heartbeat_timeout_s: float = 10.0,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 30.0, http_timeout_s: float = 10.0):
        if not subscriptions:
            raise ConfigError("nothing to subscribe to: give at least one market and symbol")
        if heartbeat_timeout_s <= 0 or backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ConfigError("heartbeat timeout and backoff must be positive (backoff_max >= backoff_initial)")
        self.subscriptions = subscriptions
        self.sink = sink
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.http_timeout_s = http_timeout_s
        self.stats = ClientStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._inflight: set[tuple[str, str]] = set()
        self._by_market = {s.market.name: s for s in subscriptions}

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        """Run the connections on a thread of their own (returns at once)."""
        ready = threading.Event()

        def main():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._stopping = asyncio.Event()
            ready.set()
            try:
                self._loop.run_until_complete(self.run())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=main, name="hftshm-binance-ws", daemon=True)
        self._thread.start()
        ready.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout)

    def request_snapshot(self, market: str, symbol: str) -> None:
        """Fetch a fresh depth snapshot of ``symbol`` (thread-safe; a fetch already under way counts)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn_snapshot, market, symbol.upper())

    # ------------------------------------------------------------------ loop
    async def run(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        tasks = [asyncio.create_task(self._market_loop(s)) for s in self.subscriptions]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _market_loop(self, sub: Subscription) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        name = sub.market.name
        delay = self.backoff_initial_s
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            reason = "closed"
            try:
                async with connect(sub.url(), max_size=None, open_timeout=self.http_timeout_s, ping_interval=20,
                                   ping_timeout=20, compression=None) as ws:
                    self.stats.connects += 1
                    self.sink.on_connect(name, attempt)
                    log.info("%s: connected to %s (%d streams)", name, sub.market.ws_url, len(sub.streams()))
                    delay = self.backoff_initial_s
                    reason = await self._receive(ws, sub)
            except asyncio.CancelledError:
                raise
            except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self.stats.disconnects += 1
            self.stats.last_error = reason
            self.sink.on_disconnect(name, time.time_ns(), reason)
            if self._stopping.is_set():
                return
            pause = delay * (0.5 + random.random())
            log.warning("%s: stream interrupted (%s); reconnecting in %.2f s", name, reason, pause)
            try:
                await asyncio.wait_for(self._stopping.wait(), pause)
                return
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, self.backoff_max_s)

    async def _receive(self, ws, sub: Subscription) -> str:
        """Frames to the sink until the connection ends; returns why it ended. The heartbeat is a
        watchdog task, not a timeout per receive (a timer per frame costs more than the frame)."""
        from websockets.exceptions import ConnectionClosed

        name = sub.market.name
        sink_frame = self.sink.on_frame
        waiting = {s.lower().encode() for s in sub.symbols}  # first depth diff triggers the snapshot
        stats = self.stats
        clock = time.time_ns
        last = [clock()]  # this connection's last frame (one watchdog per connection)
        stalled = []
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(ws, last, stalled))
        try:
            while True:
                try:
                    frame = await ws.recv(decode=False)
                except ConnectionClosed as exc:
                    if stalled:
                        return stalled[0]
                    return f"closed by peer ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
                recv_ns = clock()
                last[0] = recv_ns
                stats.frames += 1
                stats.bytes += len(frame)
                sink_frame(name, recv_ns, frame)
                if waiting and is_depth_frame(frame):
                    symbol = frame_symbol(frame)
                    if symbol in waiting:
                        waiting.discard(symbol)
                        self._spawn_snapshot(name, symbol.decode().upper())
        finally:
            watchdog.cancel()

    async def _watchdog(self, ws, last: list, stalled: list) -> None:
        """Close a connection that delivered nothing for ``heartbeat_timeout_s`` (open but stalled)."""
        timeout_ns = int(self.heartbeat_timeout_s * 1e9)
        while True:
            silent_ns = time.time_ns() - last[0]
            if silent_ns >= timeout_ns:
                self.stats.stalls += 1
                stalled.append(f"stalled: no frame for {self.heartbeat_timeout_s:g} s")
                await ws.close(1001, "no data")
                return
            await asyncio.sleep((timeout_ns - silent_ns) / 1e9 + 0.001)

    # ------------------------------------------------------------------ snapshots
    def _spawn_snapshot(self, market: str, symbol: str) -> None:
        key = (market, symbol)
        if key in self._inflight or market not in self._by_market:
            return
        self._inflight.add(key)
        asyncio.get_running_loop().create_task(self._snapshot(market, symbol))

    async def _snapshot(self, market: str, symbol: str) -> None:
        sub = self._by_market[market]
        url = f"{sub.market.rest_url}?symbol={symbol}&limit={sub.snapshot_limit}"
        delay = self.backoff_initial_s
        try:
            while not self._stopping.is_set():
                try:
                    body = await asyncio.to_thread(self._http_get, url)
                    self.stats.snapshots += 1
                    self.sink.on_snapshot(market, symbol, time.time_ns(), body)
                    return
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    self.stats.snapshot_errors += 1
                    self.stats.last_error = f"snapshot {symbol}: {exc}"
                    log.warning("%s: snapshot of %s failed (%s); retrying in %.2f s", market, symbol, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.backoff_max_s)
        finally:
            self._inflight.discard((market, symbol))

    def _http_get(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=self.http_timeout_s) as response:
            body = response.read()
        if not body.lstrip().startswith(b"{"):
            raise ValueError(f"not a JSON object: {body[:80]!r}")
        return body
