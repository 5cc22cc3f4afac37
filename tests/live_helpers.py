"""Helpers of the live-data tests: record from the fake Binance in-process, and rebuild books from
imported tick CSVs to compare a recording with the original at every update id."""

from __future__ import annotations

import csv
import gzip
import time
from pathlib import Path

from hftshm.feed.binance import import_files
from hftshm.feed.live_client import BinanceStreamClient, Subscription, market_for
from hftshm.feed.live_record import Recorder

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "binance_usdm_btcusdt_20240808.gz"


def truncated_original(tmp: Path, frames_after_snapshot: int, source: Path = SHIPPED) -> Path:
    """The shipped recording up to its snapshot and ``frames_after_snapshot`` frames after it."""
    out = tmp / "original.gz"
    with gzip.open(source, "rt") as src, gzip.open(out, "wt") as dst:
        after = -1
        for line in src:
            if after < 0 and '"lastUpdateId"' in line[:60]:
                after = 0
            elif after >= 0:
                after += 1
            dst.write(line)
            if after >= frames_after_snapshot:
                break
    return out


def record_from(fake, directory: Path, *, market: str = "usdm", heartbeat_timeout_s: float = 5.0,
                settle_s: float = 10.0):
    """Record everything the fake serves (until its timeline ends and every sent frame arrived)."""
    sub = Subscription(market_for(market, fake.ws_url, fake.rest_url(market)), ((fake.symbol or "BTCUSDT").upper(),))
    recorder = Recorder(directory, [sub])
    client = BinanceStreamClient([sub], recorder, heartbeat_timeout_s=heartbeat_timeout_s, backoff_initial_s=0.05)
    recorder.client = client
    client.start()
    try:
        assert fake.done.wait(120), "the fake's timeline did not finish"
        deadline = time.monotonic() + settle_s
        while client.stats.frames < fake.sent and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # a snapshot answer still on its way
    finally:
        client.stop()
    return recorder.close(), client.stats


def import_csv(recording: Path, tmp: Path):
    out = tmp / (recording.name + ".csv")
    summary = import_files([recording], out)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return summary, rows


def books_by_update_id(rows, levels: int = 10) -> dict[int, tuple]:
    """Top ``levels`` of the book after every depth message and snapshot, by update id; ids where the
    book is invalid (after a clear, before the next snapshot) are absent."""
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    valid = False
    out: dict[int, tuple] = {}
    last_snapshot = None

    def top():
        b = sorted(bids.items(), key=lambda kv: -float(kv[0]))[:levels]
        a = sorted(asks.items(), key=lambda kv: float(kv[0]))[:levels]
        return tuple((float(p), float(q)) for p, q in b), tuple((float(p), float(q)) for p, q in a)

    pending_id = None
    for row in rows:
        kind = row["kind"]
        if kind not in ("depth", "snapshot", "clear"):
            continue
        uid = int(row["update_id"])
        if pending_id is not None and (uid != pending_id or kind == "clear"):
            if valid:
                out[pending_id] = top()
            pending_id = None
        if kind == "clear":
            valid = False
            bids.clear()
            asks.clear()
            continue
        if kind == "snapshot" and last_snapshot != (uid, row["local_ts_ns"]):
            last_snapshot = (uid, row["local_ts_ns"])
            bids.clear()
            asks.clear()
            valid = True
        side = bids if row["side"] == "buy" else asks
        if float(row["qty"]) == 0.0:
            side.pop(row["price"], None)
        else:
            side[row["price"]] = row["qty"]
        pending_id = uid
    if pending_id is not None and valid:
        out[pending_id] = top()
    return out


def without_local_ts(rows, kind: str) -> list[tuple]:
    return [(r["exch_ts_ns"], r["symbol"], r["side"], r["price"], r["qty"], r["update_id"])
            for r in rows if r["kind"] == kind]


def shipped_frames(n: int) -> list:
    """The shipped recording's first ``n`` lines as the live client queues them: (receive ns, frame
    bytes, "usdm"), the REST snapshot wrapped as the client wraps it."""
    from hftshm.feed.live_record import wrap_snapshot

    frames = []
    with gzip.open(SHIPPED, "rb") as handle:
        for _, line in zip(range(n), handle):
            ts, _, payload = line.rstrip(b"\n").partition(b" ")
            if b'"lastUpdateId"' in payload[:40]:
                payload = wrap_snapshot("BTCUSDT", payload)
            frames.append((int(ts), payload, "usdm"))
    return frames
