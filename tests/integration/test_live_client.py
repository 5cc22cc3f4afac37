"""The live client (hftshm.feed.live_client) against a websocket server on 127.0.0.1 that sends what
the fake Binance does not: pings (the client must answer, or Binance drops it), fragmented messages,
frames of every length encoding, and a refused handshake; the client's own frame splitting must hand
every message to the sink whole and in order and leave the protocol to the library."""

from __future__ import annotations

import asyncio
import threading
import time

from websockets.asyncio.server import serve

from hftshm.feed.live_client import BinanceStreamClient, Subscription, market_for


class Sink:
    def __init__(self):
        self.frames: list[bytes] = []
        self.stamps: list[int] = []
        self.disconnects: list[str] = []

    def on_frame(self, market, recv_ns, frame):
        self.frames.append(frame)
        self.stamps.append(recv_ns)

    def on_snapshot(self, market, symbol, recv_ns, body):
        pass

    def on_connect(self, market, attempt):
        pass

    def on_disconnect(self, market, recv_ns, reason):
        self.disconnects.append(reason)


class Server:
    """Runs ``script(ws)`` for each connection; ``refuse`` answers the handshake with a 403."""

    def __init__(self, script, refuse=False):
        self.script, self.refuse = script, refuse
        self.results: dict = {}
        self.ready = threading.Event()
        self.loop = None

    def __enter__(self):
        def main():
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._serve())

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        return self

    async def _serve(self):
        self.stop = asyncio.Event()

        def process_request(connection, request):
            return connection.respond(403, "go away\n") if self.refuse else None

        async with serve(self._handler, "127.0.0.1", 0, process_request=process_request, compression=None,
                         ping_interval=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stop.wait()

    async def _handler(self, ws):
        await self.script(ws, self.results)
        await ws.wait_closed()

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


def _client(server, sink):
    url = f"ws://127.0.0.1:{server.port}/stream"
    sub = Subscription(market_for("usdm", url, f"http://127.0.0.1:{server.port}/fapi/v1/depth"), ("BTCUSDT",))
    return BinanceStreamClient([sub], sink, heartbeat_timeout_s=30.0, backoff_initial_s=0.05)


def _wait(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


MESSAGES = ['{"stream":"btcusdt@trade","data":{"k":%d}}' % k for k in range(300)]


def test_pings_are_answered_and_fragmented_and_large_messages_arrive_whole_in_order():
    big = "x" * 70_000
    mid = "y" * 300

    async def script(ws, results):
        for k, text in enumerate(MESSAGES):
            if k == 10:
                pong = await ws.ping(b"are you there")
                results["pong"] = await asyncio.wait_for(pong, 5)  # the client answered
            if k == 20:
                await ws.send(iter(["frag", "mented", "!"]))  # three frames, one message
            if k == 30:
                await ws.send(big)
                await ws.send(mid.encode())  # a binary frame
            await ws.send(text)
        results["sent"] = True

    sink = Sink()
    with Server(script) as server:
        client = _client(server, sink)
        client.start()
        try:
            assert _wait(lambda: len(sink.frames) >= len(MESSAGES) + 3)
        finally:
            client.stop()
        assert "pong" in server.results
    expected = [m.encode() for m in MESSAGES]
    expected[20:20] = [b"fragmented!"]
    expected[31:31] = [big.encode(), mid.encode()]
    assert sink.frames == expected
    assert sink.stamps == sorted(sink.stamps) and client.stats.frames == len(expected)


def test_a_refused_handshake_is_an_interruption_and_retried_not_a_hang():
    async def script(ws, results):
        pass

    sink = Sink()
    with Server(script, refuse=True) as server:
        client = _client(server, sink)
        client.start()
        try:
            assert _wait(lambda: len(sink.disconnects) >= 2, 15)
        finally:
            client.stop()
    assert "403" in sink.disconnects[0] and not sink.frames and client.stats.connects == 0
