"""Replay: cached events -> L2 books -> rings, at a speed knob, several files merged by exchange time.

    replayer = Replayer.from_files(["data/btcusdt_20240808.csv.gz"], symbols, speed=0.0)
    replayer.add_output(ring)          # market_event rings get events, book_snapshot rings get books
    while not replayer.done:
        replayer.step()                # one bounded batch; 0 when nothing is due or every ring is full

Speed: 1.0 replays in real time by exchange timestamps, N is N times faster, 0 as fast as possible.
Every ring gets every record (fan-out, one ring per consumer); a full ``block`` ring holds the batch
back until it has room, a full ``drop`` ring loses the records (counted in the ring's drops).
``publish_ts_ns`` is stamped with the monotonic clock (``time.perf_counter_ns``' clock) inside the
publish kernel, just before each ring's copy and commit (``replay_nb.publish_now``).

Latency histograms (``hftshm.metrics.histogram`` arrays):
- ``exch_to_recv``: local receive minus exchange time for depth and trade events, minus the smallest
  such difference in the source. The recording's clock is not the exchange's (the shipped day's ran
  1.27 s behind), so the raw difference is meaningless; above its minimum it is the latency in
  excess of the best case. ``clock_offset_ns`` reports the estimate itself.
- ``recv_to_publish``: when the feed published an event minus when it was due (paced) or staged (speed 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from numba import typed

from hftshm.book.book import DEFAULT_WINDOW_TICKS, BookSet
from hftshm.codes import EventFlag
from hftshm.feed import cache as event_cache
from hftshm.feed import replay_nb
from hftshm.metrics.histogram import new_histogram
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout

_RELEASE_EVERY_BYTES = 16 << 20  # give back mapped pages after this much progress


def load_events(source: str | Path, symbols: SymbolTable) -> np.ndarray:
    """All events of a tick CSV (or cache) as a read-only memory-mapped ``market_event`` array."""
    return event_cache.load_events(source, symbols)


@dataclass
class _Output:
    ring: object
    is_snapshot: bool
    drop: bool
    pos: int = 0  # staged records already written (or dropped) to this ring
    written: int = 0


class Replayer:
    def __init__(self, sources: Iterable[event_cache.EventCache], symbols: SymbolTable, *, speed: float = 0.0,
                 batch_events: int = 4096, book_levels: int = 10, window_ticks: int = DEFAULT_WINDOW_TICKS,
                 repeat: int = 1, hist_exch_to_recv: np.ndarray | None = None,
                 hist_recv_to_publish: np.ndarray | None = None):
        self.caches = list(sources)
        if not self.caches:
            raise ValueError("a replay needs at least one source")
        if speed < 0 or not np.isfinite(speed):
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
        if batch_events < 1:
            raise ValueError(f"batch_events must be >= 1, got {batch_events}")
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.symbols = symbols
        self.speed = float(speed)
        self.batch_events = int(batch_events)
        self.repeat = int(repeat)
        self.books = BookSet(symbols, window_ticks=window_ticks)
        width = load_layout("book_snapshot").dtype["bid_px"].shape[0]
        if not 1 <= book_levels <= width:
            raise ValueError(f"book_levels must be 1..{width} (book_snapshot holds {width}), got {book_levels}")
        self.book_levels = int(book_levels)
        self._sources = typed.List()
        for c in self.caches:
            self._sources.append(np.asarray(c.events))
        self._cursors = np.zeros(len(self.caches), np.int64)
        self._released = np.zeros(len(self.caches), np.int64)
        self._offsets = np.array([c.min_local_minus_exch_ns or 0 for c in self.caches], np.int64)
        self._rstate = np.zeros(replay_nb.N_REPLAY_STATE, np.int64)
        self._rstate[replay_nb.RS_OPEN_SOURCE] = -1
        self._stamp = np.zeros(1, np.int64)  # the last publish's clock reading (replay_nb.publish_now)
        self._staged = load_layout("market_event").zeros(self.batch_events)
        self._snaps = load_layout("book_snapshot").zeros(self.batch_events)
        self._scratch_px = np.zeros((1, 2, width), np.int64)
        self._scratch_qty = np.zeros((1, 2, width), np.int64)
        self.hist_exch_to_recv = new_histogram() if hist_exch_to_recv is None else hist_exch_to_recv
        self.hist_recv_to_publish = new_histogram() if hist_recv_to_publish is None else hist_recv_to_publish
        self.outputs: list[_Output] = []
        self._n_staged = 0
        self._n_snaps = 0
        self._staged_ns = 0
        self._latency_recorded = True
        self._pass = 0
        counts = [len(s) for s in self._sources]
        self.events_per_pass = int(sum(counts))
        starts = [int(s[0]["exch_ts_ns"]) for s in self._sources if len(s)]
        ends = [int(s[-1]["exch_ts_ns"]) for s in self._sources if len(s)]
        self.exch_start_ns = min(starts) if starts else 0
        # a repeated pass is shifted by the data's span so exchange time keeps moving forward
        self.pass_shift_ns = (max(ends) - self.exch_start_ns + 1_000_000) if ends else 0
        self._wall_start_ns = 0
        self.events_staged = 0
        self.events_published = 0
        self.snapshots_published = 0

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], symbols: SymbolTable, *, strict: bool = False,
                   rebuild: bool = False, **options) -> "Replayer":
        """Sources from tick CSVs (caches built or refreshed as needed) or ``*.events.bin`` caches."""
        caches = [event_cache.load(p, symbols, strict=strict, rebuild=rebuild) for p in paths]
        return cls(caches, symbols, **options)

    # ------------------------------------------------------------------ outputs
    def add_output(self, ring) -> None:
        """Publish to ``ring``: market_event rings get every event, book_snapshot rings every snapshot."""
        name = ring.layout.name
        if name not in ("market_event", "book_snapshot"):
            raise ValueError(f"ring {ring.name!r} holds {name} records; the feed publishes market_event and "
                             f"book_snapshot")
        output = _Output(ring, name == "book_snapshot", ring.backpressure == "drop")
        if output.is_snapshot:
            # books are committed before events: a consumer that sees a message's events can then
            # also see the book after it (a deterministic run relies on it)
            first_event = next((k for k, out in enumerate(self.outputs) if not out.is_snapshot), len(self.outputs))
            self.outputs.insert(first_event, output)
        else:
            self.outputs.append(output)

    # ------------------------------------------------------------------ progress
    @property
    def events_total(self) -> int:
        return self.events_per_pass * self.repeat

    @property
    def exhausted(self) -> bool:
        return self._pass >= self.repeat - 1 and all(
            int(c) >= len(s) for c, s in zip(self._cursors, self._sources)) and self._rstate[0] < 0

    @property
    def pending(self) -> bool:
        return any(out.pos < (self._n_snaps if out.is_snapshot else self._n_staged) for out in self.outputs)

    @property
    def done(self) -> bool:
        return self.exhausted and not self.pending

    @property
    def last_staged_exch_ts_ns(self) -> int | None:
        """Exchange time of the last event of the batch staged last (None before any)."""
        return int(self._staged["exch_ts_ns"][self._n_staged - 1]) if self._n_staged else None

    @property
    def clock_offset_ns(self) -> int | None:
        """Estimated local clock minus exchange clock (min over depth/trade events of local - exchange);
        negative when the recording machine's clock was behind. Per source: ``clock_offsets_ns``."""
        offsets = [c.min_local_minus_exch_ns for c in self.caches if c.min_local_minus_exch_ns is not None]
        return min(offsets) if offsets else None

    @property
    def clock_offsets_ns(self) -> list[int | None]:
        return [c.min_local_minus_exch_ns for c in self.caches]

    # ------------------------------------------------------------------ work
    def _limit(self, now_ns: int) -> int:
        if self.speed == 0.0:
            return np.iinfo(np.int64).max
        if self._wall_start_ns == 0:
            self._wall_start_ns = now_ns
        return self.exch_start_ns + int((now_ns - self._wall_start_ns) * self.speed)

    def next_due_ns(self) -> int | None:
        """Paced replay: the clock time (``time.perf_counter_ns``) at which the next event is due, so
        an idle feed can sleep until shortly before it instead of spinning through the gap. None when
        there is no gap to wait for: speed 0, records still to publish, a split message, the end of a
        pass, or the replay not started."""
        if self.speed == 0.0 or self._wall_start_ns == 0 or self.pending or self._rstate[replay_nb.RS_OPEN_SOURCE] >= 0:
            return None
        ts = int(replay_nb.next_exch_ts(self._sources, self._cursors, self._pass * self.pass_shift_ns))
        if ts == np.iinfo(np.int64).max:
            return None
        return self._wall_start_ns + int((ts - self.exch_start_ns) / self.speed)

    def _stage(self, now_ns: int, max_events: int | None = None, limit_exch_ts: int | None = None) -> int:
        if self.exhausted:
            return 0
        if all(int(c) >= len(s) for c, s in zip(self._cursors, self._sources)) and self._rstate[0] < 0:
            self._pass += 1  # next pass over the data
            self._cursors[:] = 0
            self._released[:] = 0
        self.books.reserve(self.batch_events)
        n, n_snaps = replay_nb.stage(
            self._sources, self._cursors, self._offsets, self._pass * self.pass_shift_ns,
            self._limit(now_ns) if limit_exch_ts is None else limit_exch_ts,
            max_events or self.batch_events, self._staged, self.events_staged, self._rstate, self.books.arrays,
            self.book_levels, self._snaps, self._scratch_px, self._scratch_qty, self.hist_exch_to_recv)
        self._n_staged, self._n_snaps = int(n), int(n_snaps)
        self._staged_ns = now_ns
        self._latency_recorded = False
        self.events_staged += self._n_staged
        if self.exhausted:
            flag = np.uint32(EventFlag.END_OF_DATA)
            if n:
                self._staged["flags"][n - 1] |= flag
            if n_snaps:
                self._snaps["flags"][n_snaps - 1] |= flag
        for out in self.outputs:
            out.pos = 0
        self._release_pages()
        return self._n_staged

    def _release_pages(self) -> None:
        for k, c in enumerate(self.caches):
            done = int(self._cursors[k])
            if (done - int(self._released[k])) * 64 >= _RELEASE_EVERY_BYTES or done >= c.count:
                c.release(done)
                self._released[k] = done

    def next_message_events(self) -> int:
        """Records of the exchange message the next stage would start with (the merge's pick); a
        full batch when a message is split or none is left in this pass."""
        if self._rstate[replay_nb.RS_OPEN_SOURCE] >= 0:
            return self.batch_events
        cursors = self._cursors
        if all(int(c) >= len(s) for c, s in zip(cursors, self._sources)):
            cursors = np.zeros_like(cursors)  # the next pass starts over
        best, best_ts = -1, 0
        for k, src in enumerate(self._sources):
            c = int(cursors[k])
            if c < len(src) and (best < 0 or int(src[c]["exch_ts_ns"]) < best_ts):
                best, best_ts = k, int(src[c]["exch_ts_ns"])
        if best < 0:
            return self.batch_events
        c = int(cursors[best])
        flags = self._sources[best]["flags"][c:c + self.batch_events]
        ends = np.flatnonzero(flags & np.uint32(EventFlag.LAST_IN_MESSAGE))
        return int(ends[0]) + 1 if len(ends) else self.batch_events

    def step(self, now_ns: int | None = None, max_events: int | None = None) -> int:
        """Publish what is pending; if nothing is, stage the next batch (the events due by now, at most
        ``max_events``) and publish it. Returns the records written to rings (or staged, without
        rings); 0 = idle."""
        if not self.pending:
            staged = self._stage(time.perf_counter_ns() if now_ns is None else now_ns, max_events)
            if staged == 0:
                return 0
            if not self.outputs:
                self.events_published += staged
                self.snapshots_published += self._n_snaps
                return staged
        return self._publish()

    def _publish(self) -> int:
        written = 0
        for out in self.outputs:
            staged = self._snaps if out.is_snapshot else self._staged
            stop = self._n_snaps if out.is_snapshot else self._n_staged
            if out.pos >= stop:
                continue
            n = int(replay_nb.publish_now(out.ring.ctrl, out.ring.records, staged, out.pos, stop, out.drop,
                                          self._stamp))
            if n and not out.is_snapshot and not self._latency_recorded:
                self._record_recv_to_publish(out.pos, out.pos + n, int(self._stamp[0]))
            out.pos += n
            out.written += n
            written += n
        if not self.pending:
            self.events_published += self._n_staged
            self.snapshots_published += self._n_snaps
            self._latency_recorded = True
        return written

    def _record_recv_to_publish(self, start: int, stop: int, publish_ts: int) -> None:
        inv_speed = 1.0 / self.speed if self.speed > 0 else 0.0
        replay_nb.recv_to_publish(self.hist_recv_to_publish, self._staged, start, stop, publish_ts, self._wall_start_ns,
                                  self.exch_start_ns, inv_speed, self._staged_ns)
        if stop >= self._n_staged:
            self._latency_recorded = True

    def fast_forward(self, events: int) -> int:
        """Apply the first ``events`` events to the books without publishing (a restarted feed resumes
        after what it had published). Returns the events skipped."""
        skipped = 0
        no_limit = np.iinfo(np.int64).max
        while skipped < events and not self.exhausted:
            # every event up to there, whatever the pace (the pacing clock is not started by it: a
            # far-future "now" started it there, and the first paced step's limit then overflowed)
            n = self._stage(time.perf_counter_ns(), min(self.batch_events, events - skipped), no_limit)
            if n == 0:
                break
            skipped += n
        for out in self.outputs:
            out.pos = self._n_snaps if out.is_snapshot else self._n_staged
        self.events_published = skipped
        if self.speed != 0.0 and skipped:  # paced: the next event is due at once, not after the skipped span
            ts = int(replay_nb.next_exch_ts(self._sources, self._cursors, self._pass * self.pass_shift_ns))
            if ts != no_limit:
                self.exch_start_ns = ts
        return skipped

    def run(self, max_idle_s: float = 60.0) -> None:
        """Step until done (tests, benchmarks); sleeps briefly while paced events are not yet due."""
        idle_since = None
        while not self.done:
            if self.step():
                idle_since = None
                continue
            now = time.monotonic()
            idle_since = idle_since or now
            if now - idle_since > max_idle_s:
                raise TimeoutError(f"replay made no progress for {max_idle_s} s (a full block-mode ring?)")
            time.sleep(0.0002)

    def close(self) -> None:
        for c in self.caches:
            c.close()

    def stats(self) -> dict:
        issues = self.books.issues()
        return {
            "events_total": self.events_total,
            "events_published": self.events_published,
            "snapshots_published": self.snapshots_published,
            "clock_offset_ns": self.clock_offset_ns,
            "book_issues": {sym: {i.name.lower(): c for i, c in by.items()} for sym, by in issues.items()},
            "rings": {out.ring.name: out.written for out in self.outputs},
        }
