"""``hftshm bench feed``: cached replay -> L2 book -> rings at speed 0, memory over a long replay, import speed.

Results:

* ``feed``: events per second from the memory-mapped cache through the books into a ``market_event``
  ring and a ``book_snapshot`` ring (shared memory), best of ``--repeats`` whole-day runs. The rings
  are drained in the same thread after each batch (poll + release, no copy), so the figure is the
  feed's own cost. Percentiles: per event, publish time minus the time its batch was staged.
* ``feed-20x``: the same over a cache holding the day 20 times (timestamps shifted), built in a
  temporary directory; its peak RSS against the single day's shows whether memory stays flat.
* ``import``: ``hftshm data import`` rows per second, on a Binance-format recording rebuilt from the
  shipped CSV (or ``--recording``: a real collector file).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

TARGET_EVENTS_PER_S = 2e6


def register(bench_app: typer.Typer) -> None:
    bench_app.command("feed")(feed_command)


def feed_command(
    data: Path = typer.Option(Path("data/btcusdt_20240808.csv.gz"), "--data", help="tick CSV to replay"),
    repeats: int = typer.Option(5, "--repeats", min=1, help="whole-day runs (best is reported)"),
    long_factor: int = typer.Option(20, "--long-factor", min=2, help="how many days the long replay holds"),
    recording: Path = typer.Option(None, "--recording", help="Binance collector recording for the import figure"),
    json_path: Path = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """Replay events/s at speed 0 (target >= 2M/s), RSS of a 1x and 20x replay, import rows/s."""
    import tempfile

    from hftshm.bench.report import emit
    from hftshm.feed import cache as event_cache
    from hftshm.feed.config import FeedConfig
    from hftshm.symbols import DEFAULT_SYMBOLS

    path = FeedConfig(data=(str(data),)).data_paths()[0]
    day = event_cache.load(path, DEFAULT_SYMBOLS)
    results = [_replay_result("feed", lambda: [event_cache.open_cache(day.path)], repeats)]
    with tempfile.TemporaryDirectory(prefix="hftshm-bench-feed-") as tmp:
        long_path = _repeated_cache(day, Path(tmp) / f"day-x{long_factor}.events.bin", long_factor)
        results.append(_replay_result(f"feed-{long_factor}x", lambda: [event_cache.open_cache(long_path)], 1))
        results.append(_import_result(day, recording, Path(tmp)))
    one, many = results[0], results[1]
    notes = [
        f"{path.name}: {day.count:,} events a day; target >= {TARGET_EVENTS_PER_S / 1e6:.0f}M events/s: "
        f"{one['ops_per_s'] / 1e6:.2f}M/s ({'meets' if one['ops_per_s'] >= TARGET_EVENTS_PER_S else 'below'})",
        f"RSS growth during the replay: 1 day {one['rss_growth_mb']:.1f} MB, {long_factor} days "
        f"{many['rss_growth_mb']:.1f} MB (cache {many['cache_mb']:.0f} MB, memory-mapped, passed pages released)",
        "feed percentiles: per event, publish minus staging time of its batch (speed 0)",
        "shared machine: figures vary with other load",
    ]
    emit("feed: cached replay -> book -> rings (speed 0)", results, json_path, notes)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _replay_result(name: str, open_sources, repeats: int) -> dict:
    import os
    import time
    import uuid

    from hftshm.feed.replay import Replayer
    from hftshm.metrics.histogram import summarize
    from hftshm.symbols import DEFAULT_SYMBOLS
    from hftshm.transport.ring import Ring

    best = None
    prefix = f"hftshm_{os.getpid()}_bench-feed-{uuid.uuid4().hex[:8]}-"  # the platform's naming: pid first
    for _ in range(repeats):
        md = Ring.create(prefix + "md", "market_event", 1 << 16)
        bk = Ring.create(prefix + "bk", "book_snapshot", 1 << 14)
        try:
            sources = open_sources()
            replayer = Replayer(sources, DEFAULT_SYMBOLS, speed=0.0)
            replayer.add_output(md)
            replayer.add_output(bk)
            rss_start = rss_peak = _rss_mb()
            steps = 0
            started = time.perf_counter()
            while not replayer.done:
                replayer.step()
                md.poll(1 << 16)
                md.release()
                bk.poll(1 << 14)
                bk.release()
                steps += 1
                if steps & 63 == 0:
                    rss_peak = max(rss_peak, _rss_mb())
            elapsed = time.perf_counter() - started
            rss_peak = max(rss_peak, _rss_mb())
            figures = summarize(replayer.hist_recv_to_publish)
            row = {
                "name": name,
                "ops_per_s": replayer.events_published / elapsed,
                "p50_ns": figures.p50_ns,
                "p99_ns": figures.p99_ns,
                "p999_ns": figures.p999_ns,
                "events": replayer.events_published,
                "snapshots": replayer.snapshots_published,
                "rss_start_mb": rss_start,
                "rss_peak_mb": rss_peak,
                "rss_growth_mb": rss_peak - rss_start,
                "cache_mb": sum(s.count for s in sources) * 64 / 2**20,
            }
            replayer.close()
        finally:
            for ring in (md, bk):
                ring.close()
                ring.unlink()
        if best is None or row["ops_per_s"] > best["ops_per_s"]:
            best = row
    return best


def _repeated_cache(day, out: Path, factor: int) -> Path:
    """A cache file holding ``day`` ``factor`` times, each copy shifted to follow the previous one."""
    import numpy as np

    from hftshm.feed.cache import HEADER_BYTES, _encode_header

    events = np.asarray(day.events)
    span = int(events["exch_ts_ns"].max() - events["exch_ts_ns"].min()) + 1_000_000
    header = dict(day.header, count=len(events) * factor)
    with open(out, "wb") as handle:
        handle.write(_encode_header(json.loads(json.dumps(header))))
        block = events.copy()
        for k in range(factor):
            block["exch_ts_ns"] = events["exch_ts_ns"] + k * span
            block["local_ts_ns"] = events["local_ts_ns"] + k * span
            block["seq"] = np.arange(k * len(events), (k + 1) * len(events))
            handle.write(block.tobytes())
    assert out.stat().st_size == HEADER_BYTES + len(events) * factor * 64
    return out


def _import_result(day, recording: Path | None, tmp: Path) -> dict:
    from hftshm.feed.binance import import_files

    source = recording if recording is not None else _recording_from_events(day, tmp / "rebuilt.recording.gz")
    summary = import_files([source], tmp / "imported.csv.gz")
    return {"name": "import", "ops_per_s": summary.rows_per_s, "p50_ns": float("nan"), "p99_ns": float("nan"),
            "p999_ns": float("nan"), "events": summary.rows, "lines": summary.lines, "elapsed_s": summary.elapsed_s,
            "cpu_s": summary.cpu_s, "cpu_rows_per_s": summary.rows / summary.cpu_s if summary.cpu_s else float("nan")}


def _recording_from_events(day, out: Path) -> Path:
    """A Binance collector-format recording (combined streams + one REST snapshot) rebuilt from events."""
    import gzip

    import numpy as np

    from hftshm.book.book import DecimalStep
    from hftshm.codes import EventFlag, EventKind, Side

    symbols = {sid: (name, DecimalStep.of(tick), DecimalStep.of(lot)) for name, sid, tick, lot in day.header["symbols"]}
    events = np.asarray(day.events)
    ends = np.flatnonzero(events["flags"] & EventFlag.LAST_IN_MESSAGE) + 1
    prev_u = 0
    lines = []
    start = 0
    for end in ends:
        msg = events[start:end]
        start = end
        head = msg[0]
        name, px_step, qty_step = symbols[int(head["symbol_id"])]
        stream = name.lower()
        ms = int(head["exch_ts_ns"]) // 1_000_000
        kind = int(head["kind"])

        def levels(side, recs=msg):
            sel = recs[recs["side"] == side]
            return [[px_step.format(round(p * px_step.den / px_step.num)),
                     qty_step.format(round(q * qty_step.den / qty_step.num))] for p, q in zip(sel["price"], sel["qty"])]

        u = int(head["update_id"])
        if kind == EventKind.CLEAR and len(msg) > 1:  # a snapshot: CLEAR then its levels
            body = {"lastUpdateId": u, "E": ms, "T": ms, "bids": levels(Side.BUY, msg[1:]),
                    "asks": levels(Side.SELL, msg[1:])}
            first_u = u
            prev_u = u
        elif kind == EventKind.DEPTH:
            first_u = prev_u if prev_u else u
            data = {"e": "depthUpdate", "E": ms, "T": ms, "s": name, "U": first_u, "u": u, "pu": prev_u,
                    "b": levels(Side.BUY), "a": levels(Side.SELL)}
            body = {"stream": f"{stream}@depth@0ms", "data": data}
            prev_u = u
        elif kind == EventKind.BBO and len(msg) == 2:
            bid, ask = levels(Side.BUY)[0], levels(Side.SELL)[0]
            data = {"e": "bookTicker", "u": u, "s": name, "b": bid[0], "B": bid[1], "a": ask[0], "A": ask[1], "T": ms,
                    "E": ms}
            body = {"stream": f"{stream}@bookTicker", "data": data}
        elif kind == EventKind.TRADE:
            p, q = levels(int(head["side"]))[0]
            data = {"e": "trade", "E": ms, "T": ms, "s": name, "t": u, "p": p, "q": q, "X": "MARKET",
                    "m": int(head["side"]) == Side.SELL}
            body = {"stream": f"{stream}@trade", "data": data}
        else:
            continue
        lines.append(f"{int(head['local_ts_ns'])} {json.dumps(body, separators=(',', ':'))}\n")
    with gzip.open(out, "wt", compresslevel=3) as handle:
        handle.writelines(lines)
    return out
