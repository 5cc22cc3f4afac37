"""The live feed's network client in a process of its own, handing raw frames over a shared-memory ring.

Why a process: the websocket client (``live_client``, asyncio + the ``websockets`` library) costs
more CPU per frame than the feed's whole decode/books/publish, and in one process the two share the
GIL: a frame received waits for the feed's batch to finish, and the feed waits for the loop's
callbacks. Here the client runs in a child process and writes every frame, undecoded, with its
receive time, into a ``live_frame`` SPSC ring (``live_frames_nb.write_frame``: one kernel call a
frame); the feed polls the ring (``read_frames``: every whole frame waiting, in one call) and never
touches the network.

    net = NetworkProcess(subscriptions, heartbeat_timeout_s=10.0)
    net.start()
    frames = net.take(2048)        # [(receive ns, frame bytes | None = disconnect, market name)]
    net.request_snapshot("usdm", "BTCUSDT")
    net.check()                    # a dead child: reported, a disconnect marker per market, restarted

Back-pressure: the ring is ``block``; on a full ring (a burst the feed has not caught up with) the
child waits for room, up to ``FULL_WAIT_S`` (meanwhile the socket's buffers and TCP hold the rest of
the burst), then drops the frame and counts it (``dropped``, as the in-process queue does); the
synchronisation then sees the gap in the depth sequence and resyncs the book from a snapshot.

Snapshot requests go to the child over a pipe (``multiprocessing.Pipe``; the child's loop reads it as
a file descriptor). The child's counters (frames, connects, stalls, snapshots, drops) are a small
shared int64 array it refreshes every 50 ms. The child exits when the pipe closes (the feed went
away) or it is told to stop; a child that died (killed, crashed) is noticed by ``check`` and started
again: its successor attaches to the same ring and carries on from the committed cursor (a frame is
committed whole, so nothing half-written is ever read).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
import uuid

import numpy as np

from hftshm.codes import FrameKind
from hftshm.feed import live_frames_nb as fnb
from hftshm.feed.live_client import BinanceStreamClient, ClientStats, Subscription

log = logging.getLogger("hftshm.feed.live")

# the child's counters, in the shared array
S_FRAMES, S_BYTES, S_CONNECTS, S_DISCONNECTS, S_STALLS, S_SNAPSHOTS, S_SNAPSHOT_ERRORS, S_DROPPED, S_READY = range(9)
N_STATS = 9
# plain ints: an IntEnum member given to a numba kernel is typed on numba's slow Python path (~15 us a
# call, half the network process's cost per frame)
_FRAME, _SNAPSHOT, _DISCONNECT = int(FrameKind.FRAME), int(FrameKind.SNAPSHOT), int(FrameKind.DISCONNECT)
_STATS_INTERVAL_S = 0.05
FULL_WAIT_S = 1.0  # a full frame ring: wait this long for the feed before dropping a frame (a feed
# process off the CPU for 100 ms happens on a loaded machine)
_FULL_POLL_S = 0.0002
_BUFFER_BYTES = 1 << 22


class RingSink:
    """The client's sink in the network process: every frame, snapshot and disconnect into the ring."""

    def __init__(self, ring, markets: list[str], recorder=None, full_wait_s: float = FULL_WAIT_S):
        self.ctrl, self.records = ring.ctrl, ring.records
        self.market_index = {m: k for k, m in enumerate(markets)}
        self.recorder = recorder
        self.full_wait_s = full_wait_s
        self.dropped = 0
        self.waited = 0  # frames that found the ring full and went in after a wait

    def _write(self, market: str, recv_ns: int, payload: bytes, kind: int) -> None:
        data = np.frombuffer(payload, np.uint8)
        index = self.market_index[market]
        if fnb.write_frame(self.ctrl, self.records, data, recv_ns, index, kind) == fnb.WRITTEN:
            return
        # the loop stops for the wait (no frame could go anywhere meanwhile; pings have seconds)
        deadline = time.monotonic() + self.full_wait_s
        while time.monotonic() < deadline:
            time.sleep(_FULL_POLL_S)
            if fnb.write_frame(self.ctrl, self.records, data, recv_ns, index, kind) == fnb.WRITTEN:
                self.waited += 1
                return
        self.dropped += 1

    def on_frame(self, market: str, recv_ns: int, frame: bytes) -> None:
        self._write(market, recv_ns, frame, _FRAME)
        if self.recorder is not None:
            self.recorder.on_frame(market, recv_ns, frame)

    def on_snapshot(self, market: str, symbol: str, recv_ns: int, body: bytes) -> None:
        from hftshm.feed.live_record import wrap_snapshot

        self._write(market, recv_ns, wrap_snapshot(symbol, body), _SNAPSHOT)
        if self.recorder is not None:
            self.recorder.on_snapshot(market, symbol, recv_ns, body)

    def on_connect(self, market: str, attempt: int) -> None:
        pass

    def on_disconnect(self, market: str, recv_ns: int, reason: str) -> None:
        self._write(market, recv_ns, b"", _DISCONNECT)
        if self.recorder is not None:
            self.recorder.on_disconnect(market, recv_ns, reason)


def _network_main(ring_name: str, subscriptions: list[Subscription], client_kw: dict, record_dir: str | None,
                  conn, stats) -> None:
    """The child process: the websocket client on its own loop, frames into the ring."""
    from hftshm.transport.ring import Ring

    ring = Ring.attach(ring_name, "live_frame", role="producer", takeover=True)
    recorder = None
    if record_dir is not None:
        from hftshm.feed.live_record import Recorder

        recorder = Recorder(record_dir, subscriptions, watch_sequence=False, compresslevel=1)
    sink = RingSink(ring, [s.market.name for s in subscriptions], recorder)
    warm_up_kernels()  # before the first frame (numba's cache: a load, or a compile on a fresh checkout)
    client = BinanceStreamClient(subscriptions, sink, **client_kw)
    parent = os.getppid()

    async def main():
        loop = asyncio.get_running_loop()
        client._loop = loop
        client._stopping = asyncio.Event()

        def on_message():
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the feed closed its end: it has gone
                client._stopping.set()
                loop.remove_reader(conn.fileno())
                return
            if message == "stop":
                client._stopping.set()
            else:
                client._spawn_snapshot(*message)

        loop.add_reader(conn.fileno(), on_message)

        async def publish_stats():
            while not client._stopping.is_set():
                _copy_stats(client.stats, sink, stats)
                if os.getppid() != parent:  # orphaned (the feed was killed): nobody reads the ring
                    client._stopping.set()
                await asyncio.sleep(_STATS_INTERVAL_S)

        task = loop.create_task(publish_stats())
        stats[S_READY] = 1
        await client.run()
        task.cancel()
        _copy_stats(client.stats, sink, stats)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        if recorder is not None:
            recorder.close()
        ring.close()


def _copy_stats(c: ClientStats, sink: RingSink, stats) -> None:
    stats[S_FRAMES], stats[S_BYTES], stats[S_CONNECTS], stats[S_DISCONNECTS] = c.frames, c.bytes, c.connects, c.disconnects
    stats[S_STALLS], stats[S_SNAPSHOTS], stats[S_SNAPSHOT_ERRORS] = c.stalls, c.snapshots, c.snapshot_errors
    stats[S_DROPPED] = sink.dropped


class NetworkProcess:
    """The feed's side: the ring, the child process, its counters; restarts a child that died."""

    def __init__(self, subscriptions: list[Subscription], *, heartbeat_timeout_s: float = 10.0,
                 backoff_initial_s: float = 0.2, record_dir: str | None = None, capacity: int = 1 << 15):
        from hftshm.transport.ring import Ring

        # validates the subscriptions and timings here, in the feed, where a config error belongs
        BinanceStreamClient(subscriptions, None, heartbeat_timeout_s=heartbeat_timeout_s,
                            backoff_initial_s=backoff_initial_s)
        self.subscriptions = subscriptions
        self.markets = [s.market.name for s in subscriptions]
        self._client_kw = {"heartbeat_timeout_s": heartbeat_timeout_s, "backoff_initial_s": backoff_initial_s}
        self.record_dir = record_dir
        self._mp = multiprocessing.get_context("spawn")  # the feed's process has threads and numba state
        self.ring = Ring.create(f"hftshm_{os.getpid()}_{uuid.uuid4().hex[:6]}_live-frames", "live_frame", capacity,
                                "block")
        self.ring.register_consumer()
        self._stats = self._mp.Array("q", N_STATS, lock=False)
        self._base = np.zeros(N_STATS, np.int64)  # counters of children that died, carried on
        self._process = None
        self._conn = None
        self._stopping = False
        self.restarts = 0  # children found dead and started again
        self.sequence_errors = 0  # records read whose seq was not their ring position
        self._buf = np.zeros(_BUFFER_BYTES, np.uint8)
        self._meta = np.zeros((1 << 14, fnb.N_META), np.int64)
        self._counts = np.zeros(4, np.int64)
        self._pending_markers: list = []

    # ------------------------------------------------------------------ child lifecycle
    def start(self) -> None:
        ours, theirs = self._mp.Pipe(duplex=False)  # ours: the child's reading end
        self._conn = theirs
        self._stats[S_READY] = 0
        self._process = self._mp.Process(
            target=_network_main, name="hftshm-binance-net",
            args=(self.ring.name, self.subscriptions, self._client_kw, self.record_dir, ours, self._stats),
            daemon=True)
        self._process.start()
        ours.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self._stats[S_READY]:
            if time.monotonic() > deadline or not self.alive():
                return False
            time.sleep(0.01)
        return True

    def check(self) -> bool:
        """True if the child had died: reported, its markets marked disconnected, a new child started."""
        if self._stopping or self._process is None or self._process.is_alive():
            return False
        code = self._process.exitcode
        self.restarts += 1
        self._base += np.frombuffer(self._stats, np.int64)
        self._base[S_READY] = 0
        log.warning("live feed: the network process (pid %s) died (exit code %s); starting it again "
                    "(restart %d)", self._process.pid, code, self.restarts)
        now = time.time_ns()
        self._pending_markers = [(now, None, m) for m in self.markets]  # after what is still in the ring
        if self._conn is not None:
            self._conn.close()
        self.start()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        process, self._process = self._process, None
        if process is not None and process.pid is not None:  # (a start that failed has no pid)
            try:
                self._conn.send("stop")
            except (OSError, ValueError):
                pass
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(timeout)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.ring is not None:
            self.ring.close()
            self.ring.unlink()
            self.ring = None

    def request_snapshot(self, market: str, symbol: str) -> None:
        if self._conn is not None and not self._stopping:
            try:
                self._conn.send((market, symbol.upper()))
            except (OSError, ValueError):  # the child just died: check() restarts it (it snapshots anew)
                pass

    # ------------------------------------------------------------------ frames
    def waiting(self) -> int:
        return self.ring.occupancy() if self.ring is not None else 0

    def take(self, max_frames: int) -> list:
        """Up to ``max_frames`` whole frames as ``(receive ns, bytes | None, market)``, oldest first."""
        ctrl = self.ring.ctrl
        if not self.ring.has_records():
            if self._pending_markers:  # a dead child's disconnects, once the ring is drained
                markers, self._pending_markers = self._pending_markers, []
                return markers
            return []
        meta = self._meta
        if len(meta) < max_frames:
            self._meta = meta = np.zeros((max_frames, fnb.N_META), np.int64)
        counts = self._counts
        n = fnb.read_frames(ctrl, self.ring.records, max_frames, self._buf, meta, counts)
        if counts[2]:
            self.sequence_errors += int(counts[2])
            log.error("live feed: %d frame ring records out of sequence (skipped)", int(counts[2]))
        if n == 0:
            if counts[3]:  # a frame larger than the buffer: grow it, read again next step
                self._buf = np.zeros(2 * int(counts[3]), np.uint8)
            return []
        data = self._buf[:counts[1]].tobytes()
        names = self.markets
        disconnect = _DISCONNECT
        return [(ns, None if kind == disconnect else data[start:stop], names[market])
                for start, stop, ns, market, kind in meta[:n].tolist()]

    # ------------------------------------------------------------------ counters
    @property
    def dropped(self) -> int:
        return int(self._base[S_DROPPED] + self._stats[S_DROPPED])

    @property
    def stats(self) -> ClientStats:
        s = self._base + np.frombuffer(self._stats, np.int64)
        return ClientStats(frames=int(s[S_FRAMES]), bytes=int(s[S_BYTES]), connects=int(s[S_CONNECTS]),
                           disconnects=int(s[S_DISCONNECTS]), stalls=int(s[S_STALLS]),
                           snapshots=int(s[S_SNAPSHOTS]), snapshot_errors=int(s[S_SNAPSHOT_ERRORS]))


def warm_up_kernels() -> None:
    """Compile (or load from numba's cache) both ring kernels on a private ring, and the client's
    frame splitter."""
    from hftshm.feed import live_ws_nb
    from hftshm.transport.ring import Ring

    live_ws_nb.warm_up()

    ring = Ring.private("live_frame", 8)
    for payload in (b"x" * 600, b""):
        fnb.write_frame(ring.ctrl, ring.records, np.frombuffer(payload, np.uint8), 1, 0, _FRAME)
    fnb.read_frames(ring.ctrl, ring.records, 4, np.zeros(1024, np.uint8), np.zeros((4, fnb.N_META), np.int64),
                    np.zeros(4, np.int64))
