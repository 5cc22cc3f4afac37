"""A fake Binance on 127.0.0.1 for the live-data tests and ``hftshm bench live``: a websocket server
(the same ``websockets`` library as the client) replaying a shipped recording's frames at their
recorded spacing (``time_scale`` times faster; 0 = flooded), and the REST depth snapshot endpoint on
the same port (websockets' ``process_request`` answers plain HTTP).

The fake is an exchange with one timeline: frames "happen" at their due times whether a client is
connected or not (a client that was away misses them: a sequence gap), and the snapshot endpoint
serves the book as of the last frame that happened (the recording's own snapshot plus every later
diff), with that diff's update id as ``lastUpdateId``: a snapshot always consistent with the stream.

Faults, scripted by frame index (``script={index: action}``), applied just before that frame:
``"disconnect"`` closes every connection; ``("gap", k)`` drops the next k depth diffs for every
client (they still happen: the book moves on); ``"stall"`` leaves the connections open but sends them
nothing more; ``"malformed"`` sends a frame that is not JSON; ``"unknown"`` sends a frame of a stream
nobody subscribed to; ``"stale_snapshot"`` makes the next snapshot request answer the recording's
original (old) snapshot; ``("await_snapshots", n)`` / ``("await_connections", n)`` hold the timeline
(no frame happens, for at most 30 s) until n snapshot requests have been answered / n websocket
connections made, then carry on at the recorded spacing (a test whose fault must come after a resync
or a reconnect says so, instead of racing the client).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from pathlib import Path

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response
from websockets.datastructures import Headers


def load_recording(path: Path, max_frames: int | None = None) -> tuple[list[tuple[int, str]], dict, str]:
    """(frames after the recording's snapshot as (recorded ns, text), that snapshot, the snapshot text)."""
    frames: list[tuple[int, str]] = []
    snapshot, snapshot_text = None, ""
    with gzip.open(path, "rt") as handle:
        for line in handle:
            ts, _, payload = line.rstrip("\n").partition(" ")
            if snapshot is None:
                if '"lastUpdateId"' in payload[:40]:
                    snapshot, snapshot_text = json.loads(payload), payload
                continue
            frames.append((int(ts), payload))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if snapshot is None:
        raise ValueError(f"{path} holds no REST snapshot line")
    return frames, snapshot, snapshot_text


class _Book:
    """The fake exchange's book: the recorded snapshot, then every diff that happened after it."""

    def __init__(self, snapshot: dict):
        self.bids = {p: q for p, q, *_ in snapshot["bids"]}
        self.asks = {p: q for p, q, *_ in snapshot["asks"]}
        self.last_id = int(snapshot["lastUpdateId"])
        self.event_ms = snapshot.get("E", 0)

    def apply(self, text: str) -> None:
        if "depthUpdate" not in text[:80]:
            return
        d = json.loads(text)["data"]
        if int(d["u"]) <= self.last_id:
            return  # in flight when the snapshot was taken: already in it
        for side, levels in ((self.bids, d["b"]), (self.asks, d["a"])):
            for p, q in levels:
                if float(q) == 0.0:
                    side.pop(p, None)
                else:
                    side[p] = q
        self.last_id = int(d["u"])
        self.event_ms = d.get("E", self.event_ms)

    def snapshot(self, limit: int) -> str:
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))[:limit]
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))[:limit]
        return json.dumps({"lastUpdateId": self.last_id, "E": self.event_ms, "T": self.event_ms,
                           "bids": [list(kv) for kv in bids], "asks": [list(kv) for kv in asks]},
                          separators=(",", ":"))


class FakeBinance:
    def __init__(self, recording: str | Path, *, time_scale: float = 20.0, max_frames: int | None = None,
                 script: dict | None = None, symbol: str | None = None, frames: list | None = None):
        if frames is None:
            self.frames, self.recorded_snapshot, self.recorded_snapshot_text = load_recording(Path(recording),
                                                                                              max_frames)
        else:  # a prepared list (the benchmark repeats one)
            self.frames = frames
            self.recorded_snapshot, self.recorded_snapshot_text = load_recording(Path(recording), 1)[1:]
        self.time_scale = time_scale
        self.script = dict(script or {})
        self.symbol = symbol
        self.book = _Book(self.recorded_snapshot)
        self.happened = 0  # frames of the timeline that have happened
        self._applied = 0  # of those, applied to the book
        self.sent = 0  # frames sent (to any client)
        self.connections = 0
        self.snapshot_requests = 0
        self.done = threading.Event()
        self._clients: set = set()
        self._stalled: set = set()
        self._skip_depth = 0
        self._stale_next = False
        self._flood_pending: list[bytes] = []
        self._timeline_task = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------------ endpoints
    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    def rest_url(self, market: str = "usdm") -> str:
        path = {"spot": "/api/v3/depth", "usdm": "/fapi/v1/depth", "coinm": "/dapi/v1/depth"}[market]
        return f"http://127.0.0.1:{self.port}{path}"

    # ------------------------------------------------------------------ thread
    def start(self) -> "FakeBinance":
        ready = threading.Event()

        def main():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve(ready))
            self._loop.close()

        self._thread = threading.Thread(target=main, name="fake-binance", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Binance did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    async def _serve(self, ready: threading.Event) -> None:
        self._stop_event = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, process_request=self._http, max_size=None,
                         compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await self._stop_event.wait()
            if self._timeline_task is not None:
                self._timeline_task.cancel()
            server.close()

    # ------------------------------------------------------------------ REST
    def _http(self, connection, request):
        if request.path.startswith("/stream"):
            return None  # the websocket handshake goes on
        if "/depth" not in request.path:
            return connection.respond(404, "not found\n")
        self.snapshot_requests += 1
        limit = 1000
        for part in request.path.partition("?")[2].split("&"):
            if part.startswith("limit="):
                limit = int(part[6:])
        self._catch_up_book()
        if self._stale_next:
            self._stale_next = False
            body = self.recorded_snapshot_text
        else:
            body = self.book.snapshot(limit)
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body.encode())))])
        return Response(200, "OK", headers, body.encode())

    def _catch_up_book(self) -> None:
        for k in range(self._applied, self.happened):
            self.book.apply(self.frames[k][1])
        self._applied = self.happened

    # ------------------------------------------------------------------ websocket
    async def _handler(self, ws) -> None:
        self.connections += 1
        self._clients.add(ws)
        if self._timeline_task is None:
            self._timeline_task = asyncio.get_running_loop().create_task(self._timeline())
        try:
            await ws.wait_closed()
        finally:
            self._clients.discard(ws)
            self._stalled.discard(ws)

    async def _timeline(self) -> None:
        frames = self.frames
        first_ts = frames[0][0] if frames else 0
        started = time.perf_counter()
        scale = self.time_scale
        flood = _FloodWriter(self) if scale <= 0 else None
        for k, (ts, text) in enumerate(frames):
            if scale > 0:
                due = started + (ts - first_ts) / 1e9 / scale
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            elif k & 255 == 0:
                await flood.flush()  # flooded: still let the REST endpoint answer
            action = self.script.get(k)
            if action is not None:
                held = time.perf_counter()
                await self._act(action, ts)
                started += time.perf_counter() - held  # a hold shifts the rest of the timeline
            self.happened = k + 1
            if self._skip_depth and "depthUpdate" in text[:80]:
                self._skip_depth -= 1
                continue
            if flood is not None:
                flood.add(text)
                continue
            for ws in list(self._clients):
                if ws in self._stalled:
                    continue
                try:
                    await ws.send(text)
                    self.sent += 1
                except ConnectionClosed:
                    self._clients.discard(ws)
        if flood is not None:
            await flood.flush()
        self.done.set()

    async def _act(self, action, ts: int) -> None:
        if self.time_scale <= 0:  # frames batched before the fault go out first
            await _FloodWriter(self).flush()
        name, arg = (action, None) if isinstance(action, str) else action
        if name == "disconnect":
            for ws in list(self._clients):
                self._clients.discard(ws)
                await ws.close(1012, "forced disconnect")
        elif name == "gap":
            self._skip_depth = int(arg)
        elif name == "stall":
            self._stalled.update(self._clients)
        elif name == "stale_snapshot":
            self._stale_next = True
        elif name in ("await_snapshots", "await_connections"):
            deadline = time.perf_counter() + 30.0
            count = (lambda: self.snapshot_requests) if name == "await_snapshots" else (lambda: self.connections)
            while count() < int(arg) and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
        elif name in ("malformed", "unknown"):
            symbol = (self.symbol or "btcusdt").lower()
            text = ('{"stream":"' + symbol + '@depth@0ms","data":{"e":"depthUpdate",'  # cut short: not JSON
                    if name == "malformed" else
                    '{"stream":"' + symbol + '@kline_1m","data":{"e":"kline","E":' + str(ts // 1_000_000)
                    + ',"s":"' + symbol.upper() + '","k":{}}}')
            for ws in list(self._clients):
                if ws not in self._stalled:
                    await ws.send(text)
                    self.sent += 1
        else:
            raise ValueError(f"unknown fake Binance action {action!r}")


class _FloodWriter:
    """Flooded sending: frames as ready-made websocket text frames (a server's frames are not masked,
    RFC 6455 5.1), up to 256 at once in one transport write per client. ``ws.send`` per frame (the
    library's framing, its send lock, a drain) costs the fake ~5 us of CPU a frame, as much as the
    feed it serves on the same machine: the benchmark would measure the fake."""

    def __init__(self, fake: "FakeBinance"):
        self.fake = fake
        self.frames = fake._flood_pending  # the fake's: a flush before a scripted fault sees them too

    def add(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        if n < 126:
            head = bytes((0x81, n))
        elif n < 1 << 16:
            head = bytes((0x81, 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x81, 127)) + n.to_bytes(8, "big")
        self.frames.append(head + data)

    async def flush(self) -> None:
        fake, frames = self.fake, self.frames
        if frames:
            blob = b"".join(frames)
            for ws in list(fake._clients):
                if ws in fake._stalled or ws.transport.is_closing():
                    continue
                ws.transport.write(blob)
                fake.sent += len(frames)
            frames.clear()
        await asyncio.sleep(0)
        for ws in list(fake._clients):  # back-pressure: let a slow client's socket drain
            while not ws.transport.is_closing() and ws.transport.get_write_buffer_size() > 4 << 20:
                await asyncio.sleep(0.001)


def main() -> None:  # python -m tests.fake_binance RECORDING: serve it until Ctrl-C (manual runs)
    import argparse

    parser = argparse.ArgumentParser(description="a fake Binance on 127.0.0.1 replaying a recording")
    parser.add_argument("recording", type=Path)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args()
    with FakeBinance(args.recording, time_scale=args.time_scale, max_frames=args.max_frames) as fake:
        print(f"ws_url {fake.ws_url}\nrest_url {fake.rest_url('usdm')}", flush=True)
        try:
            fake.done.wait()
            time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
