"""``RiskWorker``: the pre-trade risk stage between the strategies and the OMS.

Inputs (found by record layout, whatever the topology names the rings):

* ``book_snapshot``: marks (the mid) for PnL and the price band;
* ``execution_report``: acks, fills, cancels, rejects from the OMS (positions, PnL, open exposure);
* ``control_message`` (optional): KILL_SWITCH / TRADING_STATE, applied to the control block;
* ``order_intent``: what the strategies want, checked in batches by the numba kernel.

Outputs: exactly one ``order`` ring (approved intents, to the OMS) and one ``execution_report`` ring
(REJECT reports with the reason, to the strategies).

Kill switch: when the control block's kill switch turns on (CLI, Redis key, control message), every
new order and replace is rejected from the next check on, and this worker sends a CANCEL to the OMS
for every open order it knows of (``order.flags`` = ``ORDER_FLAG_KILL_SWITCH``, negative client
ids). The OMS cancels them like any cancel; the strategies see the exchange's CANCEL reports for
their orders, and REJECT(kill_switch) for anything new they send. While the switch stays on, open
orders are rescanned every housekeeping interval, so one whose cancel was refused is cancelled again.

Housekeeping (every ``HOUSEKEEPING_NS``, off the order path): counters and the PnL summary into
shared memory, the trading-day roll, and a state snapshot for the Redis mirror when configured.
"""

from __future__ import annotations

import os
import time

import numpy as np

from hftshm.codes import ControlKind, Reason, TradingState
from hftshm.config import Section
from hftshm.redis_config import RedisConfig
from hftshm.risk import accounting_nb, rehearsal, rings_nb, stage_nb
from hftshm.risk.config import RiskConfig
from hftshm.risk.control import KILL_SWITCH_WORD, ControlBlock
from hftshm.risk.engine import RiskEngine
from hftshm.runtime import lockstep
from hftshm.risk.restart import RiskRestart, note_day, save_start_state
from hftshm.runtime.worker import Worker, WorkerContext

HOUSEKEEPING_NS = 100_000_000
MARK_BATCH = 4096
REPORT_BATCH = 4096
INTENT_BATCH = 1024
KILL_CANCEL_BATCH = 1024

_REASON_COUNTERS = (Reason.MAX_ORDER_SIZE, Reason.MAX_POSITION, Reason.MAX_DAILY_LOSS, Reason.THROTTLE,
                    Reason.PRICE_BAND, Reason.KILL_SWITCH, Reason.TRADING_HALTED, Reason.REDUCE_ONLY,
                    Reason.UNKNOWN_SYMBOL, Reason.BAD_PRICE, Reason.BAD_QTY, Reason.MALFORMED_INTENT,
                    Reason.MAX_OPEN_ORDERS, Reason.DUPLICATE_CLIENT_ORDER_ID, Reason.UNKNOWN_ORDER)
_BLOCK_COUNTERS = ("checks", "approved", "rejected", "kill_cancels", "open_orders")
_ACCOUNT_COUNTERS = ("reports", "reports_unknown_order", "reports_bad", "marks", "reports_replayed")


class RiskWorker(Worker):
    COUNTER_NAMES = (_BLOCK_COUNTERS + _ACCOUNT_COUNTERS + ("backpressure_cycles", "controls")
                     + tuple(f"reject_{r.name.lower()}" for r in _REASON_COUNTERS))
    HISTOGRAMS = ("hop",)  # strategy publish -> risk publish of the order or reject, ns
    _C = {name: index for index, name in enumerate(COUNTER_NAMES)}

    def __init__(self, batch: int = INTENT_BATCH):
        self.batch = int(batch)

    # -- lifecycle -------------------------------------------------------------------------------

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        log = ctx.log
        config = ctx.config
        if config is not None:
            risk_config: RiskConfig = config.risk
            symbols = config.symbols
            redis_config: RedisConfig = config.redis
        else:  # unit tests: the worker's params stand in for the config file
            from hftshm.symbols import DEFAULT_SYMBOLS

            risk_config = RiskConfig.from_section(Section("risk", ctx.params.get("risk", {})))
            symbols = DEFAULT_SYMBOLS
            redis_config = RedisConfig.from_section(Section("redis", ctx.params.get("redis", {})))
        if ctx.control is None:
            log.warning("no shared-memory control block: the kill switch and trading state can only be "
                        "changed through control messages%s", " or Redis" if redis_config.enabled else "")
        self.control: ControlBlock = ctx.control if ctx.control is not None else ControlBlock.private()
        self.engine = RiskEngine(risk_config, symbols, self.control)
        self.state = self.engine.state
        self.engine.warm_up()
        if self.control.epoch == 0 and self.control.trading_state != risk_config.initial_state:
            self.control.set_trading_state(risk_config.initial_state)

        self._route(ctx)
        # the account row's counts start at zero with the process, the status row keeps the run's: a
        # restarted worker publishes them on top of its predecessor's (the control block's counts
        # live in shared memory and carry on by themselves)
        self._account_before = {name: int(ctx.counters[self._C[name]]) for name in _ACCOUNT_COUNTERS}
        if not lockstep.enabled(ctx):
            # the counters are published every HOUSEKEEPING_NS: a SIGKILL loses what was counted since.
            # Free-running, each report taken off a ring is applied (counted in reports) or skipped as
            # already booked (reports_replayed): the released cursors give the exact total
            self._account_before["reports"] = (sum(ring.consumer_position for ring in self.reports_in)
                                               - self._account_before["reports_replayed"])
        # restarted within the run: rebuild from the OMS's record before the first check (do_work)
        self.restart = RiskRestart.begin(ctx, self.state, self.control, self.orders_out, self.rejects_out,
                                         self.intents_in)
        self.mirror = None
        if redis_config.enabled:
            self._start_mirror(redis_config, log, restore=self.restart is None)
        else:
            log.info("Redis not configured ([redis] url is empty): risk state (positions, PnL, kill switch) "
                     "lives in this process and shared memory; a restart rebuilds it from the OMS database")
        if self.restart is None and ctx.config is not None:
            from hftshm.bridge.journal_positions import rebuild_risk

            rebuild_risk(ctx, self.state, self.control)  # [bridge] recover_from: another platform's positions
            save_start_state(ctx, self.state, self.control)
            from hftshm.runtime.symbol_summary import risk_positions_path

            risk_positions_path(ctx.run_dir, ctx.name).unlink(missing_ok=True)  # the last run's, not this one's
        self.control.array[0]["worker_pid"] = os.getpid()

        self._decisions = np.zeros(self.batch, dtype=np.uint16)
        self._targets = np.zeros(self.batch, dtype=np.int64)
        self._hop = ctx.histograms.get("hop", np.zeros(0, dtype=np.int64))
        self._kill_on = False
        self._kill_cursor = -1  # table slot the kill-cancel scan continues from; -1: no scan running
        self._kill_ids = 0
        self._next_housekeeping_ns = 0
        self._lockstep = lockstep.enabled(ctx)
        self._report_watermark_ns = np.iinfo(np.int64).min
        self._compile_ring_kernels()
        log.info("risk limits: %s", self.state.limits())

    def _route(self, ctx: WorkerContext) -> None:
        def by_layout(rings: dict, layout: str) -> list:
            return [r for r in rings.values() if r.layout.name == layout]

        self.marks_in = by_layout(ctx.inputs, "book_snapshot")
        self.reports_in = by_layout(ctx.inputs, "execution_report")
        self.intents_in = by_layout(ctx.inputs, "order_intent")
        self.control_in = by_layout(ctx.inputs, "control_message")
        orders = by_layout(ctx.outputs, "order")
        rejects = by_layout(ctx.outputs, "execution_report")
        if len(orders) != 1 or len(rejects) != 1:
            raise RuntimeError(f"worker {ctx.name!r} needs exactly one order output ring (to the OMS) and one "
                               f"execution_report output ring (rejects to the strategies); found "
                               f"{[r.name for r in orders]} and {[r.name for r in rejects]}")
        self.orders_out = orders[0]
        self.rejects_out = rejects[0]
        if not self.intents_in:
            ctx.log.warning("risk has no order_intent input ring: nothing will be checked")
        if not self.marks_in:
            ctx.log.warning("risk has no book_snapshot input ring: without marks every limit order is "
                            "rejected by the price band and unrealized PnL stays 0")

    def _start_mirror(self, redis_config: RedisConfig, log, restore: bool = True) -> None:
        from hftshm.risk.redis_mirror import RedisMirror

        try:
            mirror = RedisMirror(redis_config, self.control, log)
            snapshot = mirror.load()
        except Exception as exc:  # an unreachable Redis must not stop trading
            self.control.array[0]["redis_status"] = -1
            log.error("Redis at %s unreachable at start (%s): starting from zero state, not mirroring",
                      redis_config.url, exc)
            return
        if snapshot is not None and restore:
            same_run = snapshot.get("control_created_unix_ns") == self.control.created_unix_ns
            for note in self.state.restore(snapshot, self.control, restore_open_orders=same_run):
                log.info("restored from Redis: %s", note)
            log.info("restored risk state from Redis (%s): %s", redis_config.key("risk", "state"),
                     {p["symbol"]: p["position"] for p in self.state.positions()})
        mirror.start(self.state.limits())
        self.mirror = mirror
        log.info("mirroring risk state to Redis %s every %.0f ms under %s", redis_config.url,
                 redis_config.mirror_interval_s * 1e3, redis_config.key())

    def _compile_ring_kernels(self) -> None:
        # first calls compile (or load from cache) before the first intent arrives; rings are empty
        # here, so these calls only poll
        s = self.state
        for ring in self.marks_in:
            rings_nb.consume_marks(ring.ctrl, ring.records, 0, s.symbols, s.account, self.control.words)
        for ring in self.reports_in:
            rings_nb.consume_reports(ring.ctrl, ring.records, 0, s.symbols, s.account, s.table, self.control.words,
                                     s.replayed)
        for ring in self.intents_in:
            self._consume_intents(ring, 0)
        rings_nb.publish_kill_cancels(s.table, len(s.table), self.orders_out.ctrl, self.orders_out.records, 0,
                                      np.int64(0), np.int64(-1))

    def on_drain(self) -> int:
        # keep checking and forwarding what is queued; the runner stops asking once this returns 0
        if self.restart is not None:
            return self._restart_step() or 1  # queued intents wait for the rebuild, not for nothing
        return self.do_work()

    def on_close(self) -> None:
        if getattr(self, "restart", None) is not None:
            self.restart.close()  # stopped before the rebuild finished: publish nothing, the next start rebuilds
            self.restart = None
        else:
            self._housekeeping(time.monotonic_ns(), force=True)
            if self.ctx.config is not None:  # the run summary's per-symbol risk figures
                from hftshm.runtime.symbol_summary import write_risk_positions

                write_risk_positions(self.ctx.run_dir, self.ctx.name, self.state)
        if self.mirror is not None:
            self.mirror.stop()
            self.mirror = None
        if self.control is not None and self.control.array is not None:
            self.control.array[0]["worker_pid"] = 0

    # -- duty cycle ------------------------------------------------------------------------------

    def do_work(self) -> int:
        if self.restart is not None:
            return self._restart_step()
        s = self.state
        ctl = self.control.words
        work = 0
        # has_records: an idle ring costs two loads, not a kernel call with a dozen arguments
        for ring in self.reports_in:
            if ring.has_records():
                work += self._take_reports(ring)
        for ring in self.marks_in:
            if ring.has_records():
                work += rings_nb.consume_marks(ring.ctrl, ring.records, MARK_BATCH, s.symbols, s.account, ctl)
        if self.control_in:
            work += self._controls()
        if ctl[KILL_SWITCH_WORD] != 0 or self._kill_on:
            work += self._kill_switch()
        for ring in self.intents_in:
            if not ring.has_records():
                continue
            limit = self._covered_intents(ring) if self._lockstep else self.batch
            if limit == 0:
                continue
            n = self._consume_intents(ring, limit)
            if n == rings_nb.BACKPRESSURE:
                self.ctx.counters[self._C["backpressure_cycles"]] += 1  # the OMS is behind: intents wait in their ring
            else:
                work += n
        now = time.monotonic_ns()
        if now >= self._next_housekeeping_ns:
            self._housekeeping(now)
        return work

    # -- the compiled trading cycle (hftshm.runtime.trading_cycle) ---------------------------------

    def compiled_stage(self, force: bool = False):
        """This worker's ``risk.stage_nb.RiskStage`` while its duty cycle is the plain ring step, or
        None while it needs Python (a restart's rebuild, a deterministic run, the kill switch).
        ``force``: the bundle whatever the state (to compile the cycle for its types at start)."""
        if not self.intents_in or not self.reports_in or not self.marks_in:
            return None
        if not force and (self.restart is not None or self._lockstep or self._kill_on
                          or self.control.words[KILL_SWITCH_WORD] != 0):
            return None
        s = self.state
        cached = getattr(self, "_compiled", None)
        if cached is not None and cached.replayed is s.replayed:
            return cached  # the same arrays: building the bundle again costs microseconds per slice

        def pair(rings):
            return tuple(r.ctrl for r in rings), tuple(r.records for r in rings)

        report_ctrls, report_records = pair(self.reports_in)
        mark_ctrls, mark_records = pair(self.marks_in)
        intent_ctrls, intent_records = pair(self.intents_in)
        stage = stage_nb.RiskStage(
            report_ctrls, report_records, mark_ctrls, mark_records, intent_ctrls, intent_records,
            self.orders_out.ctrl, self.orders_out.records, self.rejects_out.ctrl, self.rejects_out.records,
            self._decisions, self._targets, s.symbols, s.strategies, s.account, s.table, s.replayed,
            self.control.words, self._hop, self.ctx.counters, self._C["backpressure_cycles"], self.batch, None)
        self._twin = rehearsal.twin_of(stage)
        if not self._twin.matched:
            self.ctx.log.warning("risk: the rehearsal twin's arrays are not typed as the live ones: no rehearsals")
        self._compiled = stage._replace(rehearsal=self._twin.bundle)
        return self._compiled

    @property
    def rehearsals(self) -> int:
        """Rehearsals of the check on the idle compiled stage's twin (``risk.rehearsal_nb``)."""
        twin = getattr(self, "_twin", None)
        return twin.rehearsals if twin is not None else 0

    def compiled_housekeeping(self, now_ns: int) -> int:
        """What ``do_work`` does besides the ring step, between compiled slices."""
        work = self._controls() if self.control_in else 0
        if now_ns >= self._next_housekeeping_ns:
            self._housekeeping(now_ns)
        return work

    def _take_reports(self, ring) -> int:
        s = self.state
        if not self._lockstep:
            return rings_nb.consume_reports(ring.ctrl, ring.records, REPORT_BATCH, s.symbols, s.account, s.table,
                                            self.control.words, s.replayed)
        # deterministic runs (hftshm.runtime.lockstep): the OMS's watermarks say up to which market
        # time every report has arrived; they are not about an order
        view = ring.poll(REPORT_BATCH)
        self._report_watermark_ns = lockstep.last_watermark(view, self._report_watermark_ns)
        reports = lockstep.without_watermarks(view)
        if len(reports):
            accounting_nb.apply_reports(reports, 0, -1, len(reports), s.symbols, s.account, s.table,
                                        self.control.words)
        ring.release(len(view))
        return len(view)

    def _covered_intents(self, ring) -> int:
        """Deterministic runs: the leading intents whose market time the report watermark covers, so
        every check sees the reports (and marks) a backtest's check at that time would."""
        view = ring.poll(self.batch)
        covered = view["market_ts_ns"] <= self._report_watermark_ns
        return len(view) if covered.all() else int(np.argmin(covered))

    def _restart_step(self) -> int:
        if not self.restart.step():
            return 0
        self.restart = None
        self._housekeeping(time.monotonic_ns(), force=True)  # show the rebuilt positions and PnL now
        return 1

    def _consume_intents(self, ring, max_n: int) -> int:
        s = self.state
        return rings_nb.consume_intents(
            ring.ctrl, ring.records, max_n, self.orders_out.ctrl, self.orders_out.records, self.rejects_out.ctrl,
            self.rejects_out.records, time.monotonic_ns(), self._decisions, self._targets, s.symbols, s.strategies,
            s.account, s.table, self.control.words, self._hop)

    def _kill_switch(self) -> int:
        on = bool(self.control.array[0]["kill_switch"])
        if on and not self._kill_on:
            self.ctx.log.warning("KILL SWITCH ON: rejecting new orders, cancelling %d open order(s)",
                                 int(self.state.account[0]["open_orders"]))
            self._kill_cursor = 0
        elif not on and self._kill_on:
            self.ctx.log.warning("kill switch off: new orders are checked normally again")
            self._kill_cursor = -1
        self._kill_on = on
        if self._kill_cursor < 0:
            return 0
        s = self.state
        first_id = -(time.time_ns() + self._kill_ids)
        cursor, written = rings_nb.publish_kill_cancels(s.table, self._kill_cursor, self.orders_out.ctrl,
                                                        self.orders_out.records, KILL_CANCEL_BATCH,
                                                        np.int64(s.account[0]["last_market_ns"]), np.int64(first_id))
        self._kill_ids += written
        self.control.array[0]["kill_cancels"] += written
        self._kill_cursor = -1 if cursor >= len(s.table) else int(cursor)
        return written

    def _controls(self) -> int:
        done = 0
        for ring in self.control_in:
            view = ring.poll(16)
            for message in view:
                kind = int(message["kind"])
                if kind == ControlKind.KILL_SWITCH:
                    self.control.set_kill_switch(bool(message["value_i"]))
                elif kind == ControlKind.TRADING_STATE:
                    try:
                        self.control.set_trading_state(TradingState(int(message["value_i"])))
                    except ValueError:
                        self.ctx.log.error("control message with unknown trading state %d ignored",
                                           int(message["value_i"]))
                done += 1
            ring.release(len(view))
        self.ctx.counters[self._C["controls"]] += done
        return done

    def _housekeeping(self, now_ns: int, force: bool = False) -> None:
        self._next_housekeeping_ns = now_ns + HOUSEKEEPING_NS
        s = self.state
        acct = s.account[0]
        clock = int(acct["last_market_ns"]) if int(acct["use_market_clock"]) else time.time_ns()
        if clock > 0 and s.roll_day(clock, self.control) and self.ctx.config is not None:
            note_day(self.ctx, s, self.control)
        if self._kill_on and self._kill_cursor < 0 and int(acct["open_orders"]) > 0:
            self._kill_cursor = 0  # rescan: an order whose cancel was refused is cancelled again
        s.publish_summary(self.control)
        counters = self.ctx.counters
        record = self.control.array[0]
        for name in _BLOCK_COUNTERS:
            counters[self._C[name]] = record[name]
        for name in _ACCOUNT_COUNTERS:
            counters[self._C[name]] = self._account_before[name] + acct[name]
        reject_counts = record["reject_counts"]
        for reason in _REASON_COUNTERS:
            counters[self._C[f"reject_{reason.name.lower()}"]] = reject_counts[reason.value]
        if self.mirror is not None:
            snapshot = s.snapshot(self.control)
            positions = {p["symbol"]: p["position"] for p in s.positions()}
            self.mirror.offer(snapshot, s.summary(), positions)
