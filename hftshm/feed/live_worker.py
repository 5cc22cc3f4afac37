"""``LiveFeedWorker``: the pipeline's market data source on live Binance streams (``[feed] source =
"binance"``, ``hftshm run --live``).

Same rings, records, books, counters and latency histograms as ``FeedWorker`` (so risk, OMS, the
simulated exchange, dashboard, API and metrics see no difference: paper trading against the live
book and trades), plus the network's own counters. A live feed never ends: the run stops on
``--duration``, ``hftshm stop`` or Ctrl-C. Deterministic (lockstep) runs need a replay: refused.
A restarted live feed starts over from a fresh snapshot (nothing to fast-forward: the market moved on).
"""

from __future__ import annotations

import sys

from hftshm.book.issues import REJECTS, BookIssue
from hftshm.config import ConfigError, Section
from hftshm.feed.config import FeedConfig
from hftshm.feed.live import LiveFeed
from hftshm.feed.worker import FeedWorker
from hftshm.runtime import lockstep
from hftshm.runtime.worker import Worker, WorkerContext


SWITCH_INTERVAL_S = 50e-6
IDLE_WAIT_S = 0.001  # thread + spin: an idle step waits this long for the network thread's leftovers
_CUMULATIVE = ("events_published", "snapshots_published", "frames", "frames_dropped")


class LiveFeedWorker(Worker):
    # the replay feed's counters first, in the same slots (dashboards and alerts read them by name)
    COUNTER_NAMES = FeedWorker.COUNTER_NAMES + (
        "frames", "reconnects", "stalls", "snapshots_fetched", "frame_rejects", "ignored_frames",
        "book_valid_gauge", "queued_frames_gauge", "interruptions", "frames_dropped", "net_restarts",
        "frame_ring_errors", "rehearsals")
    HISTOGRAMS = FeedWorker.HISTOGRAMS
    _C = {name: i for i, name in enumerate(COUNTER_NAMES)}

    def __init__(self, **params):
        self.params = params

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        if ctx.config is not None:
            config: FeedConfig = ctx.config.feed
            symbols = ctx.config.symbols
            if self.params:
                merged = dict(ctx.config.raw.get("feed", {}))
                merged.update(self.params)
                config = FeedConfig.from_section(Section("workers.feed.params", merged))
        else:  # unit tests: the params stand in for the config file
            from hftshm.symbols import DEFAULT_SYMBOLS

            config = FeedConfig.from_section(Section("feed", dict(self.params)))
            symbols = DEFAULT_SYMBOLS
        if lockstep.enabled(ctx):
            raise ConfigError("[platform] deterministic needs a replay: live market data arrives when it arrives "
                              "(run without --deterministic, or replay a recording)")
        for item in config.live_symbols:
            if item.split(":")[1] not in symbols:
                raise ConfigError(f"feed.live_symbols: {item} has no [symbols] entry (tick and lot size)")
        self.config = config
        self.feed = LiveFeed(
            config.subscriptions(), symbols, batch_frames=config.batch_frames, book_levels=config.book_levels,
            window_ticks=config.window_ticks, heartbeat_timeout_s=config.heartbeat_timeout_s,
            record_dir=config.record or None, hist_exch_to_recv=ctx.histograms.get("exch_to_recv"),
            hist_recv_to_publish=ctx.histograms.get("recv_to_publish"), network=config.live_network,
            poll=config.live_poll)
        for ring in ctx.outputs.values():
            self.feed.add_output(ring)
        self.feed.warm_up()
        if config.live_network == "thread":
            # the websocket thread shares this process's GIL with the feed's duty cycle: without this, a
            # spinning feed lets the network thread in only every 5 ms (CPython's default switch interval)
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._steps = 0
        self._published = 0
        # thread + spin: the network thread publishes every read and keeps the caches warm while it
        # waits; this thread's idle steps wait on it (idle_wait) instead of spinning against it for the
        # GIL. The stop request is looked at between do_work calls: a wait of 1 ms delays it by as much
        self._idle_wait = config.live_network == "thread" and config.live_poll == "spin"
        # a restarted live feed starts over from a fresh snapshot; its running totals carry on
        c = ctx.counters
        self._before = {name: int(c[self._C[name]]) for name in _CUMULATIVE}
        self._symbols = [item.split(":")[1] for item in config.live_symbols]
        self.feed.start()
        urls = ", ".join(s.url()[:120] for s in config.subscriptions())
        ctx.log.info("feed: live Binance streams %s (heartbeat timeout %g s, network %s, poll %s)%s; outputs %s",
                     urls, config.heartbeat_timeout_s, config.live_network,
                     config.live_poll if config.live_network == "thread" else "block",
                     f", recording to {config.record}" if config.record else "",
                     ", ".join(ctx.outputs) or "(none)")

    @property
    def wake_rings(self) -> list:
        """The frame ring: the process's park wakes when the network process commits a frame (without
        it a live feed with no input rings parks on a plain sleep of the whole park timeout)."""
        feed = getattr(self, "feed", None)
        return feed.wake_rings if feed is not None else []

    def do_work(self) -> int:
        feed = self.feed
        n = feed.step()
        self._steps += 1
        # (with the network thread publishing, this thread's steps mostly find nothing to do)
        published = feed.events_published + feed.snapshots_published
        if n or published != self._published or self._steps & 1023 == 0:
            self._published = published
            self._counters()
        if n == 0 and self._idle_wait:
            feed.idle_wait(IDLE_WAIT_S)
        return n

    def _counters(self) -> None:
        c, C, feed = self.ctx.counters, self._C, self.feed
        before = self._before
        c[C["events_published"]] = before["events_published"] + feed.events_published
        c[C["events_total"]] = 0  # unknown: the market does not end (the status line then shows a count)
        c[C["snapshots_published"]] = before["snapshots_published"] + feed.snapshots_published
        c[C["blocked_cycles"]] = feed.blocked
        issues = feed.books.arrays[8]
        c[C["gaps"]] = int(issues[:, BookIssue.GAP_CLEAR].sum())
        c[C["book_rejects"]] = int(sum(issues[:, i].sum() for i in REJECTS))
        c[C["crossed_books"]] = int(issues[:, BookIssue.CROSSED].sum())
        c[C["rows_rejected"]] = feed.decoder.stats.row_rejects
        offset = feed.clock_offset_ns
        if offset is not None:
            c[C["clock_offset_ms_gauge"]] = int(round(offset / 1e6))
        stats = feed.client.stats
        c[C["frames"]] = before["frames"] + feed.decoder.stats.frames
        c[C["frames_dropped"]] = before["frames_dropped"] + feed.frames_dropped
        c[C["reconnects"]] = max(stats.connects - 1, 0)
        c[C["stalls"]] = stats.stalls
        c[C["snapshots_fetched"]] = stats.snapshots
        summaries = feed.decoder.summaries().values()
        c[C["frame_rejects"]] = sum(sum(s.rejects.values()) for s in summaries)
        c[C["ignored_frames"]] = sum(sum(s.ignored_streams.values()) for s in summaries)
        c[C["book_valid_gauge"]] = sum(1 for s in self._symbols if feed.book_valid(s))
        c[C["queued_frames_gauge"]] = feed.frames_waiting
        c[C["interruptions"]] = feed.decoder.stats.interruptions
        c[C["net_restarts"]] = feed.net_restarts
        if feed.net is not None:
            c[C["frame_ring_errors"]] = feed.net.sequence_errors
        c[C["rehearsals"]] = feed.rehearsals

    def on_drain(self) -> int:
        return 0  # a source stops producing when asked to drain

    def is_done(self) -> bool:
        return False  # the market does not end

    def on_close(self) -> None:
        feed = getattr(self, "feed", None)
        if feed is None:
            return
        feed.close()
        self._counters()
        self.ctx.log.info("live feed closed: %s", feed.stats())
        for gap in feed.gaps()[:50]:
            self.ctx.log.warning("live feed: %s", gap.describe())
