"""``hftshm record``: Binance streams -> raw recordings that ``hftshm data import`` reads.

Files: ``<dir>/binance_<market>_<symbol>_<YYYYMMDD>.gz`` (UTC day of the receive time), one line per
frame, ``<local receive ns> <frame JSON>``, the REST snapshot as its bare JSON body (as the shipped
recordings have it). A file is rotated at midnight UTC and when it passes ``rotate_bytes``
(``..._<YYYYMMDD>.1.gz``, ``.2.gz``, ...); every new file starts with a fresh snapshot request, so each
file imports on its own. Frames whose symbol cannot be read (malformed) go to the market's first
symbol's file: the import counts and reports them, as it would have at the source.

Gaps are found by the same synchronisation code the import runs (``BinanceImporter``, rows thrown
away): every gap is logged and counted, and a fresh snapshot is requested; so is one when the
snapshot turned out older than the buffered diffs. Everything runs on the client's loop thread.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hftshm.feed.binance import BinanceImporter
from hftshm.feed.live_client import BinanceStreamClient, Subscription, frame_symbol

log = logging.getLogger("hftshm.feed.record")

NS_PER_DAY = 86_400 * 1_000_000_000


def wrap_snapshot(symbol: str, body: bytes) -> bytes:
    """A snapshot body as a combined-stream frame naming its symbol (for the synchroniser, which then
    needs no guess which symbol a bare snapshot belongs to)."""
    return b'{"stream":"' + symbol.lower().encode() + b'@depthSnapshot","data":' + body.strip() + b"}"


class RotatingRecording:
    """One market+symbol's gzip recording, rotated by UTC day and by size."""

    def __init__(self, directory: Path, market: str, symbol: str, rotate_bytes: int, compresslevel: int = 6):
        self.directory = directory
        self.symbol = symbol.upper()
        self.stem = f"binance_{market}_{symbol.lower()}"
        self.rotate_bytes = rotate_bytes
        self.compresslevel = compresslevel
        self.paths: list[Path] = []
        self._raw = None
        self._gz = None
        self._day = -1
        self.lines = 0

    def _open(self, day: int) -> None:
        self.close()
        date = time.strftime("%Y%m%d", time.gmtime(day * 86_400))
        path = self.directory / f"{self.stem}_{date}.gz"
        part = 0
        while path.exists():  # never overwrite: an earlier run or an earlier part of today
            part += 1
            path = self.directory / f"{self.stem}_{date}.{part}.gz"
        self._raw = open(path, "wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=self.compresslevel)
        self._day = day
        self.paths.append(path)

    def needs_rotation(self, recv_ns: int) -> bool:
        return (self._gz is None or recv_ns // NS_PER_DAY != self._day
                or (self.rotate_bytes > 0 and self._raw.tell() >= self.rotate_bytes))

    def rotate(self, recv_ns: int) -> None:
        self._open(recv_ns // NS_PER_DAY)

    def write(self, recv_ns: int, payload: bytes) -> None:
        self._gz.write(b"%d " % recv_ns + payload.rstrip(b"\r\n") + b"\n")
        self.lines += 1

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.paths if p.exists())

    def flush(self) -> None:
        if self._gz is not None:
            self._gz.flush()

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
            self._raw.close()
            self._gz = self._raw = None


@dataclass
class RecordReport:
    frames: int = 0
    snapshots: int = 0
    gaps: list = field(default_factory=list)  # hftshm.feed.binance.Gap
    interruptions: list = field(default_factory=list)  # (market, local ns, reason)
    stale_snapshots: int = 0  # snapshots older than the buffered diffs (another was fetched)
    rejects: Counter = field(default_factory=Counter)
    ignored_streams: Counter = field(default_factory=Counter)
    files: list = field(default_factory=list)


class Recorder:
    """The client's sink: writes every frame and snapshot, watches the sequence, asks for snapshots."""

    def __init__(self, directory: str | Path, subscriptions: list[Subscription], *, rotate_bytes: int = 0,
                 compresslevel: int = 6, watch_sequence: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.subscriptions = subscriptions
        self.files: dict[tuple[str, bytes], RotatingRecording] = {}
        self.first: dict[str, RotatingRecording] = {}
        for sub in subscriptions:
            for symbol in sub.symbols:
                rec = RotatingRecording(self.directory, sub.market.name, symbol, rotate_bytes, compresslevel)
                self.files[(sub.market.name, symbol.lower().encode())] = rec
                self.first.setdefault(sub.market.name, rec)
        # gap detection: the importer's own synchronisation, its rows discarded
        self.sync = {sub.market.name: BinanceImporter(lambda text: None) for sub in subscriptions}
        self.report = RecordReport()
        # False when the caller synchronises the streams itself (the live feed's --record)
        self.watch_sequence = watch_sequence
        self.client: BinanceStreamClient | None = None
        self._line = Counter()

    # ------------------------------------------------------------------ sink
    def on_frame(self, market: str, recv_ns: int, frame: bytes) -> None:
        symbol = frame_symbol(frame)
        rec = self.files.get((market, symbol)) if symbol is not None else None
        if rec is None:
            rec = self.first[market]
        if rec.needs_rotation(recv_ns):
            self._rotate(market, rec, recv_ns)
        rec.write(recv_ns, frame)
        self.report.frames += 1
        self._check(market, recv_ns, frame, None)

    def on_snapshot(self, market: str, symbol: str, recv_ns: int, body: bytes) -> None:
        rec = self.files[(market, symbol.lower().encode())]
        if rec.needs_rotation(recv_ns):
            rec.rotate(recv_ns)
        rec.write(recv_ns, body)
        self.report.snapshots += 1
        self._check(market, recv_ns, wrap_snapshot(symbol, body), symbol)

    def on_connect(self, market: str, attempt: int) -> None:
        pass

    def on_disconnect(self, market: str, recv_ns: int, reason: str) -> None:
        self.report.interruptions.append((market, recv_ns, reason))
        for rec in self.files.values():
            rec.flush()

    # ------------------------------------------------------------------ sequence
    def _rotate(self, market: str, rec: RotatingRecording, recv_ns: int) -> None:
        first_file = rec._gz is None
        rec.rotate(recv_ns)
        if not first_file and self.client is not None:
            # a new file starts with its own snapshot, so it imports on its own
            self.client.request_snapshot(market, rec.symbol)

    def _check(self, market: str, recv_ns: int, frame: bytes, snapshot_symbol: str | None) -> None:
        if not self.watch_sequence:
            return
        importer = self.sync[market]
        summary = importer.summary
        gaps, stale = len(summary.gaps), summary.dropped["snapshot_older_than_buffered_diffs"]
        self._line[market] += 1
        importer.feed(recv_ns, frame.decode("utf-8", "replace"), market, self._line[market])
        importer._rows.clear()  # the rows are not wanted: only the synchronisation state
        for gap in summary.gaps[gaps:]:
            self.report.gaps.append(gap)
            log.warning("%s: %s; fetching a fresh snapshot", market, gap.describe())
            if self.client is not None:
                self.client.request_snapshot(market, gap.symbol)
        if snapshot_symbol and summary.dropped["snapshot_older_than_buffered_diffs"] > stale:
            self.report.stale_snapshots += 1
            log.warning("%s: the %s snapshot is older than the buffered diffs; fetching another", market,
                        snapshot_symbol)
            if self.client is not None:
                self.client.request_snapshot(market, snapshot_symbol)

    def close(self) -> RecordReport:
        for rec in self.files.values():
            rec.close()
            self.report.files.extend(rec.paths)
        for importer in self.sync.values():
            self.report.rejects.update(importer.summary.rejects)
            self.report.ignored_streams.update(importer.summary.ignored_streams)
        return self.report

    # ------------------------------------------------------------------ status
    def bytes_written(self) -> int:
        total = 0
        for rec in self.files.values():
            if rec._raw is not None:
                total += rec._raw.tell()
            total += sum(p.stat().st_size for p in rec.paths[:-1] if p.exists())
        return total
