"""Running many strategies side by side: dispatch, bookkeeping, isolation, metrics.

``StrategyHost`` is the one place strategies are driven from, by the platform's strategy worker
and by the backtest alike. It

* hands each strategy the events and books of its symbol, in batches (one Python call per batch),
* applies execution reports to the strategy's portfolio before its ``on_execution_report``,
* calls ``on_timer`` on market time,
* collects the intents each callback queued into one outbox (``order_intent`` records), stamped
  with the strategy's id,
* isolates failures: a strategy that raises is marked FAILED (paused), its half-finished intents are
  dropped, its resting orders are cancelled, and the error is kept with its name; the other
  strategies keep running,
* mirrors every strategy's metrics into a ``strategy_status`` table (shared memory in the worker).

Pausing (operator or failure) stops callbacks and cancels the strategy's open orders; reports keep
flowing into its portfolio so its position stays true while it is paused.
"""

from __future__ import annotations

import logging
import math
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hftshm.codes import StrategyState
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.base import Strategy, StrategyError, resolve_params
from hftshm.strategies.registry import load_class
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout

STATUS_LAYOUT = load_layout("strategy_status")
INTENT_LAYOUT = load_layout("order_intent")
NAME_BYTES = 40

log = logging.getLogger("hftshm.strategies")


@dataclass
class StrategySlot:
    strategy_id: int
    name: str
    spec: str
    strategy: Strategy
    state: StrategyState
    params: dict[str, Any]
    row: int
    errors: int = 0
    last_error: str = ""
    next_timer_ns: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def symbol_id(self) -> int:
        return self.strategy.symbol.symbol_id


class StrategyHost:
    def __init__(self, symbols: SymbolTable, status: np.ndarray | None = None, outbox_capacity: int = 65536,
                 intent_capacity: int = 1024, order_capacity: int = 64, first_client_order_id: int = 1):
        self.symbols = symbols
        self.status = status if status is not None else STATUS_LAYOUT.zeros(64)
        self.outbox = INTENT_LAYOUT.zeros(outbox_capacity)
        self.outbox_count = 0
        self.intent_capacity = intent_capacity
        self.order_capacity = order_capacity
        self.first_client_order_id = first_client_order_id
        self.slots: dict[int, StrategySlot] = {}
        self.failures: list[tuple[str, str]] = []  # (strategy name, error) in order of occurrence
        self.orphan_reports = 0  # reports for a strategy id no longer here
        # after a restart: (slot, report) -> True for a redelivered report the rebuilt portfolio
        # already holds (``hftshm.strategies.restart.ReplayFilter``)
        self.report_filter = None
        self.now_ns = 0
        # ids are never reused while the host lives: a removed strategy's (id, client order id)
        # pairs may still be known downstream, and a new strategy restarts its client order ids
        self._next_id = 1

    # -- registration ----------------------------------------------------------------------------
    def add(self, name: str, spec: str | type, symbol: str, params: dict[str, Any] | None = None,
            strategy_id: int | None = None, paused: bool = False) -> int:
        """Load, bind and initialize a strategy; its id. Raises StrategyError (naming it) on bad
        parameters or a failing ``initialize``; nothing is added then."""
        if any(slot.name == name for slot in self.slots.values()):
            raise StrategyError(name, "a strategy with this name is already running")
        if strategy_id is None:
            strategy_id = self._next_id
        if strategy_id in self.slots or not 0 < strategy_id < 65536:
            raise StrategyError(name, f"strategy id {strategy_id} is taken or outside 1..65535")
        try:
            sym = self.symbols.by_name(symbol)
        except KeyError as exc:
            raise StrategyError(name, str(exc.args[0])) from None
        try:
            cls = load_class(spec)
        except LookupError as exc:
            raise StrategyError(name, str(exc)) from None
        row = self._free_row()
        resolved = resolve_params(name, cls.PARAMS, dict(params or {}), sym.market)
        try:
            strategy = cls()
            strategy.bind(name, strategy_id, sym, self.intent_capacity, self.order_capacity,
                          self.first_client_order_id)
            strategy.initialize(resolved)
        except StrategyError:
            raise
        except Exception as exc:
            raise StrategyError(name, f"initialize failed: {type(exc).__name__}: {exc}") from exc
        strategy.discard_intents()  # initialize is not a place to trade: there is no market yet
        spec_text = spec if isinstance(spec, str) else f"{spec.__module__}:{spec.__qualname__}"
        slot = StrategySlot(strategy_id, name, spec_text,
                            strategy, StrategyState.PAUSED if paused else StrategyState.RUNNING, resolved, row)
        self.slots[strategy_id] = slot
        self._next_id = max(self._next_id, strategy_id + 1)
        self._write_status(slot)
        log.info("strategy %s (id %d, %s on %s) added", name, strategy_id, slot.spec, sym.name)
        return strategy_id

    def remove(self, key: int | str) -> None:
        """Cancel its open orders and drop it (reports still in flight for it are counted as orphans)."""
        slot = self.slot(key)
        self._cancel_open(slot)
        slot.state = StrategyState.REMOVED
        self._write_status(slot)
        del self.slots[slot.strategy_id]
        log.info("strategy %s removed", slot.name)

    def pause(self, key: int | str) -> None:
        slot = self.slot(key)
        if slot.state == StrategyState.RUNNING:
            slot.state = StrategyState.PAUSED
            self._cancel_open(slot)
            self._write_status(slot)
            log.info("strategy %s paused", slot.name)

    def resume(self, key: int | str) -> None:
        slot = self.slot(key)
        if slot.state in (StrategyState.PAUSED, StrategyState.FAILED):
            slot.state = StrategyState.RUNNING
            self._write_status(slot)
            log.info("strategy %s resumed", slot.name)

    def slot(self, key: int | str) -> StrategySlot:
        if isinstance(key, str) and not key.isdigit():
            for slot in self.slots.values():
                if slot.name == key:
                    return slot
            raise KeyError(f"no strategy named {key!r}; running: {', '.join(self.names()) or '(none)'}")
        try:
            return self.slots[int(key)]
        except KeyError:
            raise KeyError(f"no strategy with id {key}; running: {', '.join(self.names()) or '(none)'}") from None

    def names(self) -> list[str]:
        return [slot.name for slot in self.slots.values()]

    def strategy(self, key: int | str) -> Strategy:
        return self.slot(key).strategy

    # -- dispatch ----------------------------------------------------------------------------------
    def on_events(self, events: np.ndarray) -> None:
        """A batch of market events (any symbols, market-time order)."""
        if len(events) == 0:
            return
        last = events[-1]
        self.now_ns = int(last["exch_ts_ns"])
        symbol_ids = events["symbol_id"]
        first_id = int(symbol_ids[0])
        # one symbol in the batch (the usual case) needs no per-strategy filtering
        single = len(self.symbols) == 1 or (first_id == int(symbol_ids[-1]) and (symbol_ids == first_id).all())
        for slot in list(self.slots.values()):
            if slot.state != StrategyState.RUNNING:
                continue
            if single:
                if slot.symbol_id != first_id:
                    continue
                mine = events
            else:
                mine = events[symbol_ids == slot.symbol_id]
            if len(mine) == 0:
                continue
            strategy = slot.strategy
            strategy.now_ns = int(mine[-1]["exch_ts_ns"])
            strategy.origin_ts_ns = int(mine[-1]["publish_ts_ns"])
            self._call(slot, strategy.on_tick, mine)
        self._timers()

    def on_books(self, snapshots: np.ndarray) -> None:
        """Book snapshots; each strategy sees the newest one of its symbol in the batch."""
        if len(snapshots) == 0:
            return
        latest: dict[int, int] = {}
        symbol_ids = snapshots["symbol_id"]
        for index in range(len(snapshots) - 1, -1, -1):
            sid = int(symbol_ids[index])
            if sid not in latest:
                latest[sid] = index
            if len(latest) == len(self.symbols):
                break
        for slot in list(self.slots.values()):
            index = latest.get(slot.symbol_id)
            if index is None:
                continue
            book = snapshots[index]
            strategy = slot.strategy
            bid, ask = float(book["bid_px"][0]), float(book["ask_px"][0])
            strategy.best_bid, strategy.best_ask = bid, ask
            strategy.mid = float(book["mid"])
            strategy.portfolio.mark(strategy.mid)
            strategy.now_ns = max(strategy.now_ns, int(book["exch_ts_ns"]))
            strategy.origin_ts_ns = int(book["publish_ts_ns"])
            if slot.state == StrategyState.RUNNING:
                self._call(slot, strategy.on_book, book)

    def on_reports(self, reports: np.ndarray) -> None:
        """Execution reports (risk rejects, OMS acks/fills/cancels) for any strategies."""
        for report in reports:
            slot = self.slots.get(int(report["strategy_id"]))
            if slot is None:
                self.orphan_reports += 1
                continue
            strategy = slot.strategy
            if self.report_filter is not None and self.report_filter(slot, report):
                continue
            strategy.portfolio.apply_report(report)
            if slot.state == StrategyState.RUNNING:
                # an order sent in reply to a report was caused by no feed tick: it carries no origin
                # stamp, so tick-to-order (feed publish -> order out) does not count the time since
                # the last book as if it were the platform's latency
                origin, strategy.origin_ts_ns = strategy.origin_ts_ns, 0
                self._call(slot, strategy.on_execution_report, report)
                strategy.origin_ts_ns = origin

    def set_time(self, now_ns: int) -> None:
        """Market time moved to ``now_ns`` (before reports that arrive then are handed over)."""
        self.now_ns = max(self.now_ns, int(now_ns))
        for slot in self.slots.values():
            if slot.strategy.now_ns < self.now_ns:
                slot.strategy.now_ns = self.now_ns

    def on_timer(self, now_ns: int) -> None:
        """Advance market time without data (end of a replay, a quiet market)."""
        self.now_ns = max(self.now_ns, int(now_ns))
        self._timers()

    def _timers(self) -> None:
        now = self.now_ns
        for slot in list(self.slots.values()):
            interval = slot.strategy.TIMER_INTERVAL_NS
            if interval <= 0 or slot.state != StrategyState.RUNNING or now < slot.next_timer_ns:
                continue
            slot.next_timer_ns = now - now % interval + interval
            slot.strategy.now_ns = max(slot.strategy.now_ns, now)
            self._call(slot, slot.strategy.on_timer, now)

    def _call(self, slot: StrategySlot, callback, argument) -> None:
        strategy = slot.strategy
        try:
            callback(argument)
        except Exception as exc:
            self._fail(slot, exc)
            return
        self._collect(slot)

    def _collect(self, slot: StrategySlot) -> None:
        queued = slot.strategy.take_intents()
        n = len(queued)
        if n == 0:
            return
        end = self.outbox_count + n
        if end > len(self.outbox):
            # the consumer (risk) is not keeping up; grow rather than lose intents the strategy's
            # bookkeeping already counts as sent
            grown = INTENT_LAYOUT.zeros(max(2 * len(self.outbox), end))
            grown[: self.outbox_count] = self.outbox[: self.outbox_count]
            self.outbox = grown
        self.outbox[self.outbox_count:end] = queued
        self.outbox_count = end

    def _fail(self, slot: StrategySlot, exc: BaseException) -> None:
        strategy = slot.strategy
        strategy.discard_intents()
        slot.errors += 1
        slot.last_error = f"{type(exc).__name__}: {exc}"
        slot.state = StrategyState.FAILED
        self.failures.append((slot.name, slot.last_error))
        log.error("strategy %s raised and is paused (the others keep running): %s\n%s", slot.name, slot.last_error,
                  "".join(traceback.format_exception(exc)))
        self._cancel_open(slot)
        self._write_status(slot)

    def _cancel_open(self, slot: StrategySlot) -> None:
        try:
            slot.strategy.cancel_all()
        except StrategyError as exc:
            log.error("strategy %s: could not cancel its open orders: %s", slot.name, exc)
        self._collect(slot)

    # -- outbox ----------------------------------------------------------------------------------
    def take_outbox(self, max_n: int | None = None) -> np.ndarray:
        """The oldest queued intents (a copy), removed from the outbox."""
        n = self.outbox_count if max_n is None else min(max_n, self.outbox_count)
        taken = self.outbox[:n].copy()
        remaining = self.outbox_count - n
        if remaining:
            self.outbox[:remaining] = self.outbox[n:self.outbox_count]
        self.outbox_count = remaining
        return taken

    # -- status ----------------------------------------------------------------------------------
    def _free_row(self) -> int:
        used = {slot.row for slot in self.slots.values()}
        for row in range(len(self.status)):
            if row not in used:
                return row
        raise StrategyError("?", f"the strategy status table is full ({len(self.status)} strategies)")

    def publish_status(self) -> None:
        for slot in self.slots.values():
            self._write_status(slot)

    def _write_status(self, slot: StrategySlot) -> None:
        row = self.status[slot.row]
        strategy = slot.strategy
        pf = strategy.portfolio.pf
        row["strategy_id"] = slot.strategy_id
        row["state"] = int(slot.state)
        row["market_ts_ns"] = strategy.now_ns
        row["signals"] = int(pf[pnb.PF_SIGNALS])
        row["intents"] = int(pf[pnb.PF_INTENTS])
        row["fills"] = int(pf[pnb.PF_FILLS])
        row["rejects"] = int(pf[pnb.PF_REJECTS])
        row["cancels"] = int(pf[pnb.PF_CANCELS])
        row["errors"] = slot.errors
        row["open_orders"] = int(pf[pnb.PF_OPEN_ORDERS])
        row["position"] = pf[pnb.PF_POSITION]
        row["avg_price"] = pf[pnb.PF_AVG_PRICE]
        row["realized_pnl"] = pf[pnb.PF_REALIZED]
        row["unrealized_pnl"] = pnb.unrealized(pf, pf[pnb.PF_MID])
        row["fees"] = pf[pnb.PF_FEES]
        row["mid"] = pf[pnb.PF_MID]
        row["traded_qty"] = pf[pnb.PF_TRADED_QTY]
        row["traded_notional"] = pf[pnb.PF_TRADED_NOTIONAL]
        row["symbol_id"] = slot.symbol_id
        encoded = slot.name.encode("ascii", "replace")[:NAME_BYTES]
        name = np.zeros(NAME_BYTES, dtype=np.uint8)
        name[: len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
        row["name"] = name


def status_rows(status: np.ndarray) -> list[dict[str, Any]]:
    """The occupied rows of a ``strategy_status`` table as plain dicts (for CLIs and the web API)."""
    rows = []
    for row in status:
        if int(row["strategy_id"]) == 0:
            continue
        item = {name: row[name].item() for name in STATUS_LAYOUT.dtype.names if name != "name"}
        item["name"] = bytes(row["name"]).rstrip(b"\0").decode("ascii", "replace")
        item["state"] = StrategyState(int(row["state"])).name.lower()
        for key, value in item.items():
            if isinstance(value, float) and math.isnan(value):
                item[key] = None
        rows.append(item)
    return rows
