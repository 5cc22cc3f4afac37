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
blocks on the network. ``selector_factory`` gives that loop another selector (the live feed's
busy-poll selector, ``live_poll``: the thread spins instead of sleeping in epoll).
"""

from __future__ import annotations

import asyncio
import logging
import random
import selectors
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Protocol

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
    # optional: ``on_frames(market, recv_ns, frames)``, the whole messages of one socket read at once
    # (a list, in order; without it each goes to ``on_frame``), and ``on_read_end(market)`` after them
    # optional: ``on_read(market, buf, recv_ns)``, offered a socket read's bytes first (a bytearray
    # after the handshake): returns (bytes taken from its start, frames, payload bytes) if it took
    # the read's whole frames itself, or None (then they are split and delivered as above)
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
    first_frame_ns: int = 0  # receive time of the first frame (wall clock, ns)
    connects: int = 0
    disconnects: int = 0
    stalls: int = 0  # connections closed for delivering nothing for heartbeat_timeout_s
    snapshots: int = 0
    snapshot_errors: int = 0
    last_error: str = ""
    errors: dict = field(default_factory=dict)


class BinanceStreamClient:
    def __init__(self, subscriptions: list[Subscription], sink: StreamSink, *, heartbeat_timeout_s: float = 10.0,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 30.0, http_timeout_s: float = 10.0,
                 selector_factory: Callable[[], selectors.BaseSelector] | None = None):
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
        # None: asyncio's default loop (blocks in epoll); else the thread's loop runs on the selector it
        # returns (the live feed's busy-poll selector, ``live_poll``), built on that thread by ``start``
        self.selector_factory = selector_factory
        self.selector: selectors.BaseSelector | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._inflight: set[tuple[str, str]] = set()
        self._by_market = {s.market.name: s for s in subscriptions}
        self.connections: dict = {}  # market -> its open connection (the network thread's: touch_connections)
        self.touches = 0

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        """Run the connections on a thread of their own (returns at once)."""
        ready = threading.Event()

        def main():
            if self.selector_factory is None:
                self._loop = asyncio.new_event_loop()
            else:
                self.selector = self.selector_factory()
                self._loop = asyncio.SelectorEventLoop(self.selector)
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

    def touch_connections(self) -> None:
        """On the network thread, while it is idle: each open connection's read path with no bytes
        (``touch``), so the Python a real read runs finds its code and objects in the caches."""
        for conn in list(self.connections.values()):
            conn.touch()
            self.touches += 1

    def request_snapshot(self, market: str, symbol: str) -> None:
        """Fetch a fresh depth snapshot of ``symbol`` (thread-safe; a fetch already under way counts)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn_snapshot, market, symbol.upper())

    # ------------------------------------------------------------------ loop
    async def run(self) -> None:
        from hftshm.feed import live_ws_nb

        if self._stopping is None:
            self._stopping = asyncio.Event()
        live_ws_nb.warm_up()  # numba's cache (or a compile) before the first frame, not during it
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
            messages = _Messages(self, sub)
            try:
                async with connect(sub.url(), max_size=None, open_timeout=self.http_timeout_s, ping_interval=20,
                                   ping_timeout=20, compression=None, create_connection=messages.connection) as ws:
                    self.stats.connects += 1
                    self.sink.on_connect(name, attempt)
                    log.info("%s: connected to %s (%d streams)", name, sub.market.ws_url, len(sub.streams()))
                    delay = self.backoff_initial_s
                    reason = await self._receive(ws, messages)
            except asyncio.CancelledError:
                raise
            except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self.connections.pop(name, None)
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

    async def _receive(self, ws, messages: "_Messages") -> str:
        """Frames go to the sink from the connection's socket reads (``_Messages``) until it ends;
        returns why it ended. The heartbeat is a watchdog task, not a timeout per receive."""
        messages.start()
        stalled = []
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(ws, messages.last, stalled))
        try:
            await ws.wait_closed()
        finally:
            watchdog.cancel()
        if stalled:
            return stalled[0]
        rcvd = ws.protocol.close_rcvd
        return f"closed by peer ({rcvd.code if rcvd else 'no close frame'})"

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


class _Messages:
    """One connection's messages, handed to the sink from the socket read that completed them.

    The ``websockets`` connection class is subclassed (``create_connection``, the library's documented
    way to customise a connection, ``_direct_connection_class``) so that a whole text/binary message
    goes to the sink from the ``data_received`` of the socket read that completed it: no assembler
    queue, no ``recv`` coroutine resumed per message (about half of the client's CPU per frame
    flooded), and no library frame parser for data frames (most of the rest). Control frames (ping,
    pong, close) and fragments stay the library's. A message's receive time is the time its last
    socket read returned (the messages of one read arrived together); after each read the sink's
    optional ``on_read_end`` runs (the live feed publishes the read's frames then).

    Messages completed while the handshake's ``connect`` is still returning are held until ``start``
    (the sink hears of the connection first)."""

    def __init__(self, client: "BinanceStreamClient", sub: Subscription):
        self.client = client
        self.market = sub.market.name
        self.waiting = {s.lower().encode() for s in sub.symbols}  # first depth diff triggers the snapshot
        self.last = [time.time_ns()]  # this connection's last read (the watchdog's heartbeat)
        self.held: list | None = []

    def connection(self, protocol, **kwargs):
        conn = _direct_connection_class()(protocol, **kwargs)
        conn.on_message = self.on_message
        conn.on_messages = self.on_messages
        if getattr(self.client.sink, "on_read", None) is not None:
            conn.take_read = self.take_read
        self.client.connections[self.market] = conn
        read_end = getattr(self.client.sink, "on_read_end", None)
        if read_end is not None:
            market = self.market
            conn.on_read_end = lambda: self.held is None and read_end(market)
        return conn

    def start(self) -> None:
        held, self.held = self.held, None
        for frame, recv_ns in held:
            self._deliver(frame, recv_ns)
        read_end = getattr(self.client.sink, "on_read_end", None)
        if held and read_end is not None:
            read_end(self.market)

    def take_read(self, buf: bytearray, recv_ns: int) -> bool:
        """Offer a socket read's bytes to the sink's ``on_read`` (the live feed's one-call shortcut:
        whole frames from the bytes to its rings); True if it took the read's whole frames (they are
        cut from ``buf``), False to split and deliver them as usual."""
        if self.held is not None or self.waiting:
            return False
        on_read = self.client.sink.on_read
        got = on_read(self.market, buf, recv_ns) if on_read is not None else None
        if got is None:
            return False
        taken, frames, payload_bytes = got
        del buf[:taken]
        self.last[0] = recv_ns
        stats = self.client.stats
        if not stats.frames:
            stats.first_frame_ns = recv_ns
        stats.frames += frames
        stats.bytes += payload_bytes
        return True

    def on_message(self, frame: bytes, recv_ns: int) -> None:
        self.last[0] = recv_ns
        if self.held is not None:
            self.held.append((frame, recv_ns))
            return
        self._deliver(frame, recv_ns)

    def on_messages(self, frames: list, recv_ns: int) -> None:
        """The whole messages of one socket read, in order (the frame splitter's)."""
        self.last[0] = recv_ns
        if self.held is not None or self.waiting:  # (rare: the handshake's read, a symbol's first diff)
            for frame in frames:
                self.on_message(frame, recv_ns)
            return
        client = self.client
        stats = client.stats
        if not stats.frames:
            stats.first_frame_ns = recv_ns
        stats.frames += len(frames)
        stats.bytes += sum(map(len, frames))
        on_frames = getattr(client.sink, "on_frames", None)
        if on_frames is not None:
            on_frames(self.market, recv_ns, frames)
            return
        on_frame, market = client.sink.on_frame, self.market
        for frame in frames:
            on_frame(market, recv_ns, frame)

    def _deliver(self, frame: bytes, recv_ns: int) -> None:
        client = self.client
        stats = client.stats
        stats.frames += 1
        stats.bytes += len(frame)
        if stats.frames == 1:
            stats.first_frame_ns = recv_ns
        client.sink.on_frame(self.market, recv_ns, frame)
        if self.waiting and is_depth_frame(frame):
            symbol = frame_symbol(frame)
            if symbol in self.waiting:
                self.waiting.discard(symbol)
                client._spawn_snapshot(self.market, symbol.decode().upper())


_DIRECT_CONNECTION = None
_HEADERS_END = b"\r\n\r\n"
_MAX_FRAMES_PER_SPLIT = 4096


def _direct_connection_class():
    """``ClientConnection`` delivering whole messages from ``data_received`` (built on first use: the
    ``websockets`` import stays out of processes that never connect).

    After a 101 handshake response the bytes of the connection are split into frames by
    ``live_ws_nb.split_frames``: a whole unmasked text/binary frame goes to ``on_message`` at once;
    any other frame is given to the library whole (``super().data_received``), so its parser only
    ever sees whole frames and is always at a frame boundary; it answers pings, handles the close
    handshake and reassembles fragments as before (``process_event``). The library's per-frame
    parser (a generator step per header field) was two thirds of the client's CPU per frame."""
    global _DIRECT_CONNECTION
    if _DIRECT_CONNECTION is not None:
        return _DIRECT_CONNECTION
    import numpy as np
    from websockets.asyncio.client import ClientConnection
    from websockets.frames import Frame, Opcode

    from hftshm.feed import live_ws_nb as wsnb

    text, binary, cont = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
    data_kind = wsnb.DATA

    class _DirectConnection(ClientConnection):
        on_message = None
        on_messages = None
        on_read_end = None
        take_read = None  # _Messages.take_read when the sink has a one-call shortcut (on_read)
        _recv_ns = 0
        _fragments: list | None = None
        _head: bytearray | None = None  # the handshake response so far; None once split
        _buf: bytearray | None = None  # frames still arriving (after the handshake)
        _table = None

        def data_received(self, data: bytes) -> None:
            self._recv_ns = time.time_ns()
            buf = self._buf
            if buf is None:
                self._handshake_bytes(data)
            else:
                buf += data
                take_read = self.take_read
                if take_read is None or not take_read(buf, self._recv_ns):
                    self._split()
            if self.on_read_end is not None:
                self.on_read_end()

        def touch(self) -> None:
            """What a socket read runs, for a read of no bytes: nothing is delivered, taken or changed
            (the buffer keeps what it held; the sink's read shortcut finds no whole frame). The
            connection's own objects and the sink's are touched, as a read touches them."""
            if self._buf is not None:
                self.data_received(b"")

        def _handshake_bytes(self, data: bytes) -> None:
            head = self._head
            if head is None:
                head = self._head = bytearray()
            head += data
            end = head.find(_HEADERS_END)
            if end < 0:
                return  # the response's headers are still arriving
            if not head.startswith(b"HTTP/1.1 101"):  # a refusal (with a body): the library's, all of it
                self._buf = None
                self._head = None
                self.data_received = super().data_received
                super().data_received(bytes(head))
                return
            end += len(_HEADERS_END)
            super().data_received(bytes(head[:end]))  # the library takes the response (connect returns)
            self._buf = bytearray(head[end:])
            self._head = None
            self._table = np.zeros((_MAX_FRAMES_PER_SPLIT, wsnb.N_FCOLS), np.int64)
            self._split()

        def _split(self) -> None:
            buf = self._buf
            while True:
                view = np.frombuffer(buf, np.uint8)  # (released before buf is resized)
                frames, taken = wsnb.split_frames(view, len(view), self._table)
                del view
                if frames == 0:
                    return
                chunk = bytes(buf[:taken])
                del buf[:taken]
                recv_ns = self._recv_ns
                messages = []
                for start, payload, stop, kind in self._table[:frames].tolist():
                    if kind == data_kind:
                        messages.append(chunk[payload:stop])
                    else:
                        if messages:  # in order: the data frames before this one first
                            self.on_messages(messages, recv_ns)
                            messages = []
                        super().data_received(chunk[start:stop])
                if messages:
                    self.on_messages(messages, recv_ns)
                if frames < len(self._table):
                    return

        def process_event(self, event) -> None:
            if self.response is None or type(event) is not Frame:  # the handshake's response
                super().process_event(event)
                return
            opcode = event.opcode
            if opcode is text or opcode is binary:
                if event.fin:
                    self.on_message(bytes(event.data), self._recv_ns)
                else:
                    self._fragments = [bytes(event.data)]
            elif opcode is cont:
                if self._fragments is not None:  # (the protocol refuses a continuation without a start)
                    self._fragments.append(bytes(event.data))
                    if event.fin:
                        whole, self._fragments = b"".join(self._fragments), None
                        self.on_message(whole, self._recv_ns)
            else:
                super().process_event(event)  # pong: the keepalive's acknowledgement

    _DIRECT_CONNECTION = _DirectConnection
    return _DIRECT_CONNECTION
