"""A risk worker restarted within a run rebuilds its state from the OMS's record.

Positions, PnL and open exposure live in this process's memory (``RiskState``); a SIGKILL loses
them, and the supervisor's restart must not trade from zero. The OMS database is the system of
record for orders and fills, so the restarted worker rebuilds from it (``hftshm.oms.record``) before
it checks its first intent or applies its first report:

1. note how far the OMS had taken risk's approved orders (the ``order`` ring's consumer cursor),
   then how far it had published order events (``CatchUp.begin``); wait until the database holds
   those events, one poll per duty cycle (the OMS's recovery waits for its writer the same way);
2. rebuild: the state risk started the run with (zero, or what it restored from Redis; saved at the
   run's first start in ``<run_dir>/risk/<worker>.start.json``), the run's fills booked in the order
   they happened, the record's open orders, and the approved orders the OMS had not taken yet (still
   unreleased in the ``order`` ring, which only this worker writes);
3. release, unchecked, the intents the predecessor had decided but not released (killed between
   publishing its decisions and releasing the batch): their order or reject is already in an
   output ring, and a second check would reject them as duplicates.

Reports then flow from the ring's released cursor; fills the rebuild booked are recognised by their
order's cumulative quantity (``replay_nb``) and skipped, so a redelivered fill is never booked
twice. Redis, when configured, stays a mirror: it is written as before, and read only at a run's
first start (the state carried over from an earlier run).

What a restart does not keep: the throttle's token buckets (they start full). The counts in the
worker's own account row (reports, marks) start at zero, and the worker publishes them on top of
its predecessor's (the status row outlives it): reports from the released cursors, exactly; marks
as the predecessor last published them (up to one housekeeping interval short). The control
block's counters, kill switch and trading state live in shared memory and are untouched.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from hftshm.codes import Action, OrderState, Side
from hftshm.oms.record import CatchUp, RebuildFromRecord, RunRecord, catch_up_for, recent
from hftshm.risk import orders_nb, replay_nb
from hftshm.risk.state import RiskState
from hftshm.risk.state_nb import refresh_symbol_pnl_all, refresh_totals_and_loss

_EVENT_PENDING_MASK = 3  # hftshm.oms.emit_nb: the pending request of an order row's latest event
_PENDING_CANCEL = 2
_PENDING_REPLACE = 3
_EVENT_FLAG_ACKED = 4


def start_state_path(run_dir, worker: str) -> Path:
    return Path(run_dir) / "risk" / f"{worker}.start.json"


def had_predecessor(ctx) -> bool:
    """Whether a worker of this name ran before in this run: one of its rings has moved."""
    return (any(r.consumer_position > 0 for r in ctx.inputs.values())
            or any(r.producer_position > 0 for r in ctx.outputs.values()))


def save_start_state(ctx, state: RiskState, control) -> None:
    """What risk starts the run with (before any fill of the run), for a restart to build on."""
    snap = state.snapshot()
    snap.pop("open_orders", None)  # orders of an earlier run are not this run's exposure
    _write_json(start_state_path(ctx.run_dir, ctx.name),
                {"control_created_unix_ns": control.created_unix_ns, "state": snap}, ctx.log)


def note_day(ctx, state: RiskState, control) -> None:
    """The trading day rolled: a restart must count the daily PnL from the new day's start."""
    path = start_state_path(ctx.run_dir, ctx.name)
    saved = _read_json(path)
    if saved is None or saved.get("control_created_unix_ns") != control.created_unix_ns:
        return
    saved["state"]["day"] = state.day
    saved["state"]["day_start_pnl"] = float(state.account[0]["day_start_pnl"])
    _write_json(path, saved, ctx.log)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict, log) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write %s (a restart would start from zero before the run's fills): %s", path, exc)


def warm_rebuild_kernels(state: RiskState, control) -> None:
    """Compile (or load) the kernels ``rebuild`` calls from Python, with its argument types, on
    scratch copies before the first step: the rebuild runs inside steps, and a restarted process
    must compile nothing there (``runtime.jit_watch``)."""
    from hftshm.oms.record import FILL_DTYPE

    symbols, account, table = state.symbols.copy(), state.account.copy(), state.table.copy()
    # two rows: the columns of a 0- or 1-row record array are contiguous, of a longer one strided
    # (another numba type); quantity 0 books nothing
    fills = np.zeros(2, dtype=FILL_DTYPE)
    replay_nb.fold_fills(symbols, fills["symbol_id"], fills["side"], fills["qty"], fills["price"], fills["fee"])
    orders_nb.insert(table, int(1), int(1), int(0))
    orders_nb.find(table, int(1), int(1))
    refresh_symbol_pnl_all(symbols)
    refresh_totals_and_loss(symbols, account, control.words.copy())


class RiskRestart(RebuildFromRecord):
    """The rebuild of one restarted risk worker; ``step`` once per duty cycle until it returns True."""

    def __init__(self, ctx, state: RiskState, control, catch_up: CatchUp, orders_out, rejects_out, intents_in):
        self.ctx = ctx
        self.state = state
        self.control = control
        self.catch_up = catch_up
        self.orders_out = orders_out
        self.rejects_out = rejects_out
        self.intents_in = intents_in
        # read before the OMS's event position: an order it took before this is in the database once
        # the database holds that position, and one it had not taken yet is still in the ring
        self.in_flight_from = orders_out.consumer_position
        catch_up.begin()
        self.notes: dict = {}

    @classmethod
    def begin(cls, ctx, state: RiskState, control, orders_out, rejects_out, intents_in) -> "RiskRestart | None":
        """A rebuild if this worker had a predecessor in this run and the OMS's record is at hand."""
        if not had_predecessor(ctx):
            return None
        catch_up = catch_up_for(ctx, ctx.log)
        if catch_up is None:
            ctx.log.warning("restarted without a platform config or control block: no OMS record to rebuild from")
            return None
        warm_rebuild_kernels(state, control)
        return cls(ctx, state, control, catch_up, orders_out, rejects_out, intents_in)

    # -- the rebuild -------------------------------------------------------------------------------

    def rebuild(self, record: RunRecord) -> None:
        s = self.state
        acct = s.account[0]
        saved = _read_json(start_state_path(self.ctx.run_dir, self.ctx.name))
        if saved is not None and saved.get("control_created_unix_ns") == self.control.created_unix_ns:
            s.restore(saved["state"], None, restore_open_orders=False)
        fills = record.fills
        booked = replay_nb.fold_fills(s.symbols, fills["symbol_id"], fills["side"], fills["qty"], fills["price"],
                                      fills["fee"])
        opened = 0
        for order in record.open_orders:
            flags = int(order["flags"])
            pending = flags & _EVENT_PENDING_MASK
            leaves = record.open_leaves(order)
            confirmed = leaves
            if pending == _PENDING_REPLACE and order["pending_qty"] > leaves:
                leaves = float(order["pending_qty"])  # the check reserved a replace's increase at approval
            opened += self._add(int(order["strategy_id"]), int(order["client_order_id"]), int(order["order_id"]),
                                int(order["symbol_id"]), int(order["side"]), float(order["price"]), leaves, confirmed,
                                acked=bool(flags & _EVENT_FLAG_ACKED),
                                cancel_sent=pending == _PENDING_CANCEL or order["state"] == OrderState.PENDING_CANCEL)
        in_flight = self._add_in_flight(record.keys())
        refresh_symbol_pnl_all(s.symbols)
        refresh_totals_and_loss(s.symbols, s.account, self.control.words)
        s.replayed = replay_nb.replay_marks(record.fill_marks())
        released = sum(self._release_decided(ring) for ring in self.intents_in)
        self.notes = {"fills": int(booked), "open_orders": opened, "approved_in_flight": in_flight,
                      "decided_intents_released": released, "open_orders_total": int(acct["open_orders"])}
        self.ctx.log.info("restart: rebuilt from the OMS's record of this run: %s; positions %s", self.notes,
                          {p["symbol"]: p["position"] for p in s.positions()})

    def _add(self, strategy_id, client_order_id, order_id, symbol_id, side, price, leaves, confirmed, acked,
             cancel_sent) -> int:
        s = self.state
        acct = s.account[0]
        if symbol_id >= len(s.symbols) or s.symbols[symbol_id]["known"] != 1 or side not in (Side.BUY, Side.SELL):
            return 0
        if not leaves > float(s.symbols[symbol_id]["qty_eps"]):
            return 0
        slot = orders_nb.insert(s.table, strategy_id, client_order_id, int(acct["open_orders"]))
        if slot < 0:
            self.ctx.log.error("restart: risk's open-order table is full; order %d of strategy %d not restored "
                               "(raise [risk] max_open_orders)", client_order_id, strategy_id)
            return 0
        entry = s.table[slot]
        entry["order_id"] = order_id
        entry["symbol_id"] = symbol_id
        entry["side"] = side
        entry["leaves"] = leaves
        entry["confirmed_leaves"] = confirmed
        entry["price"] = price if math.isfinite(price) else 0.0
        entry["acked"] = 1 if acked else 0
        entry["cancel_sent"] = 1 if cancel_sent else 0
        acct["open_orders"] += 1
        s.symbols[symbol_id]["pending_buy" if side == Side.BUY else "pending_sell"] += leaves
        return 1

    def _add_in_flight(self, known: set) -> int:
        """Approved orders the OMS had not taken when the rebuild began: unreleased in the ``order``
        ring (this worker is its only writer, so they are intact)."""
        ring = self.orders_out
        end = ring.producer_position
        if end <= self.in_flight_from:
            return 0
        records = ring.records[np.arange(self.in_flight_from, end) & (ring.capacity - 1)].copy()
        added = 0
        for rec in records:
            key = (int(rec["strategy_id"]), int(rec["client_order_id"]))
            if int(rec["action"]) == Action.NEW and key not in known:
                added += self._add(key[0], key[1], 0, int(rec["symbol_id"]), int(rec["side"]), float(rec["price"]),
                                   float(rec["qty"]), float(rec["qty"]), acked=False, cancel_sent=False)
            elif int(rec["action"]) == Action.CANCEL:
                slot = orders_nb.find(self.state.table, int(rec["strategy_id"]), int(rec["target_client_order_id"]))
                if slot >= 0:
                    self.state.table[slot]["cancel_sent"] = 1
        return added

    def _release_decided(self, ring) -> int:
        """Release the leading unreleased intents whose decision is already in an output ring."""
        start, end = ring.consumer_position, ring.producer_position
        if end <= start:
            return 0
        pending = ring.records[np.arange(start, end) & (ring.capacity - 1)]
        decided = set()
        for out in (self.orders_out, self.rejects_out):
            published = recent(out)
            decided.update(zip(published["strategy_id"].tolist(), published["client_order_id"].tolist()))
        count = 0
        for strategy_id, client_order_id in zip(pending["strategy_id"].tolist(), pending["client_order_id"].tolist()):
            if (strategy_id, client_order_id) not in decided:
                break
            count += 1
        left = count
        while left:
            view = ring.poll(left)
            ring.release(len(view))
            left -= len(view)
        if count:
            self.ctx.log.warning("restart: %d intent(s) the previous worker had decided but not released are "
                                 "released without a second check", count)
        return count
