"""``ExchangeWorker``: the replay fill model (``ExchangeSimulator``) as a pipeline stage.

Rings, found by layout: in ``order`` (from the OMS) and ``market_event`` (from the feed); out every
``execution_report`` ring (normally one, to the OMS). Each duty cycle: publish any reports a full
output ring held back (and take no input until they are out: backpressure, nothing dropped), then
one batch of orders, then one batch of market events. Reports are stamped ``local_ts_ns`` = the
monotonic publish time (the pipeline's hop clock) and a dense ``seq`` per output ring; their
``exch_ts_ns`` is simulated market time.

Parity (``parity = true``): the worker applies a market event only when no order that should come
before it can still be on its way, i.e. below ``ExchangeSimulator.safe_horizon_ns(W)``, where W is
the upstream watermark: the market time up to which upstream has sent every order it will send.
Watermarks travel in the order ring, in order, as records with ``action = 0`` (no order; their
``market_ts_ns`` is W), so a watermark can never overtake the orders it covers. With parity off the
worker applies events as they come (a live-like run; fills then depend on timing).
On drain, orders still in flight are applied at their arrival times.

Deterministic runs (``[platform] deterministic``): one market message per step, reports held until
their simulated arrival and sent with a watermark after each message, the market closed at the
end of data (``hftshm.exchange.lockstep``).

A restart is a new exchange session (``hftshm.exchange.session``): the restarted worker announces
it to the OMS and ignores the orders sent into the dead session, until the OMS answers.
"""

from __future__ import annotations

import time

import numpy as np

from hftshm.codes import Action
from hftshm.exchange import fill_model_nb as fm
from hftshm.exchange import lockstep as exchange_lockstep
from hftshm.exchange import stage_nb
from hftshm.exchange.config import ExchangeConfig
from hftshm.exchange.session import VenueSession
from hftshm.exchange.simulator import ExchangeSimulator
from hftshm.exchange.warmup import warm_exchange
from hftshm.runtime import lockstep
from hftshm.runtime.worker import Worker, WorkerContext

WATERMARK_ACTION = 0  # an order-ring record with this action only carries the upstream watermark

COUNTERS = ("orders_in", "events_in", "reports_out", "fills", "rejects", "late_orders", "open_orders_gauge",
            "pending_orders_gauge", "backlog_gauge", "horizon_waits", "watermarks", "clock_ms_gauge",
            "session_gauge", "orders_ignored")  # orders_ignored: sent into an ended session (before a restart)
_C = {name: i for i, name in enumerate(COUNTERS)}
_RUN_TOTALS = ("fills", "rejects", "late_orders", "orders_ignored")  # counted across restarts


class ExchangeWorker(Worker):
    COUNTER_NAMES = COUNTERS
    HISTOGRAMS = ("hop",)  # OMS publish -> exchange, per order

    def __init__(self, batch: int = 4096, parity: bool = False, seed: int | None = None):
        """``batch``: records per ring poll; ``parity``: hold market events behind the upstream watermark;
        ``seed``: latency seed (default ``[exchange] seed``)."""
        if batch < 1:
            raise ValueError(f"exchange worker batch must be >= 1, got {batch}")
        self.batch = int(batch)
        self.parity = bool(parity)
        self.seed = seed
        self.watermark_ns = np.iinfo(np.int64).min
        self._stage = None  # the compiled trading cycle's bundle, built once (compiled_stage)

    def on_start(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.orders_in = _by_layout(ctx.inputs, "order", ctx.name, "input")
        self.market_in = _by_layout(ctx.inputs, "market_event", ctx.name, "input")
        self.reports_out = [ring for ring in ctx.outputs.values() if ring.layout.name == "execution_report"]
        if not self.reports_out:
            raise ValueError(f"worker {ctx.name!r} needs an execution_report output ring; it has {sorted(ctx.outputs)}")
        config = getattr(ctx.config, "exchange", None) or ExchangeConfig()
        symbols = getattr(ctx.config, "symbols", None)
        warm_exchange(ExchangeSimulator(config, symbols), self.orders_in.layout, self.market_in.layout)
        self.sim = ExchangeSimulator(config, symbols, self.seed)
        self.sim.make_resident()  # the fill model's page faults now, not inside the stage while it trades
        self.counters = ctx.counters
        self._hop = ctx.histograms.get("hop")
        self._seq = [ring.producer_position for ring in self.reports_out]  # dense across restarts
        self._backlog: list[list[np.ndarray]] = [[] for _ in self.reports_out]
        self._iota = np.arange(max(ring.capacity for ring in self.reports_out), dtype=np.int64)
        self._lockstep = lockstep.enabled(ctx)
        self._held = exchange_lockstep.HeldReports()
        self._closed = False
        self._last_message_ns = 0
        # the simulator's totals restart from zero with the process; the status row keeps the run's
        self._totals_before = {name: int(self.counters[_C[name]]) for name in _RUN_TOTALS}
        if not self._lockstep:
            # free-running, events_in is bumped just after the market ring's release (here and in
            # stage_nb.take_market): a SIGKILL between the two, e.g. while the release wakes a feed
            # parked on the full ring, left the count one batch short of what the dead process
            # applied and released. The released cursor is the record of what was consumed; a
            # restart counts from it. (Deterministic runs count before the release and leave the
            # end-of-data marker uncounted: their count stays as it is.)
            self.counters[_C["events_in"]] = self.market_in.consumer_position
            # reports_out likewise: counted when staged (a kill loses the backlog, counted but never
            # written) or just after a ring commit (stage_nb.flush: a kill in between leaves it short).
            # Free-running, every report written goes to every report ring: the producer cursor is
            # the count (deterministic runs also write uncounted watermarks there)
            self.counters[_C["reports_out"]] = self.reports_out[0].producer_position
        self.session = VenueSession(int(self.counters[_C["session_gauge"]]) + 1)
        self.counters[_C["session_gauge"]] = self.session.number
        if self.session.announces:
            ctx.log.warning("exchange: session %d after a restart: the orders of the earlier session are gone "
                            "(cancel-on-disconnect); orders are ignored until the OMS confirms", self.session.number)
            self._publish(self.session.announcement(time.time_ns()))

    # ------------------------------------------------------------------ duty cycle
    def do_work(self) -> int:
        if self._stage is not None:
            self._adopt_stage_backlog()
        work = self._flush_backlog()
        if any(self._backlog):
            return work  # an output ring is full: take no more input until it drains
        if self._lockstep:
            return work + self._lockstep_step()
        view = self.orders_in.poll(self.batch)
        if len(view):
            now = time.monotonic_ns()
            if self._hop is not None:
                from hftshm.metrics.histogram_nb import record_many

                record_many(self._hop, now - view["ts_ns"])
            self._publish(self._take_orders(view))
            self.orders_in.release(len(view))
            work += len(view)
        events = self.market_in.poll(self.batch)
        if len(events):
            n = self._applicable(events)
            if n < len(events):
                self.counters[_C["horizon_waits"]] += 1
            if n:
                self._publish(self.sim.on_market(events[:n]))
                self.market_in.release(n)
                self.counters[_C["events_in"]] += n
                work += n
        if work:
            self._update_counters()
        return work

    def on_drain(self) -> int:
        work = self.do_work()
        if work == 0 and not any(self._backlog) and self.sim.pending:
            # upstream has stopped: the orders still in flight arrive at their own times
            reports = self.sim.flush()
            work = len(reports)
            self._publish(reports)
            self._update_counters()
        return work

    def _lockstep_step(self) -> int:
        """Orders in, then one market message; reports go out when due, then a watermark."""
        work = 0
        view = self.orders_in.poll(self.batch)
        if len(view):
            self._record_hops(view)
            if self._closed:
                self._publish(exchange_lockstep.market_closed_rejects(view, self.sim.clock_ns))
                cancels = view[view["action"] == Action.CANCEL]
                if len(cancels):
                    self.counters[_C["orders_in"]] += len(cancels)
                    self._publish(self.sim.on_orders(cancels))  # those already due are answered at once
                    self._publish(self.sim.flush())
            else:
                self._held.push(self._take_orders(view))
            self.orders_in.release(len(view))
            work += len(view)
        if self._closed:
            if work:
                self._update_counters()
            return work
        events = self.market_in.poll(self.batch)
        if not len(events):
            return work
        n = lockstep.message_end(events)
        whole = n > 0
        if not whole:
            n = len(events)  # the message runs past the ring's end: the rest comes with the next poll
        part = events[:n]
        if whole and lockstep.is_end_of_data(part):
            until = exchange_lockstep.drain_until(self._last_message_ns)
            self._held.push(self.sim.advance_to(until))
            self._publish(self._held.take_all())
            self._publish(exchange_lockstep.watermark(until), count=False)
            self._closed = True
        else:
            self._held.push(self.sim.on_market(part))
            self.counters[_C["events_in"]] += n
            if whole:
                now = int(part["exch_ts_ns"][-1])
                self._last_message_ns = now
                self._publish(self._held.take_due(now))
                self._publish(exchange_lockstep.watermark(now), count=False)
        self.market_in.release(n)
        self._update_counters()
        return work + n

    def _record_hops(self, view: np.ndarray) -> None:
        if self._hop is not None:
            from hftshm.metrics.histogram_nb import record_many

            record_many(self._hop, time.monotonic_ns() - view["ts_ns"])

    # ------------------------------------------------------------------ the compiled trading cycle
    def compiled_stage(self, force: bool = False):
        """``exchange.stage_nb.ExchangeStage`` for the free-running case (no parity hold-back, not
        deterministic, the session logged on, nothing held back by a full ring), else None.
        ``force``: whatever the state."""
        if not force and (self._lockstep or self.parity or not self.session.logged_on or any(self._backlog)):
            return None
        if self._stage is None:
            S, pend, pend_arrival, room_per_order = self.sim.kernel_state
            index = stage_nb.ExchangeCounters(_C["orders_in"], _C["events_in"], _C["reports_out"], _C["watermarks"])
            self._watermark = np.array([self.watermark_ns], dtype=np.int64)
            self._stage = stage_nb.ExchangeStage(
                self.orders_in.ctrl, self.orders_in.records, self.market_in.ctrl, self.market_in.records,
                tuple(r.ctrl for r in self.reports_out), tuple(r.records for r in self.reports_out), S, pend,
                pend_arrival, room_per_order, np.zeros(len(self.sim._out), dtype=self.sim._out.dtype),
                np.zeros(stage_nb.OutQueue.SIZE, dtype=np.int64),
                np.zeros(self.batch, dtype=self.orders_in.records.dtype), self._watermark,
                self._hop if self._hop is not None else np.zeros(0, dtype=np.int64), self.counters, index, self.batch)
        elif self._stage.pend is not self.sim.kernel_state[1]:
            self._stage = None  # the pending queue grew on the Python path: rebuild
            return self.compiled_stage(force)
        return self._stage

    def _adopt_stage_backlog(self) -> None:
        """Reports the compiled stage staged but could not publish yet go first on the Python path;
        the rings' dense ``seq`` continues from what the stage published."""
        self._seq = [ring.producer_position for ring in self.reports_out]
        q = self._stage.out_queue
        head, tail = int(q[stage_nb.OutQueue.HEAD]), int(q[stage_nb.OutQueue.TAIL])
        if tail > head:
            staged = self._stage.out[head:tail].copy()
            staged["local_ts_ns"] = time.monotonic_ns()
            self.counters[_C["reports_out"]] += len(staged)
            for k in range(len(self.reports_out)):
                self._backlog[k].insert(0, staged if k == 0 else staged.copy())
        q[:] = 0

    def compiled_housekeeping(self, now_ns: int) -> int:
        self.watermark_ns = max(self.watermark_ns, int(self._watermark[0]))
        self._update_counters()
        return 0

    # ------------------------------------------------------------------ internals
    def _take_orders(self, view: np.ndarray) -> np.ndarray:
        marks = view["action"] == WATERMARK_ACTION
        if marks.any():
            self.watermark_ns = max(self.watermark_ns, int(view["market_ts_ns"][marks].max()))
            self.counters[_C["watermarks"]] += int(marks.sum())
            view = view[~marks]
        view = self.session.admit(view)
        self.counters[_C["orders_in"]] += len(view)
        return self.sim.on_orders(view) if len(view) else None

    def _applicable(self, events: np.ndarray) -> int:
        """How many leading events may be applied now (all of them unless parity holds them back)."""
        if not self.parity:
            return len(events)
        if self.watermark_ns == np.iinfo(np.int64).min:
            return 0
        horizon = self.sim.safe_horizon_ns(self.watermark_ns)
        effective = np.maximum.accumulate(np.maximum(events["exch_ts_ns"], self.sim.clock_ns))
        return int(np.searchsorted(effective, horizon, side="left"))

    def _publish(self, reports: np.ndarray | None, count: bool = True) -> None:
        if reports is None or not len(reports):
            return
        reports["local_ts_ns"] = time.monotonic_ns()
        if count:
            self.counters[_C["reports_out"]] += len(reports)
        for k, ring in enumerate(self.reports_out):
            if self._backlog[k]:
                self._backlog[k].append(reports.copy())
                continue
            done = self._write(k, ring, reports)
            if done < len(reports):
                self._backlog[k].append(reports[done:].copy())  # the view is reused by the next call

    def _write(self, k: int, ring, reports: np.ndarray) -> int:
        done = 0
        while done < len(reports):
            view = ring.claim(len(reports) - done)
            n = len(view)
            if n == 0:
                break
            view[:] = reports[done:done + n]
            np.add(self._iota[:n], self._seq[k], out=view["seq"])
            self._seq[k] += n
            ring.commit(n)
            done += n
        if done:
            ring.wake_consumer()
        return done

    def _flush_backlog(self) -> int:
        work = 0
        for k, ring in enumerate(self.reports_out):
            pending = self._backlog[k]
            while pending:
                done = self._write(k, ring, pending[0])
                work += done
                if done < len(pending[0]):
                    pending[0] = pending[0][done:]
                    break
                pending.pop(0)
        return work

    def _update_counters(self) -> None:
        words = self.sim._sw
        c = self.counters
        before = self._totals_before
        c[_C["fills"]] = before["fills"] + words[fm.SW_FILLS]
        c[_C["rejects"]] = before["rejects"] + words[fm.SW_REJECTS]
        c[_C["late_orders"]] = before["late_orders"] + words[fm.SW_LATE_ORDERS]
        c[_C["orders_ignored"]] = before["orders_ignored"] + self.session.ignored
        c[_C["open_orders_gauge"]] = words[fm.SW_N_ACTIVE]
        c[_C["pending_orders_gauge"]] = self.sim.pending
        c[_C["backlog_gauge"]] = sum(len(part) for parts in self._backlog for part in parts)
        clock = self.sim.clock_ns
        c[_C["clock_ms_gauge"]] = clock // 1_000_000 if clock > 0 else 0


def _by_layout(rings: dict, layout: str, worker: str, what: str):
    found = [ring for ring in rings.values() if ring.layout.name == layout]
    if len(found) != 1:
        raise ValueError(f"worker {worker!r} needs exactly one {what} ring of layout {layout!r}; "
                         f"it has {[(name, ring.layout.name) for name, ring in rings.items()]}")
    return found[0]
