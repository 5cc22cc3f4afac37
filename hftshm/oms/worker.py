"""``OmsWorker``: the OMS as a pipeline stage.

Rings, found by layout (fan-out is one ring per consumer):

- in: ``order`` (from risk; ``order_id`` 0 = the OMS assigns it), ``execution_report`` (exchange)
- out: ``order`` (to the exchange), every ``execution_report`` ring (strategies, risk), and one
  ``order_event`` ring to the writer (``hftshm.oms.writer.OrderEventWriter``). Without an
  ``order_event`` ring the worker journals events itself through an in-process ``EventWriter``
  (same durability, but database I/O then shares this process).

Each duty cycle: reports first (they free state), then new orders, then ack timeouts; everything a
batch produced is published (events first, so the audit trail is never behind what the exchange
saw) before the inputs are released, so a crash re-delivers at most the batch in hand, which the
OMS refuses as duplicates / stale reports instead of applying twice.

Start-up is recovery: wait until the writer has persisted every event of the previous run (its
ring empty, its journal empty), then load open orders (and recent finished ones, for duplicate
detection) from the database. Input rings resume from their released cursors.

The hot path never touches the database. If the event ring is full (the writer's backlog is at its
bound), events are appended to a local spill file (``<run_dir>/oms-events.spill.*``, the same
journal format; it survives a crash and is handed to the writer first, at the latest by the next
start) and ``on_backlog_full`` applies: ``halt`` sets trading HALTED in risk's control block (only
cancels pass) and keeps processing; ``block`` stops taking input. A spill at its bound
(``overflow_events``) blocks input under either policy. Nothing is dropped.
"""

from __future__ import annotations

import time

import numpy as np

from hftshm.codes import Reason, TradingState
from hftshm.oms import cycle_nb, oms_nb, rehearsal, stage_nb, timers_nb
from hftshm.oms.config import journal_path, spill_path
from hftshm.oms.engine import ORDER_EVENT, OmsEngine
from hftshm.oms.journal import Journal, journal_pending_records
from hftshm.oms.recovery import reforward_lost_reports
from hftshm.oms.store import Store, safe_url
from hftshm.oms.warmup import warm_oms
from hftshm.oms.writer import oms_config_of, redis_config_of, writer_from_config
from hftshm.runtime import lockstep
from hftshm.runtime.worker import Worker, WorkerContext

EXTRA_COUNTERS = ("open_orders_gauge", "event_spill_gauge", "event_ring_full", "backlog_halts", "blocked_cycles",
                  "recovered_orders", "epoch_gauge", "recovering_gauge",
                  # only with the in-process writer (no order_event ring); else the writer worker has them
                  "writer_lag_events_gauge", "writer_lag_ms_gauge", "reconcile_problems", "reports_reforwarded")
_X = {name: len(oms_nb.STAT_NAMES) + i for i, name in enumerate(EXTRA_COUNTERS)}
# the fast path (cycle_nb) writes the statistics and then the open-order count straight into the counters
assert len(oms_nb.STAT_NAMES) == oms_nb.ST_WORDS and _X["open_orders_gauge"] == oms_nb.ST_WORDS


class OmsWorker(Worker):
    COUNTER_NAMES = oms_nb.STAT_NAMES + EXTRA_COUNTERS
    # hop: upstream publish -> OMS publish, per order and report; tick_to_order: the feed's publish of
    # the tick behind a new order -> that order published to the exchange
    HISTOGRAMS = ("hop", "tick_to_order")

    def __init__(self, batch: int = 0, oms: dict | None = None, redis_url: str = "", redis_namespace: str = "default"):
        """``batch``: records per ring poll (0: ``[oms] batch_size``); ``oms``: ``[oms]`` keys to override;
        ``redis_url``: the open-order cache of the in-process writer, when no ``[redis]`` is configured."""
        self._batch_param = batch
        self._overrides = oms or {}
        self._redis = (redis_url, redis_namespace)
        #: called once when the event backlog is full and policy is halt but there is no control block
        self.on_backlog_full = None

    # -- lifecycle -------------------------------------------------------------------------------

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        self.config = config = oms_config_of(ctx, self._overrides)
        self.batch = self._batch_param or config.batch_size
        self.orders_in = _one(ctx, ctx.inputs, "order", "input")
        self.reports_in = _one(ctx, ctx.inputs, "execution_report", "input")
        self.exchange_out = _one(ctx, ctx.outputs, "order", "output")
        self.reports_out = [r for r in ctx.outputs.values() if r.layout.name == "execution_report"]
        if not self.reports_out:
            raise RuntimeError(f"worker {ctx.name!r} needs at least one execution_report output ring (strategies, "
                               f"risk); it has {sorted(ctx.outputs)}")
        events = [r for r in ctx.outputs.values() if r.layout.name == "order_event"]
        self.events_out = events[0] if events else None
        self.run_dir = ctx.run_dir
        url = config.database_url_for(ctx.run_dir)
        self.store = Store(url, schema=config.database_schema, connect_timeout_s=config.connect_timeout_s)
        epoch = self.store.new_epoch()
        staging = 2 * self.batch + 8
        self.engine = OmsEngine(max_orders=config.max_orders, timeouts_ns=config.timeouts_ns(), epoch=epoch,
                                staging=staging)
        self.engine.fault_in()  # the tables' page faults now, not on the first orders' hot path
        self.writer = None
        if self.events_out is None:
            ctx.log.warning("oms: no order_event output ring; writing the audit trail from this process")
            self.writer = writer_from_config(config, ctx.run_dir, redis_config_of(ctx, *self._redis))
        self.spill = Journal(spill_path(ctx.run_dir), ORDER_EVENT.itemsize)
        self._spill_high = config.overflow_events - staging
        self._iota = np.arange(staging, dtype=np.int64)
        self._halted = False
        self.counters = ctx.counters
        # Both cycles copy the engine's statistics over the counters (cycle_nb, _update_counters).
        # The status row outlives a SIGKILL; a new engine's statistics start at zero, so without
        # this a restarted OMS would write its own few orders over the run's totals (the summary's
        # orders and fills). Every ST_* word is a cumulative count (the open-order gauge comes
        # after them and is not seeded: it is set from the order table).
        self.engine.stats[:oms_nb.ST_WORDS] = self.counters[:oms_nb.ST_WORDS]
        self.counters[_X["epoch_gauge"]] = epoch
        self._hop = ctx.histograms.get("hop")
        self._histogram = self._hop if self._hop is not None else np.zeros(0, dtype=np.int64)
        tick_to_order = ctx.histograms.get("tick_to_order")
        self._tick_to_order = tick_to_order if tick_to_order is not None else np.zeros(0, dtype=np.int64)
        self._rings = None
        if self.events_out is not None:  # the fast path: one numba call per cycle
            self._rings = cycle_nb.OmsRings(self.orders_in.ctrl, self.orders_in.records, self.reports_in.ctrl,
                                            self.reports_in.records, self.exchange_out.ctrl,
                                            self.exchange_out.records, self.events_out.ctrl, self.events_out.records)
            self._report_ctrls = tuple(r.ctrl for r in self.reports_out)
            self._report_records = tuple(r.records for r in self.reports_out)
        self._lockstep = lockstep.enabled(ctx)
        self._market_clock_ns = 0
        if self._lockstep:
            self._warm_lockstep()
        self.recovering = True
        self.counters[_X["recovering_gauge"]] = 1
        self._recovery_deadline = time.monotonic() + config.recovery_timeout_s
        self._last_wait_log = 0.0
        warm_oms(self)  # the cycle and the recovery kernels, on scratch state, before RUNNING
        ctx.log.info("oms: epoch %d, database %s, ack timeouts %s ms", epoch, safe_url(url),
                     [t / 1e6 for t in self.engine.timeouts_ns.tolist()])

    def on_close(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is None:
            return
        # hand the spill to the writer while it takes it; what it cannot take stays on disk, not lost
        deadline = time.monotonic() + 5.0
        progress_at = time.monotonic()
        while self.overflow_n and time.monotonic() < deadline and time.monotonic() - progress_at < 0.5:
            if self._drain_spill():
                progress_at = time.monotonic()
            else:
                time.sleep(0.01)
        if self.overflow_n:
            self.ctx.log.warning("oms: %d order events stay in the spill file for the writer (backlog full); the "
                                 "next start hands them over first", self.overflow_n)
        self.spill.close()
        if self.writer is not None:
            if not self.writer.close(10.0):
                self.ctx.log.warning("oms: %d order events stay in the journal for the next start",
                                     self.writer.backlog_events)
        self.store.close()

    @property
    def overflow_n(self) -> int:
        """Events in the spill file, not yet handed to the writer."""
        return self.spill.pending_records

    # -- the duty cycle --------------------------------------------------------------------------

    def do_work(self) -> int:
        if self.recovering:
            return self._recover()
        if self._lockstep:
            return self._lockstep_cycle()
        if self._rings is not None and self.spill.pending_bytes == 0:
            now = time.monotonic_ns()
            if (not self.orders_in.has_records() and not self.reports_in.has_records()
                    and now < self.engine.words[oms_nb.O_NEXT_DEADLINE]):
                return 0  # what the cycle would find: skip its dispatch (~5 us of arguments)
            work = cycle_nb.cycle(self.engine.book, self.engine.ctl, self.engine.out, self._rings, self._report_ctrls,
                                  self._report_records, self._histogram, self._tick_to_order, self.counters,
                                  self.batch,
                                  now, time.time_ns())
            if work >= 0:
                return work
        # the writer's ring is full, or events wait in the spill file, or there is no ring at all
        return self._slow_cycle()

    # -- the compiled trading cycle (hftshm.runtime.trading_cycle) ---------------------------------

    def compiled_stage(self, force: bool = False):
        """``oms.stage_nb.OmsStage`` while the fast path applies (recovered, not deterministic, an
        event ring and no spill), else None. ``force``: whatever the state, if there is an event ring."""
        if self._rings is None:
            return None
        if not force and (self.recovering or self._lockstep or self.spill.pending_bytes):
            return None
        engine = self.engine
        cached = getattr(self, "_compiled", None)
        if cached is None or cached.book is not engine.book:
            stage = stage_nb.OmsStage(engine.book, engine.ctl, engine.out, self._rings, self._report_ctrls,
                                      self._report_records, engine.words, self._histogram,
                                      self._tick_to_order, self.counters, self.batch, None)
            self._twin = rehearsal.twin_of(stage)
            if not self._twin.matched:
                self.ctx.log.warning("oms: the rehearsal twin's arrays are not typed as the live ones: no rehearsals")
            self._compiled = stage._replace(rehearsal=self._twin.bundle)
        return self._compiled

    @property
    def rehearsals(self) -> int:
        """Rehearsals of the order path on the idle compiled stage's twin (``oms.rehearsal_nb``)."""
        twin = getattr(self, "_twin", None)
        return twin.rehearsals if twin is not None else 0

    def compiled_housekeeping(self, now_ns: int) -> int:
        self.counters[_X["event_spill_gauge"]] = self.overflow_n
        return 0

    def _slow_cycle(self) -> int:
        """The same cycle step by step in Python, with events that do not fit going to the spill file."""
        work = 0
        if self.overflow_n:
            work += self._drain_spill()
            if self.overflow_n > self._spill_high or (self.overflow_n and self.config.on_backlog_full == "block"):
                self.counters[_X["blocked_cycles"]] += 1
                return work
        engine = self.engine
        now = time.monotonic_ns()
        wall = time.time_ns()
        room = self._output_room()
        if room:
            view = self.reports_in.poll(min(self.batch, room))
            if len(view):
                consumed = engine.on_reports(view, now, wall)
                self._publish(now)
                self._count()
                if self._hop is not None:
                    cycle_nb.record_hops(self._hop, view["local_ts_ns"][:consumed], time.monotonic_ns())
                self.reports_in.release(consumed)
                work += consumed
                room = self._output_room()
        if room:
            view = self.orders_in.poll(min(self.batch, room))
            if len(view):
                consumed = engine.on_orders(view, now, wall)
                self._publish(now)
                self._count()
                if self._hop is not None:
                    cycle_nb.record_hops(self._hop, view["ts_ns"][:consumed], time.monotonic_ns())
                cycle_nb.record_tick_to_order(self._tick_to_order, view, consumed)
                self.orders_in.release(consumed)
                work += consumed
                room = self._output_room()
        if room >= len(self._iota) and now >= engine.words[oms_nb.O_NEXT_DEADLINE]:
            work += engine.on_timers(now, wall)
            self._publish(now)
        self._update_counters()
        return work

    def _warm_lockstep(self) -> None:
        """Compile (or load) the kernels of the deterministic cycle with its exact argument types now,
        not inside a step: empty batches, a clock before any deadline."""
        engine = self.engine
        orders, reports = self.orders_in.records[:0], self.reports_in.records[:0]
        engine.on_orders(orders, 0, 0)
        engine.on_reports(reports, 0, 0)
        timers_nb.on_timers(engine.book, engine.ctl, engine.out, np.int64(-1), np.int64(0))
        histogram = self._histogram if self._hop is not None else np.zeros(0, dtype=np.int64)
        # stamps as a field of a record array (strided: numba's 'A' layout); zero stamps are skipped
        cycle_nb.record_hops(histogram, np.zeros(2, dtype=reports.dtype)["local_ts_ns"], 0)
        cycle_nb.record_hops(histogram, np.zeros(2, dtype=np.int64), 0)
        cycle_nb.record_tick_to_order(self._tick_to_order, orders, 0)
        engine.clear()

    def _lockstep_cycle(self) -> int:
        """Deterministic runs: the same steps on market time. Reports up to the exchange's watermark,
        then the clock moves to it, ack timers run at it and the watermark goes on to every report
        ring (after the reports it covers); orders are handled at their market time."""
        engine = self.engine
        room = self._output_room() - 1  # one slot for a watermark
        if room < len(self._iota) or self.overflow_n > self._spill_high:
            self.counters[_X["blocked_cycles"]] += 1
            return self._drain_spill() if self.overflow_n else 0
        wall = time.time_ns()
        work = 0
        view = self.reports_in.poll(min(self.batch, room))
        if len(view):
            mark = lockstep.watermark_index(view, np.iinfo(np.int64).min)
            upto = mark if mark >= 0 else len(view)
            consumed = engine.on_reports(view[:upto], self._market_clock_ns, wall) if upto else 0
            self._publish(self._market_clock_ns)
            if self._hop is not None:
                cycle_nb.record_hops(self._hop, view["local_ts_ns"][:consumed], time.monotonic_ns())
            if mark >= 0 and consumed == upto:
                self._market_clock_ns = max(self._market_clock_ns, int(view["exch_ts_ns"][mark]))
                if self._market_clock_ns >= engine.words[oms_nb.O_NEXT_DEADLINE]:
                    engine.on_timers(self._market_clock_ns, wall)
                    self._publish(self._market_clock_ns)
                for ring in self.reports_out:
                    _write_all(ring, view[mark:mark + 1], self._iota)
                consumed += 1
            self._count()
            self.reports_in.release(consumed)
            work += consumed
        view = self.orders_in.poll(min(self.batch, self._output_room()))
        if len(view):
            self._market_clock_ns = max(self._market_clock_ns, int(view["market_ts_ns"].max()))
            consumed = engine.on_orders(view, self._market_clock_ns, wall)
            self._publish(self._market_clock_ns)
            self._count()
            if self._hop is not None:
                cycle_nb.record_hops(self._hop, view["ts_ns"][:consumed], time.monotonic_ns())
            cycle_nb.record_tick_to_order(self._tick_to_order, view, consumed)
            self.orders_in.release(consumed)
            work += consumed
        if work:
            self._update_counters()
        return work

    def _output_room(self) -> int:
        """Records every order/report output ring can take now (each input yields at most one)."""
        room = self.exchange_out.capacity - self.exchange_out.occupancy()
        for ring in self.reports_out:
            room = min(room, ring.capacity - ring.occupancy())
        return max(room, 0)

    def _publish(self, now_ns: int) -> None:
        staged = self.engine.staged()
        if len(staged.events):
            self._publish_events(staged.events)
        if len(staged.orders):
            _write_all(self.exchange_out, staged.orders, self._iota)
        if len(staged.reports):
            for ring in self.reports_out:
                _write_all(ring, staged.reports, self._iota)
        self.engine.clear()

    def _publish_events(self, events: np.ndarray) -> None:
        # the spill is older than anything new: while it holds events, new ones queue behind it
        written = 0
        if self.overflow_n == 0:
            written = self._offer_events(events)
        if written < len(events):
            self.spill.append(np.ascontiguousarray(events[written:]).data.cast("B"))
            self._backlog_full()

    def _offer_events(self, events: np.ndarray) -> int:
        if self.events_out is not None:
            return _write_all(self.events_out, events, self._iota)
        return self.writer.accept(events)

    def _drain_spill(self) -> int:
        data = self.spill.peek(len(self._iota) * 8 * ORDER_EVENT.itemsize)
        if not data:
            return 0
        taken = self._offer_events(np.frombuffer(data, dtype=ORDER_EVENT.dtype))
        self.spill.advance(taken * ORDER_EVENT.itemsize)
        if taken and self.overflow_n == 0:
            self.counters[_X["event_spill_gauge"]] = 0
            if self._halted:
                # the next episode halts again; resuming stays an operator's decision
                self._halted = False
                self.ctx.log.warning("oms: order-event backlog drained; trading stays HALTED until an operator "
                                     "resumes it ('hftshm risk state active')")
        return taken

    def _backlog_full(self) -> None:
        self.counters[_X["event_ring_full"]] += 1
        if self._halted or self.config.on_backlog_full != "halt":
            return
        self._halted = True
        self.counters[_X["backlog_halts"]] += 1
        log = self.ctx.log
        if self.ctx.control is not None:
            self.ctx.control.set_trading_state(TradingState.HALTED, Reason.BACKLOG_FULL)
            log.error("oms: order-event backlog full (database down or too slow): trading HALTED, only cancels "
                      "pass; events are kept, not dropped. Resume with 'hftshm risk state active' once it drains")
        elif self.on_backlog_full is not None:
            self.on_backlog_full()
        else:
            log.error("oms: order-event backlog full and no risk control block to halt trading; input will block "
                      "when the spill file fills")

    def _count(self) -> None:
        """The statistics into the counters, after a batch is published and before its input is
        released: the order ``cycle_nb._count`` explains (a restart counts on from them exactly)."""
        self.counters[:oms_nb.ST_WORDS] = self.engine.stats[:oms_nb.ST_WORDS]
        self.counters[_X["open_orders_gauge"]] = self.engine.open_count

    def _update_counters(self) -> None:
        c = self.counters
        self._count()
        c[_X["event_spill_gauge"]] = self.overflow_n
        if self.writer is not None:
            c[_X["writer_lag_events_gauge"]] = self.writer.backlog_events
            c[_X["writer_lag_ms_gauge"]] = int(self.writer.lag_s * 1000)

    # -- recovery --------------------------------------------------------------------------------

    def _recover(self) -> int:
        if self.overflow_n:
            # the previous run's spill goes to the writer first (it is older than anything else)
            return self._drain_spill()
        unwritten = journal_pending_records(journal_path(self.run_dir), ORDER_EVENT.itemsize)
        if self.events_out is not None:
            unwritten += self.events_out.occupancy()
        if self.writer is not None:
            unwritten = self.writer.backlog_events
        if unwritten:
            now = time.monotonic()
            if now >= self._recovery_deadline:
                raise RuntimeError(f"oms: {unwritten} order events of the previous run are still not in the database "
                                   f"after {self.config.recovery_timeout_s:.0f}s (is the database up, and the "
                                   f"order-event writer running?); cannot recover open orders without them")
            if now - self._last_wait_log > 5.0:
                self._last_wait_log = now
                self.ctx.log.info("oms: recovery waits for the writer to persist %d events of the previous run",
                                  unwritten)
            return 0
        problems = self.store.reconcile_open_orders()
        if problems:
            # the writer commits an order row and its events in one transaction: this is damage
            # from outside (a hand edit, a partial restore); load what is there, loudly
            self.counters[_X["reconcile_problems"]] = len(problems)
            for problem in problems:
                self.ctx.log.error("oms: recovery: %s", problem)
        rows = self.store.load_orders(self.config.recover_recent_orders)
        loaded = self.engine.restore(rows)
        reforwarded = reforward_lost_reports(self.engine, self.reports_in, self.reports_out, 4 * self.batch,
                                             self.store)
        if reforwarded:
            self.counters[_X["reports_reforwarded"]] = reforwarded
            self.ctx.log.warning("oms: forwarded %d report(s) the previous run had applied but not yet sent on",
                                 reforwarded)
        open_count = self.engine.open_count
        self.counters[_X["recovered_orders"]] = loaded
        self.counters[_X["recovering_gauge"]] = 0
        self.recovering = False
        if loaded < len(rows):
            self.ctx.log.error("oms: order table full during recovery: loaded %d of %d orders (raise [oms] "
                               "max_orders)", loaded, len(rows))
        self.ctx.log.info("oms: recovered %d open orders (and %d finished ones for duplicate detection)",
                          open_count, loaded - open_count)
        self._update_counters()
        return 1


def _one(ctx: WorkerContext, rings: dict, layout: str, side: str):
    found = [r for r in rings.values() if r.layout.name == layout]
    if len(found) != 1:
        raise RuntimeError(f"worker {ctx.name!r} needs exactly one {layout} {side} ring, found "
                           f"{[r.name for r in found]}")
    return found[0]


def _write_all(ring, records: np.ndarray, iota: np.ndarray) -> int:
    """Copy ``records`` into ``ring`` (stamping ``seq``), as many as fit; returns how many."""
    n = len(records)
    stamp = "seq" in ring.dtype.names  # order/report records carry a per-ring sequence; events their ids
    done = 0
    while done < n:
        view = ring.claim(n - done)
        k = len(view)
        if k == 0:
            break
        start = ring.producer_position
        view[:] = records[done:done + k]
        if stamp:
            np.add(iota[:k], start, out=view["seq"])
        ring.commit(k)
        done += k
    return done
