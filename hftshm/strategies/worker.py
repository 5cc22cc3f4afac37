"""``StrategyWorker``: the platform stage that turns market data into order intents.

Inputs (found by record layout, whatever the topology names the rings):

* ``market_event`` rings (the feed) -> ``on_tick`` batches;
* ``book_snapshot`` rings (the feed's L2 book) -> ``on_book`` (newest per symbol per batch);
* ``execution_report`` rings: rejects from risk, acks/fills/cancels from the OMS;
* a ``control_message`` ring (``control.<worker>``): STRATEGY_ADD / REMOVE / PAUSE / RESUME.

Output: the ``order_intent`` ring to risk. Intents are published after every batch; when that
ring is full the worker stops taking market data (reports and control still flow) until it drains,
so nothing is lost and nothing queues without bound.

Deterministic runs (``[platform] deterministic``, hftshm.runtime.lockstep): one market message per
step, taken only once the OMS's report watermark has reached its time; the reports up to it are
handed over first, at the message's market time, then the events and the book, and the intents go
out before any input is released. After the feed's end-of-data marker the worker runs as usual.

Shared memory: a ``strategy_status`` table (one row per strategy) named
``<run prefix>strategy_status.<worker>``, created here and unlinked on close; ``hftshm strategies
list`` reads it. Hot-add requests carry more than a control record holds (class, parameters), so
``hftshm strategies add`` writes them as JSON under ``<run_dir>/strategies/requests/<n>.json`` and
sends STRATEGY_ADD with ``value_i = n``; the worker answers in ``<n>.result.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from hftshm.codes import ControlKind
from hftshm.config import Section
from hftshm.runtime import lockstep
from hftshm.runtime.worker import Worker, WorkerContext
from hftshm.strategies import latency_nb, precompile
from hftshm.strategies.base import StrategyError
from hftshm.strategies.config import StrategiesConfig
from hftshm.strategies.restart import StrategyRestart
from hftshm.strategies.runtime import STATUS_LAYOUT, StrategyHost, status_rows
from hftshm.strategies.warmup import rehearse, warm_latency_kernels

EVENT_BATCH = 4096
BOOK_BATCH = 1024
REPORT_BATCH = 1024
CONTROL_BATCH = 16
STATUS_INTERVAL_NS = 50_000_000


def status_segment_name(prefix: str, worker: str) -> str:
    return f"{prefix}strategy_status.{worker}"


def requests_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "strategies" / "requests"


def registry_path(run_dir: str | Path, worker: str) -> Path:
    """JSON list of this worker's strategies (name, id, class, symbol, params, state, last error)."""
    return Path(run_dir) / "strategies" / f"{worker}.json"


class StrategyWorker(Worker):
    COUNTER_NAMES = ("events", "books", "reports", "intents", "controls", "strategy_errors", "running_strategies",
                     "backpressure_cycles", "orphan_reports")
    _C = {name: index for index, name in enumerate(COUNTER_NAMES)}
    HISTOGRAMS = ("book_age", "tick_to_intent")  # hftshm.strategies.latency_nb

    def __init__(self, status_segment: str = "", first_client_order_id: int = 0):
        self._status_segment_name = status_segment
        # client order ids must not repeat across restarts (the OMS rejects a reused id): start from
        # the wall clock in microseconds unless told otherwise; a backtest starts from 1
        self._first_coid = first_client_order_id or time.time_ns() // 1000

    # -- lifecycle -------------------------------------------------------------------------------
    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        self.events_in = [r for r in ctx.inputs.values() if r.layout.name == "market_event"]
        self.books_in = [r for r in ctx.inputs.values() if r.layout.name == "book_snapshot"]
        self.reports_in = [r for r in ctx.inputs.values() if r.layout.name == "execution_report"]
        self.control_in = [r for r in ctx.inputs.values() if r.layout.name == "control_message"]
        intents = [r for r in ctx.outputs.values() if r.layout.name == "order_intent"]
        if len(intents) != 1:
            raise RuntimeError(f"worker {ctx.name!r} needs exactly one order_intent output ring, found "
                               f"{[r.name for r in intents]}")
        self.intents_out = intents[0]
        self.symbols = ctx.config.symbols if ctx.config is not None else None
        raw = ctx.config.raw.get("strategies", {}) if ctx.config is not None else ctx.params.get("strategies", {})
        from hftshm.symbols import DEFAULT_SYMBOLS

        self.symbols = self.symbols or DEFAULT_SYMBOLS
        self.config = StrategiesConfig.from_section(Section("strategies", raw), self.symbols)
        self._segment = None
        status = self._create_status(ctx)
        self.host = StrategyHost(self.symbols, status, order_capacity=self.config.order_table_size,
                                 first_client_order_id=self._first_coid)
        for inst in self.config.enabled:
            try:
                self.host.add(inst.name, inst.spec, inst.symbol, inst.params, inst.strategy_id)
            except StrategyError as exc:
                # one broken strategy must not keep the others (or the platform) from starting
                ctx.log.error("%s; not started", exc)
        rehearse(self.host, ctx.log)  # compile the strategies' kernels now, not at the first book
        self._compiling: dict = {}  # hot-add request id -> the process compiling its strategy
        self._status_due = False
        self._intent_seq = self.intents_out.producer_position  # dense per ring, across restarts too
        self._next_status_ns = 0
        self._lockstep = lockstep.enabled(ctx)
        self._ended = False
        self._partial = None  # deterministic: the first part of a message that wrapped the ring's end
        self._held_reports: list = [None] * len(self.reports_in)  # deterministic: reports not yet handed over
        if self._lockstep and len(self.events_in) != 1:
            raise RuntimeError(f"worker {ctx.name!r}: a deterministic run needs exactly one market_event input "
                               f"ring, found {[r.name for r in self.events_in]}")
        self.counters = ctx.counters
        # published by assignment (_status): a restarted worker's host counts on from the status row's
        self.host.orphan_reports = int(self.counters[self._C["orphan_reports"]])
        if not self._lockstep:
            # free-running, the market-data counts are bumped just after each ring's release (here and
            # in strategies_stage_nb): a SIGKILL between the two left them short of what the dead
            # process took. The released cursors are the record of it; a restart counts from them, as
            # the exchange does (deterministic runs release a wrapped message's first part uncounted)
            self.counters[self._C["events"]] = sum(ring.consumer_position for ring in self.events_in)
            self.counters[self._C["books"]] = sum(ring.consumer_position for ring in self.books_in)
            # reports the same way; intents are counted just after their ring commit: the producer
            # cursor is the count (only this worker writes the ring)
            self.counters[self._C["reports"]] = sum(ring.consumer_position for ring in self.reports_in)
            self.counters[self._C["intents"]] = self.intents_out.producer_position
        self._book_age = ctx.histograms.get("book_age", np.zeros(0, dtype=np.int64))
        self._tick_to_intent = ctx.histograms.get("tick_to_intent", np.zeros(0, dtype=np.int64))
        warm_latency_kernels(self._book_age, self._tick_to_intent)
        self._write_registry()
        # restarted within the run: rebuild the portfolios from the OMS's record before any data (do_work)
        self.restart = StrategyRestart.begin(ctx, self.host, self.intents_out)
        if self.restart is None and ctx.config is not None:
            from hftshm.bridge.journal_positions import rebuild_strategies

            rebuild_strategies(ctx, self.host)  # [bridge] recover_from: another platform's positions

    def _create_status(self, ctx: WorkerContext) -> np.ndarray:
        from hftshm.transport.segment import Segment

        name = self._status_segment_name or self._derive_status_name(ctx)
        if not name:
            return STATUS_LAYOUT.zeros(self.config.status_slots)
        size = self.config.status_slots * STATUS_LAYOUT.itemsize
        try:
            self._segment = Segment.create(name, size)
        except FileExistsError:
            # left by a previous incarnation of this worker (restarted by the supervisor). Readers
            # (the run's summary, the dashboard, /metrics) attached it when the platform started and
            # keep that mapping: write into the same segment, or they show the dead worker's last rows
            # for the rest of the run (a SIGKILL'd market maker's position and fees, frozen)
            previous = Segment.adopt(name)  # ours now: this worker unlinks it (on_close)
            if previous.size >= size:
                self._segment = previous
            else:
                previous.unlink()
                previous.close()
                self._segment = Segment.create(name, size)
        self.status_name = name
        status = np.ndarray((self.config.status_slots,), dtype=STATUS_LAYOUT.dtype, buffer=self._segment.buf)
        status[:] = 0
        return status

    @staticmethod
    def _derive_status_name(ctx: WorkerContext) -> str:
        # the supervisor names ring segments "<prefix>ring.<ring name>": reuse its prefix so the
        # status table is found (and swept if stale) with the rest of the run
        for key, ring in {**ctx.inputs, **ctx.outputs}.items():
            suffix = f"ring.{key}"
            if ring.name.endswith(suffix):
                return status_segment_name(ring.name[: -len(suffix)], ctx.name)
        return ""

    def on_drain(self) -> int:
        # The platform is stopping: stop quoting and cancel resting orders now, while risk, the OMS
        # and the exchange still run to carry the cancels and bring their confirmations back here.
        # (on_close does it too, for a worker stopped without a drain, but then nobody reads the replies.)
        if self.restart is not None:
            return self._restart_step() or 1  # the orders to cancel are known once the rebuild is done
        work = 0
        if not getattr(self, "_drain_cancelled", False):
            self._drain_cancelled = True
            for slot in list(self.host.slots.values()):
                self.host.pause(slot.strategy_id)
            work = self.host.outbox_count
        return work + self.do_work()

    def on_close(self) -> None:
        host = getattr(self, "host", None)
        if host is None or getattr(self, "_closed", False):
            return
        self._closed = True
        for process in getattr(self, "_compiling", {}).values():
            process.kill()  # a hot add still compiling when the platform stops: never added
            process.wait()
            process.stderr.close()
        if getattr(self, "restart", None) is not None:
            self.restart.close()  # stopped before the rebuild finished: the next start rebuilds
            self.restart = None
        for slot in list(host.slots.values()):
            host.pause(slot.strategy_id)  # cancels resting orders
        self._publish()
        host.publish_status()
        self._write_registry()
        if self._segment is not None:
            host.status = STATUS_LAYOUT.zeros(len(host.status))  # drop the views before unmapping
            self._segment.unlink()
            self._segment.close()
            self._segment = None

    # -- duty cycle ------------------------------------------------------------------------------
    def do_work(self) -> int:
        if self.restart is not None:
            return self._restart_step()
        if self._lockstep and not self._ended:
            return self._lockstep_work()
        work = self._control()
        for ring in self.reports_in:
            view = ring.poll(REPORT_BATCH)
            if len(view):
                self.host.on_reports(lockstep.without_watermarks(view) if self._lockstep else view)
                ring.release(len(view))
                self.counters[self._C["reports"]] += len(view)
                work += len(view)
                self._status_due = True  # fills move positions: show them soon, not at the next interval
        if self.host.report_filter is not None and self.host.report_filter.done():
            self._drop_report_filter()
        if not self._publish():
            # risk is behind: hold market data until the intents ring drains
            self.counters[self._C["backpressure_cycles"]] += 1
            return work
        for ring in self.events_in:
            view = ring.poll(EVENT_BATCH)
            if len(view):
                self.host.on_events(view)
                ring.release(len(view))
                self.counters[self._C["events"]] += len(view)
                work += len(view)
        for ring in self.books_in:
            view = ring.poll(BOOK_BATCH)
            if len(view):
                latency_nb.record_age(self._book_age, view)
                self.host.on_books(view)
                ring.release(len(view))
                self.counters[self._C["books"]] += len(view)
                work += len(view)
        self._publish()
        if work or self._status_due:
            self._status(idle=not work)
        return work

    def _lockstep_work(self) -> int:
        work = self._control()
        # reports are taken off their rings at once (so the pipeline can settle) and handed over
        # before the next message, at its market time: as a backtest hands over what arrived since
        work += self._hold_reports()
        if not self._publish():
            return work
        ring = self.events_in[0]
        view = ring.poll(EVENT_BATCH)
        if not len(view):
            return work
        n = lockstep.message_end(view)
        if n == 0:  # the message runs past the ring's end: keep this part, the rest follows
            part = view.copy()
            self._partial = part if self._partial is None else np.concatenate([self._partial, part])
            ring.release(len(view))
            return work + len(view)
        message = view[:n] if self._partial is None else np.concatenate([self._partial, view[:n]])
        now = int(message["exch_ts_ns"][-1])
        # every report due by the message's time, in ring order (risk's rejects ring first, as the
        # backtest hands over rejects before the exchange's reports); wait for the OMS's watermark
        self.host.set_time(now)
        covered = False
        for k, held in enumerate(self._held_reports):
            if held is None or covered:
                continue
            mark = lockstep.watermark_index(held, now)
            take = len(held) if mark < 0 else mark + 1
            orders = lockstep.without_watermarks(held[:take])
            if len(orders):
                self.host.on_reports(orders)
                self.counters[self._C["reports"]] += len(orders)
            self._held_reports[k] = held[take:] if take < len(held) else None
            covered = mark >= 0
        if not covered:
            return work  # the exchange has not yet sent everything due by now
        ended = lockstep.is_end_of_data(message)
        if not ended:
            self.host.on_events(message)
            self.counters[self._C["events"]] += len(message)
            for books_ring in self.books_in:
                books = books_ring.poll(BOOK_BATCH)
                if len(books):
                    self.host.on_books(books)
                    books_ring.release(len(books))
                    self.counters[self._C["books"]] += len(books)
        self._publish()  # before the message is released: the feed waits on both
        ring.release(n)
        self._partial = None
        self._ended = ended
        if ended:  # from now on reports go straight to the strategies: hand over what is held
            for k, held in enumerate(self._held_reports):
                if held is not None:
                    self.host.on_reports(lockstep.without_watermarks(held))
                    self._held_reports[k] = None
        self._status()
        return work + n

    def _hold_reports(self) -> int:
        taken = 0
        for k, reports_ring in enumerate(self.reports_in):
            while True:
                view = reports_ring.poll(REPORT_BATCH)
                if not len(view):
                    break
                held = self._held_reports[k]
                self._held_reports[k] = view.copy() if held is None else np.concatenate([held, view])
                reports_ring.release(len(view))
                taken += len(view)
        return taken

    def _drop_report_filter(self) -> None:
        """The restart's report filter has decided every report it had to: without it the compiled
        cycle (which has none) can take this worker again."""
        f = self.host.report_filter
        self.host.report_filter = None
        self.ctx.log.info("restart: every redelivered report seen (%d skipped, %d orders adopted); the "
                          "report filter is off", f.skipped, f.adopted)

    def _restart_step(self) -> int:
        if not self.restart.step():
            return 0
        self.restart = None
        self._write_registry()
        return 1

    def _publish(self) -> bool:
        """Move queued intents to the risk ring; True when none are left."""
        host = self.host
        while host.outbox_count:
            view = self.intents_out.claim(host.outbox_count)
            n = len(view)
            if n == 0:
                return False
            batch = host.take_outbox(n)
            view[:] = batch
            view["seq"] = np.arange(self._intent_seq, self._intent_seq + n)
            view["ts_ns"] = now = time.perf_counter_ns()
            latency_nb.record_intents(self._tick_to_intent, view, now)
            self.intents_out.commit(n)
            self._intent_seq += n
            self.counters[self._C["intents"]] += n
        return True

    def _status(self, idle: bool = False) -> None:
        # off the order path: the table (tens of us) is written every STATUS_INTERVAL_NS while busy,
        # and after reports at the next idle step rather than between an intent and risk's check
        now = time.monotonic_ns()
        if now < self._next_status_ns and not (idle and self._status_due):
            return
        self._status_due = False
        self._next_status_ns = now + STATUS_INTERVAL_NS
        self.host.publish_status()
        if len(self.host.failures) != self.counters[self._C["strategy_errors"]]:
            self._write_registry()  # a strategy failed since: show its error in ``strategies list``
        self.counters[self._C["strategy_errors"]] = len(self.host.failures)
        self.counters[self._C["running_strategies"]] = sum(1 for s in self.host.slots.values() if int(s.state) == 1)
        self.counters[self._C["orphan_reports"]] = self.host.orphan_reports

    # -- control ---------------------------------------------------------------------------------
    def _control(self) -> int:
        done = self._finish_compiles() if self._compiling else 0
        for ring in self.control_in:
            view = ring.poll(CONTROL_BATCH)
            if not len(view):
                continue
            messages = view.copy()
            ring.release(len(view))
            for message in messages:
                self.apply_control(message)
            done += len(messages)
        if done:
            self.counters[self._C["controls"]] += done
            self.host.publish_status()
            self._write_registry()
        return done

    def apply_control(self, message) -> None:
        kind = int(message["kind"])
        target = int(message["target_id"])
        log = self.ctx.log
        try:
            if kind == ControlKind.STRATEGY_PAUSE:
                for sid in self._targets(target):
                    self.host.pause(sid)
            elif kind == ControlKind.STRATEGY_RESUME:
                for sid in self._targets(target):
                    self.host.resume(sid)
            elif kind == ControlKind.STRATEGY_REMOVE:
                for sid in self._targets(target):
                    self.host.remove(sid)
            elif kind == ControlKind.STRATEGY_ADD:
                self._add_from_request(int(message["value_i"]))
            elif kind == ControlKind.KILL_SWITCH and int(message["value_i"]) == 1:
                for sid in self._targets(-1):
                    self.host.pause(sid)
        except (KeyError, StrategyError) as exc:
            log.error("control %s for strategy %d: %s", ControlKind(kind).name.lower(), target, exc)

    def _targets(self, target: int) -> list[int]:
        return list(self.host.slots) if target == -1 else [self.host.slot(target).strategy_id]

    def _add_from_request(self, request_id: int) -> None:
        """Add the requested strategy; a compiled one not yet compiled here is compiled first in another
        process (``precompile``) and added when that ends (``_finish_compiles``): compiling in this
        duty cycle would stall the running strategies for tens of seconds."""
        path = requests_dir(self.ctx.run_dir) / f"{request_id}.json"
        try:
            request = json.loads(path.read_text())
            spec = request["class"]
            if precompile.needs_compiling(spec):
                process = precompile.start(spec, request.get("symbol", "BTCUSDT"), request.get("params", {}))
                self._compiling[request_id] = process
                self.ctx.log.info("strategy %s: compiling %s in process %d before adding it", request.get("name"),
                                  spec, process.pid)
                return
        except (OSError, ValueError, KeyError, TypeError):
            pass  # _add reports it
        self._add(request_id)

    def _finish_compiles(self) -> int:
        done = [rid for rid, process in self._compiling.items() if process.poll() is not None]
        for request_id in done:
            process = self._compiling.pop(request_id)
            if process.returncode != 0:
                self.ctx.log.warning("strategy add request %d: compiling it apart failed (%s); adding it here",
                                     request_id, (process.stderr.read() or "").strip()[-400:])
            process.stderr.close()
            self._add(request_id)
        if done:
            self.host.publish_status()
            self._write_registry()
        return len(done)

    def _add(self, request_id: int) -> None:
        path = requests_dir(self.ctx.run_dir) / f"{request_id}.json"
        result: dict = {"ok": False}
        try:
            request = json.loads(path.read_text())
            strategy_id = self.host.add(request["name"], request["class"], request.get("symbol", "BTCUSDT"),
                                        request.get("params", {}), request.get("strategy_id"),
                                        paused=bool(request.get("paused", False)))
            result = {"ok": True, "strategy_id": strategy_id}
            self.ctx.log.info("strategy %s added from request %d", request["name"], request_id)
        except (OSError, ValueError, KeyError, StrategyError) as exc:
            result = {"ok": False, "error": str(exc)}
            self.ctx.log.error("strategy add request %d refused: %s", request_id, exc)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, path.with_name(f"{request_id}.result.json"))

    def _write_registry(self) -> None:
        if getattr(self, "ctx", None) is None or not hasattr(self, "host"):
            return
        rows = {r["strategy_id"]: r for r in status_rows(self.host.status)}
        entries = []
        for slot in self.host.slots.values():
            entries.append({"name": slot.name, "strategy_id": slot.strategy_id, "class": slot.spec,
                            "symbol": slot.strategy.symbol.name, "params": slot.params,
                            "state": rows.get(slot.strategy_id, {}).get("state", slot.state.name.lower()),
                            "last_error": slot.last_error,
                            "status_segment": getattr(self, "status_name", "")})
        path = registry_path(self.ctx.run_dir, self.ctx.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(entries, indent=1, default=str))
            os.replace(tmp, path)
        except OSError as exc:
            self.ctx.log.warning("could not write %s: %s", path, exc)
