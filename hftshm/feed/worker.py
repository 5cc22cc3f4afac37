"""``FeedWorker``: the pipeline's market data source (``[workers.feed]``).

Replays ``[feed] data`` through the L2 books and publishes, per output ring by its layout,
``market_event`` records (every event) or ``book_snapshot`` records (every consistent book). One
``do_work`` publishes at most one batch; a full ``block`` ring holds the batch until it has room.
A restarted feed finds ``events_published`` where it left it, rebuilds its books from the data up to
there without publishing, and carries on (records of a batch cut short by the crash may arrive
twice: at-least-once).

Deterministic runs (``[platform] deterministic``): one exchange message per step, and the next only
once every stage has settled (``hftshm.runtime.lockstep``).
"""

from __future__ import annotations

import os
import time

from hftshm.book.issues import REJECTS, BookIssue
from hftshm.config import Section
from hftshm.feed.config import FeedConfig
from hftshm.feed.replay import Replayer
from hftshm.feed.ticks import REJECT_ISSUES, RowIssue
from hftshm.runtime import keep_warm, lockstep
from hftshm.runtime.keep_warm_nb import prefetch_working_set
from hftshm.runtime.worker import Worker, WorkerContext

# paced replay (speed > 0): an idle feed sleeps until this long before the next event is due (a
# sleep overshoots by tens of microseconds here, more on a loaded machine), then spins
PACE_LEAD_NS = 300_000
PACE_MIN_SLEEP_NS = 100_000
PACE_MAX_SLEEP_NS = 20_000_000
STAGED_WARM = 8  # paced replay: the first records of the staging buffers are kept warm (keep_warm)


class FeedWorker(Worker):
    COUNTER_NAMES = ("events_published", "events_total", "snapshots_published", "gaps", "rows_rejected",
                     "book_rejects", "crossed_books", "blocked_cycles", "clock_offset_ms_gauge",
                     "pace_sleeps")  # paced replay: times the feed slept through a gap instead of spinning
    HISTOGRAMS = ("exch_to_recv", "recv_to_publish")
    _C = {name: i for i, name in enumerate(COUNTER_NAMES)}

    def __init__(self, **params):
        # topology params override [feed] keys (e.g. params = { speed = 0 }) for this worker
        self.params = params

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        if ctx.config is not None:
            config: FeedConfig = ctx.config.feed
            symbols = ctx.config.symbols
            if self.params:
                merged = {k: v for k, v in ctx.config.raw.get("feed", {}).items()}
                merged.update(self.params)
                config = FeedConfig.from_section(Section("workers.feed.params", merged))
        else:  # unit tests: the params stand in for the config file
            from hftshm.symbols import DEFAULT_SYMBOLS

            config = FeedConfig.from_section(Section("feed", dict(self.params)))
            symbols = DEFAULT_SYMBOLS
        if config.source != "replay":  # live market data: same rings, books and counters, another source
            from hftshm.feed.live_worker import LiveFeedWorker

            self.__class__ = LiveFeedWorker
            LiveFeedWorker.on_start(self, ctx)
            return
        self.config = config
        paths = config.data_paths()
        self.replayer = Replayer.from_files(
            paths, symbols, strict=config.strict, speed=config.speed, batch_events=config.batch_events,
            book_levels=config.book_levels, window_ticks=config.window_ticks, repeat=config.repeat,
            hist_exch_to_recv=ctx.histograms.get("exch_to_recv"),
            hist_recv_to_publish=ctx.histograms.get("recv_to_publish"))
        for ring in ctx.outputs.values():
            self.replayer.add_output(ring)
        self._warm_up()
        # paced: the working set (keep_warm) of the last stretch before an event, built now (and its
        # kernel loaded), not at the first gap; rebuilt if the books' arrays are replaced
        self._warm_period_ns = keep_warm.warm_ns() if config.speed > 0 else 0
        self._warm_books = self._warm_table = None
        self._warm_last_ns = 0
        if self._warm_period_ns:
            self._prefetch(time.perf_counter_ns())  # a first pull: the kernel compiles or loads here
        self._settle = None
        self._end_sent = False
        self._last_message_ns = 0
        if lockstep.enabled(ctx):
            self._settle = lockstep.PipelineSettle(ctx.observe_rings())
            ctx.log.info("feed: deterministic replay, one message at a time over %d rings (%s)",
                         len(self._settle.rings), ", ".join(self._settle.names))
        self._steps = 0
        c = ctx.counters
        published = int(c[self._C["events_published"]])
        # a restarted feed's replayer counts snapshots from zero; the counter keeps the run's total
        self._snapshots_before = int(c[self._C["snapshots_published"]]) if published else 0
        if published:
            skipped = self.replayer.fast_forward(published)
            ctx.log.info("feed resumes after %d published events (books rebuilt from the data up to there)", skipped)
        c[self._C["events_total"]] = self.replayer.events_total
        c[self._C["rows_rejected"]] = self._rows_rejected(ctx)
        offset = self.replayer.clock_offset_ns
        if offset is not None:
            c[self._C["clock_offset_ms_gauge"]] = int(round(offset / 1e6))
            ctx.log.info("recording clock vs exchange clock: local - exchange >= %.3f ms (min over depth and "
                         "trade events); exch_to_recv latency is measured above that minimum", offset / 1e6)
        ctx.log.info("feed: %s, %d events x %d, speed %s, outputs %s", ", ".join(map(str, paths)),
                     self.replayer.events_per_pass, config.repeat, config.speed or "max",
                     ", ".join(ctx.outputs) or "(none)")

    def _warm_up(self) -> None:
        # compile (or load from the numba cache) every kernel the hot path calls before RUNNING
        from hftshm.feed import replay_nb

        r = self.replayer

        replay_nb.stage(r._sources, r._cursors.copy(), r._offsets, 0, 0, 0, r._staged, 0, r._rstate.copy(),
                        r.books.arrays, r.book_levels, r._snaps, r._scratch_px, r._scratch_qty, r.hist_exch_to_recv)
        for out in r.outputs:
            staged = r._snaps if out.is_snapshot else r._staged
            replay_nb.publish_now(out.ring.ctrl, out.ring.records, staged, 0, 0, out.drop, r._stamp)
        replay_nb.recv_to_publish(r.hist_recv_to_publish, r._staged, 0, 0, 0, 0, 0, 0.0, 0)
        replay_nb.next_exch_ts(r._sources, r._cursors, 0)  # paced replay's sleep (_sleep_until_due)

    def _rows_rejected(self, ctx: WorkerContext) -> int:
        total = 0
        for cache in self.replayer.caches:
            issues = cache.report.get("issues", {})
            rejected = {k: v for k, v in issues.items() if RowIssue[k.upper()] in REJECT_ISSUES}
            if rejected:
                ctx.log.warning("%s: %d malformed row(s) skipped: %s (hftshm data check lists the lines)",
                                cache.path.name, sum(rejected.values()), rejected)
                total += sum(rejected.values())
        return total

    def do_work(self) -> int:
        r = self.replayer
        if self._settle is None:
            n = r.step()
            if n == 0:
                self._sleep_until_due()
        elif r.pending:
            n = r.step()  # the rest of a message a full ring held back
        elif not self._settle.settled():
            os.sched_yield()  # the stages downstream need this core more than we do
            return 0
        elif r.done:
            n = self._end_of_data()
        else:
            n = r.step(max_events=r.next_message_events())
            if n:
                self._last_message_ns = r.last_staged_exch_ts_ns
        c = self.ctx.counters
        c[0] = r.events_published
        c[2] = self._snapshots_before + r.snapshots_published
        if n == 0 and r.pending:
            c[7] += 1
        self._steps += 1
        if self._steps & 63 == 0 or r.done:
            self._book_counters()
        return n

    def _sleep_until_due(self) -> None:
        """Paced replay with nothing due: sleep until ``PACE_LEAD_NS`` before the next event is due
        (at most ``PACE_MAX_SLEEP_NS``, so the runner still writes heartbeats and reads commands);
        the wait strategy's spin covers the last stretch. A real-time replay then costs a few
        percent of a core instead of one spinning core."""
        due = self.replayer.next_due_ns()
        if due is None:
            return
        now = time.perf_counter_ns()
        wait_ns = due - now - PACE_LEAD_NS
        if wait_ns >= PACE_MIN_SLEEP_NS:
            time.sleep(min(wait_ns, PACE_MAX_SLEEP_NS) / 1e9)
            self.ctx.counters[self._C["pace_sleeps"]] += 1
        else:
            self._prefetch(now)

    def _prefetch(self, now_ns: int) -> None:
        """The last stretch before a paced event: the sleep let the books, the staging buffers and the
        output rings' next slots leave the caches; pull them back in every ``warm_ns``, as the
        trading process's idle slices do (``runtime.keep_warm``)."""
        if not self._warm_period_ns:
            return
        books = self.replayer.books.arrays
        if self._warm_books is not books:  # built at start; again if the books grew
            self._warm_books, self._warm_table = books, self._working_set()
        if now_ns - self._warm_last_ns >= self._warm_period_ns:
            prefetch_working_set(*self._warm_table)
            self._warm_last_ns = now_ns

    def _working_set(self) -> tuple:
        """The books, the heads of the staging buffers and the output rings (their next slots). Not
        the replay kernels' code: the spin of the last stretch calls ``stage`` anyway."""
        r = self.replayer
        state = (r.books.arrays, r._rstate, r._cursors, r._staged[:STAGED_WARM], r._snaps[:STAGED_WARM],
                 [out.ring.ctrl for out in r.outputs])
        regions, rings = keep_warm.working_set(state)
        if self._warm_table is None:
            self.ctx.log.info("feed: before a paced event it prefetches %s", keep_warm.describe(regions, rings))
        return regions, rings

    def _book_counters(self) -> None:
        c = self.ctx.counters
        issues = self.replayer.books.arrays[8]
        c[self._C["gaps"]] = int(issues[:, BookIssue.GAP_CLEAR].sum())
        c[self._C["book_rejects"]] = int(sum(issues[:, i].sum() for i in REJECTS))
        c[self._C["crossed_books"]] = int(issues[:, BookIssue.CROSSED].sum())

    def on_drain(self) -> int:
        return 0  # a source stops producing when asked to drain

    def _end_of_data(self) -> int:
        """Deterministic: the last message has settled; tell the market_event consumers (once)."""
        if self._end_sent:
            return 0
        rings = [out.ring for out in self.replayer.outputs if not out.is_snapshot]
        if any(ring.occupancy() >= ring.capacity for ring in rings):
            return 0
        for ring in rings:
            view = ring.claim(1)
            lockstep.end_of_data_record(view, self._last_message_ns)
            view["publish_ts_ns"] = time.perf_counter_ns()
            ring.commit(1)
        self._end_sent = True
        return 1

    def is_done(self) -> bool:
        # deterministic: done once the end-of-data marker has gone all the way round
        if self._settle is None:
            return self.replayer.done
        return self._end_sent and self._settle.settled()

    def on_close(self) -> None:
        r = getattr(self, "replayer", None)
        if r is None:
            return
        self._book_counters()
        self.ctx.log.info("feed closed: %s", r.stats())
        r.close()
