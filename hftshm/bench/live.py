"""``hftshm bench live``: the live feed (hftshm.feed.live) on the shipped recording served by the fake
Binance of the test suite (tests/fake_binance.py, in a process of its own, on 127.0.0.1).

Results:

``frames_per_cpu_s``: the same frames over this process's CPU time (both threads), steadier than wall
time on a shared machine; ``fake_cpu_s``: the fake's own CPU over a flooded run (it shares the CPUs).

* ``live-flood``: frames per second through the whole live path (websocket receive, batch decode
  with the import's synchronisation, books, publish into a ``market_event`` and a ``book_snapshot``
  ring) while the fake sends as fast as it can; the clock runs from the first frame received to
  the last one published (with the network on a thread, from the first frame's receive time: the
  network thread publishes). The fake writes ready-made frames, 256 per socket write (~2 us of CPU
  a frame), so the feed, not the fake, is what is measured; see ``live-decode`` for its ceiling.
* ``live-decode``: frames per second of the feed thread alone (decode + books + publish) on the
  same frames already received (queued before the clock starts): the feed's ceiling.
* ``live-decode-ring``: as ``live-decode``, the frames written into the frame ring first (as the
  network process does): the feed's side of the network process.
* ``-process`` entries: the same runs with the client in a process of its own writing into the frame
  ring (``[feed] live_network = "process"``), side by side with the default thread.
* ``live-paced``: the recorded pace (``--time-scale``, 1 = real time): receive-to-publish p50/p99/p99.9
  per event (the frame's receive stamp to the ring commit, same wall clock), the figure the target
  is about. ``exch_to_recv`` is not reported: the fake replays 2024 exchange times.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import typer

TARGET_FRAMES_PER_S = 100_000
TARGET_P50_NS = 50_000
_SPIN_S = 50e-6  # idle this long before parking (the platform's spin-park spins 2 ms: tunable per process)
_ROOT = Path(__file__).resolve().parents[2]
_FAKE = _ROOT / "tests" / "fake_binance.py"


def register(bench_app: typer.Typer) -> None:
    bench_app.command("live")(live_command)


def live_command(
    recording: Path = typer.Option(_ROOT / "data" / "binance_usdm_btcusdt_20240808.gz", "--recording",
                                   help="raw Binance recording the fake serves"),
    frames: int = typer.Option(60_000, "--frames", min=1000, help="frames of the flooded runs"),
    paced_s: float = typer.Option(20.0, "--paced-seconds", min=1.0, help="wall seconds of the paced run"),
    time_scale: float = typer.Option(1.0, "--time-scale", min=0.1, help="pace of the paced run (1 = recorded)"),
    batch_frames: int = typer.Option(2048, "--batch-frames", min=1, help="frames the feed takes per step"),
    json_path: Path = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """Live feed frames/s flooded (target >= 100k/s) and receive->publish at the recorded pace (p50 <= 50 us)."""
    from hftshm.bench.report import emit

    if not _FAKE.is_file():
        typer.secho(f"the fake Binance server ({_FAKE}) is part of the source tree's tests/: run this from a "
                    f"clone of the project", fg="red", err=True)
        raise typer.Exit(2)
    if not recording.is_file():
        typer.secho(f"no recording {recording}", fg="red", err=True)
        raise typer.Exit(2)
    results = [
        _flood(recording, frames, batch_frames, "thread"),
        _decode_only(recording, frames, batch_frames),
        _paced(recording, paced_s, time_scale, batch_frames, "thread"),
        _flood(recording, frames, batch_frames, "process"),
        _paced(recording, paced_s, time_scale, batch_frames, "process"),
        _decode_ring(recording, frames, batch_frames),
    ]
    flood, decode, paced, flood_process, paced_process, decode_ring = results
    load = os.getloadavg()
    notes = [
        f"target >= {TARGET_FRAMES_PER_S:,} frames/s: flooded {flood['ops_per_s']:,.0f}/s end to end "
        f"({flood['frames_per_cpu_s']:,.0f} per CPU-second of this process, both threads), "
        f"{decode['ops_per_s']:,.0f}/s decode+publish alone ({decode['frames_per_cpu_s']:,.0f} per CPU-second); "
        f"flooded: {'meets' if flood['ops_per_s'] >= TARGET_FRAMES_PER_S else 'below'} wall, "
        f"{'meets' if flood['frames_per_cpu_s'] >= TARGET_FRAMES_PER_S else 'below'} per CPU-second; "
        f"through the frame ring {decode_ring['ops_per_s']:,.0f}/s ({decode_ring['frames_per_cpu_s']:,.0f} per "
        f"CPU-second)",
        f"the fake's own CPU per frame flooded: {flood['fake_cpu_s'] / flood['frames'] * 1e6:.2f} us (thread run), "
        f"{flood_process['fake_cpu_s'] / flood_process['frames'] * 1e6:.2f} us (process run); the feed's process "
        f"{flood['cpu_s'] / flood['frames'] * 1e6:.2f} us (thread run: client, decode, books, publish)",
        f"target receive->publish p50 <= {TARGET_P50_NS / 1e3:.0f} us at the recorded pace: "
        f"{paced['p50_ns'] / 1e3:.1f} us ({'meets' if paced['p50_ns'] <= TARGET_P50_NS else 'below'})",
        f"network in its own process (live_network = \"process\") vs a thread of the feed's (default), side by "
        f"side: flooded {flood_process['ops_per_s']:,.0f} vs {flood['ops_per_s']:,.0f} frames/s wall, "
        f"{flood_process['feed_frames_per_cpu_s']:,.0f} vs {flood['feed_frames_per_cpu_s']:,.0f} per CPU-second of "
        f"the feed's process ({flood_process['frames_per_cpu_s']:,.0f} with the network process's CPU); paced p50 "
        f"{paced_process['p50_ns'] / 1e3:.1f} vs {paced['p50_ns'] / 1e3:.1f} us, p99 "
        f"{paced_process['p99_ns'] / 1e3:.1f} vs {paced['p99_ns'] / 1e3:.1f} us; the feed's own work per step (p50) "
        f"{_us(paced_process['step_p50_ns'])} vs {_us(paced['step_p50_ns'])} us wall, "
        f"{_us(paced_process['step_cpu_p50_ns'])} vs {_us(paced['step_cpu_p50_ns'])} us CPU: the rest of "
        f"receive->publish is the hand-off and the scheduler",
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; the fake runs in its own "
        f"process on 127.0.0.1",
    ]
    emit("live: fake Binance -> websocket -> decode -> books -> rings", results, json_path, notes)


def _us(ns) -> str:
    return "-" if ns is None else f"{ns / 1e3:.1f}"


# --------------------------------------------------------------------- fake server process


class _FakeProcess:
    def __init__(self, recording: Path, time_scale: float, max_frames: int | None):
        args = [sys.executable, str(_FAKE), str(recording), "--time-scale", str(time_scale)]
        if max_frames is not None:
            args += ["--max-frames", str(max_frames)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=_ROOT)
        urls = {}
        while len(urls) < 2:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the fake Binance server did not start")
            key, _, value = line.strip().partition(" ")
            urls[key] = value
        self.ws_url, self.rest_url = urls["ws_url"], urls["rest_url"]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _feed(ws_url: str, rest_url: str, batch_frames: int, network: str = "thread"):
    from hftshm.feed.live import LiveFeed
    from hftshm.feed.live_client import Subscription, market_for
    from hftshm.symbols import DEFAULT_SYMBOLS

    sub = Subscription(market_for("usdm", ws_url, rest_url), ("BTCUSDT",))
    return LiveFeed([sub], DEFAULT_SYMBOLS, batch_frames=batch_frames, heartbeat_timeout_s=30.0, network=network)


class _Rings:
    def __init__(self):
        import uuid

        from hftshm.transport.ring import Ring

        prefix = f"hftshm_{os.getpid()}_bench-live-{uuid.uuid4().hex[:8]}-"
        self.md = Ring.create(prefix + "md", "market_event", 1 << 16)
        self.bk = Ring.create(prefix + "bk", "book_snapshot", 1 << 14)

    def drain(self) -> None:
        for ring in (self.md, self.bk):
            ring.poll(1 << 16)
            ring.release()

    def close(self) -> None:
        for ring in (self.md, self.bk):
            ring.close()
            ring.unlink()


def _timed_steps(feed) -> list:
    """(wall ns, thread CPU ns) of every step that did something, on whichever thread ran it (the
    network thread steps the feed itself in the thread design), and of every socket read the feed
    took in its one call (``take_read``: the steady state's path, which no step runs)."""
    steps: list = []
    inner = feed._step

    def timed() -> int:
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        n = inner()
        if n:
            steps.append((time.perf_counter_ns() - t0, time.thread_time_ns() - c0))
        return n

    feed._step = timed
    queue = feed.queue
    if queue is not None and queue.on_read is not None:
        take_read = queue.on_read

        def timed_read(market, buf, recv_ns):
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            got = take_read(market, buf, recv_ns)
            if got is not None:
                steps.append((time.perf_counter_ns() - t0, time.thread_time_ns() - c0))
            return got

        queue.on_read = timed_read
    return steps


def _run(feed, rings: _Rings, until, timeout_s: float) -> tuple[float, float, float]:
    """Step and drain until ``until()``; returns (wall from the first frame, cpu seconds, wall total).
    Idle: with a frame ring, spin briefly then park on its doorbell (as the platform's spin-park wait
    strategy does with the worker's ``wake_rings``); with the network thread busy-polling (``poll =
    "spin"``), wait for the work it leaves (``idle_wait``, as the live worker does); else yield."""
    from hftshm.transport.doorbell import Parker

    parker = Parker(feed.wake_rings, 0.005) if feed.wake_rings else None
    waits_idle = feed.network == "thread" and feed.poll == "spin"
    idle_since = None
    first = None
    cpu0 = time.process_time()
    started = time.perf_counter()
    deadline = started + timeout_s
    while not until():
        n = feed.step()
        rings.drain()
        if n and first is None:
            first = time.perf_counter()
        if n:
            idle_since = None
        else:
            now = time.perf_counter()
            if now > deadline:
                raise TimeoutError(f"the live feed stalled: {feed.stats()}")
            if idle_since is None:
                idle_since = now
            if parker is not None and now - idle_since > _SPIN_S:
                parker.park()
            elif waits_idle:  # as LiveFeedWorker: the spinning network thread works, this one waits
                feed.idle_wait(0.001)
            else:
                time.sleep(0)
    end = time.perf_counter()
    return end - (first or started), time.process_time() - cpu0, end - started


def _net_cpu(feed) -> float:
    """CPU seconds of the feed's network process so far (0 when the network runs in a thread)."""
    import psutil

    if feed.net is None or feed.net.pid is None:
        return 0.0
    try:
        times = psutil.Process(feed.net.pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _start(feed) -> None:
    feed.start()
    if feed.net is not None and not feed.net.wait_ready(120):
        raise RuntimeError("the live feed's network process did not start")


def _flood(recording: Path, frames: int, batch_frames: int, network: str) -> dict:
    fake = _FakeProcess(recording, 0.0, frames)
    rings = _Rings()
    feed = _feed(fake.ws_url, fake.rest_url, batch_frames, network)
    try:
        feed.add_output(rings.md)
        feed.add_output(rings.bk)
        feed.warm_up()
        _start(feed)
        net0 = _net_cpu(feed)
        fake0 = _cpu_of(fake.process.pid)
        # every frame decoded (and the snapshot), or dropped (a full frame ring: counted, reported)
        done = lambda: feed.decoder.stats.frames + feed.frames_dropped >= frames + 1 and not feed.pending  # noqa: E731
        if network == "thread":
            # the network thread decodes and publishes every read itself: this thread only drains the
            # rings, every millisecond (a spinning drain would be counted as the feed's CPU)
            wall, cpu = _drain_until(feed, rings, done, 120)
            wall = (time.time_ns() - feed.client.stats.first_frame_ns) / 1e9  # from its first frame's receipt
        else:
            wall, cpu, _ = _run(feed, rings, done, 120)
        net_cpu = _net_cpu(feed) - net0
        fake_cpu = _cpu_of(fake.process.pid) - fake0
    finally:
        feed.close()
        rings.close()
        fake.close()
    name = "live-flood" if network == "thread" else "live-flood-process"
    return {"name": name, "ops_per_s": frames / wall, "frames_per_cpu_s": frames / (cpu + net_cpu),
            "feed_frames_per_cpu_s": frames / cpu, "wall_s": wall, "cpu_s": cpu, "net_cpu_s": net_cpu,
            "fake_cpu_s": fake_cpu, "frames": frames, "events": feed.events_published, "network": network,
            "dropped": feed.frames_dropped}


def _drain_until(feed, rings: _Rings, until, timeout_s: float) -> tuple[float, float]:
    """Drain the rings every millisecond until ``until()`` (the network thread steps the feed; the
    feed's own thread would only retry a batch a full ring held back: done here too). Returns (wall,
    CPU seconds of this process)."""
    cpu0 = time.process_time()
    started = time.perf_counter()
    while not until():
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"the live feed stalled: {feed.stats()}")
        time.sleep(0.001)
        rings.drain()
        if feed.pending:
            feed.step()
    return time.perf_counter() - started, time.process_time() - cpu0


def _cpu_of(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _decode_only(recording: Path, frames: int, batch_frames: int) -> dict:
    """The same frames, queued before the clock starts (one snapshot first, as the client would)."""
    import gzip

    from hftshm.feed.live_record import wrap_snapshot

    rings = _Rings()
    feed = _feed("ws://127.0.0.1:9/stream", "http://127.0.0.1:9/fapi/v1/depth", batch_frames)
    try:
        feed.add_output(rings.md)
        feed.add_output(rings.bk)
        feed.warm_up()
        queued = feed.queue.items
        with gzip.open(recording, "rb") as handle:
            for line in handle:
                ts, _, payload = line.rstrip(b"\n").partition(b" ")
                if b'"lastUpdateId"' in payload[:40]:
                    payload = wrap_snapshot("BTCUSDT", payload)
                queued.append((int(ts), payload, "usdm"))
                if len(queued) >= frames:
                    break
        n = len(queued)
        wall, cpu, _ = _run(feed, rings, lambda: not queued and not feed.pending, 120)
    finally:
        feed.close()
        rings.close()
    return {"name": "live-decode", "ops_per_s": n / wall, "frames_per_cpu_s": n / cpu, "wall_s": wall, "cpu_s": cpu,
            "frames": n, "events": feed.events_published}


def _decode_ring(recording: Path, frames: int, batch_frames: int) -> dict:
    """The feed's side of the network process: the same frames written into the frame ring (as the
    network process does, ``RingSink``), then taken, decoded and published; only the taking is timed
    (the ring holds fewer frames than the run: filled and emptied in turns)."""
    import gzip

    from hftshm.feed.live_net import RingSink

    rings = _Rings()
    feed = _feed("ws://127.0.0.1:9/stream", "http://127.0.0.1:9/fapi/v1/depth", batch_frames, "process")
    wall = cpu = 0.0
    n = 0
    try:
        feed.add_output(rings.md)
        feed.add_output(rings.bk)
        feed.warm_up()
        sink = RingSink(feed.net.ring, ["usdm"])
        with gzip.open(recording, "rb") as handle:
            lines = [line.rstrip(b"\n").partition(b" ") for _, line in zip(range(frames), handle)]
        k = 0
        while k < len(lines):
            while k < len(lines) and feed.net.ring.occupancy() < feed.net.ring.capacity - 64:
                ts, _, payload = lines[k]
                if b'"lastUpdateId"' in payload[:40]:
                    sink.on_snapshot("usdm", "BTCUSDT", int(ts), payload)
                else:
                    sink.on_frame("usdm", int(ts), payload)
                k += 1
            w, c, _ = _run(feed, rings, lambda: feed.frames_waiting == 0 and not feed.pending, 120)
            wall += w
            cpu += c
        n = feed.decoder.stats.frames
    finally:
        feed.close()
        rings.close()
    return {"name": "live-decode-ring", "ops_per_s": n / wall, "frames_per_cpu_s": n / cpu, "wall_s": wall,
            "cpu_s": cpu, "frames": n, "events": feed.events_published, "network": "process"}


def _paced(recording: Path, seconds: float, time_scale: float, batch_frames: int, network: str) -> dict:
    from hftshm.metrics.histogram import summarize

    fake = _FakeProcess(recording, time_scale, None)
    rings = _Rings()
    feed = _feed(fake.ws_url, fake.rest_url, batch_frames, network)
    try:
        feed.add_output(rings.md)
        feed.add_output(rings.bk)
        feed.warm_up()
        _start(feed)
        if network == "thread":
            sys.setswitchinterval(50e-6)  # as LiveFeedWorker: the network thread shares the GIL
        stop_at = time.perf_counter() + seconds
        net0 = _net_cpu(feed)
        steps = _timed_steps(feed)  # each step that published: the feed's own work
        wall, cpu, total = _run(feed, rings, lambda: time.perf_counter() >= stop_at, seconds + 60)
        net_cpu = _net_cpu(feed) - net0
    finally:
        sys.setswitchinterval(0.005)
        feed.close()
        rings.close()
        fake.close()
    figures = summarize(feed.hist_recv_to_publish)
    frames = feed.decoder.stats.frames
    name = "live-paced" if network == "thread" else "live-paced-process"
    return {"name": name, "ops_per_s": frames / total, "p50_ns": figures.p50_ns, "p99_ns": figures.p99_ns,
            "p999_ns": figures.p999_ns, "wall_s": total, "cpu_s": cpu, "net_cpu_s": net_cpu, "frames": frames,
            "events": feed.events_published, "time_scale": time_scale, "network": network,
            "step_p50_ns": float(np.median([w for w, _ in steps])) if steps else None,
            "step_cpu_p50_ns": float(np.median([c for _, c in steps])) if steps else None}
