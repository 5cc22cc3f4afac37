"""Warm the strategies' kernels before the first market data: a rehearsal on synthetic data.

A strategy's kernels (quoting, its portfolio, its intent buffer) compile on their first call with
the argument types of that call, and which kernels a callback reaches depends on the market (a
first quote, a requote, a fill). ``rehearse`` drives a scratch copy of every strategy a host runs
(same class, parameters and symbol; its own portfolio and buffers) through a few seconds of
synthetic market time: books and trades moving by a few ticks, acks, partial and full fills,
cancels, replaces and a reject for the intents it sends, and its timer. The records are built
from the same layouts as the rings' (the same numba types), so every kernel these paths reach is
compiled, or loaded from the cache, before the worker turns RUNNING. The real strategies see none
of it; a strategy whose rehearsal raises is only logged (its kernels then compile at first use).
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from hftshm.codes import Action, EventFlag, EventKind, ReportEvent, Side
from hftshm.runtime import warm_types
from hftshm.strategies.runtime import STATUS_LAYOUT, StrategyHost
from hftshm.transport.layout import load as load_layout

warm_types.install()  # the signatures every other process compiles and caches: one per argument type

INTENT = load_layout("order_intent")
EVENT = load_layout("market_event")
BOOK = load_layout("book_snapshot")
REPORT = load_layout("execution_report")

_START_NS = 1_000_000_000_000_000_000
_STEP_NS = 1_000_000_000  # one second of market time per step: past any requote interval
_MID_TICKS = 100_000
_MOVES = (0, 0, 7, -3, 25, -40, 2, 0)  # mid moves in ticks: small, requote-sized and large


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    disabled = logger.disabled
    logger.disabled = True  # the scratch host's "added"/"raised" lines are not the real strategies'
    try:
        yield
    finally:
        logger.disabled = disabled


def rehearse(host: StrategyHost, log: logging.Logger | None = None) -> int:
    """Run scratch copies of ``host``'s strategies through a synthetic session; returns how many
    callbacks ran. Nothing of the real host is touched."""
    calls = 0
    with _quiet("hftshm.strategies"):
        scratch = StrategyHost(host.symbols, STATUS_LAYOUT.zeros(max(len(host.slots), 1)),
                               intent_capacity=host.intent_capacity, order_capacity=host.order_capacity,
                               first_client_order_id=1)
        for slot in host.slots.values():
            try:
                scratch.add(slot.name, slot.spec, slot.strategy.symbol.name, slot.params, slot.strategy_id)
            except Exception as exc:  # it started for real, so this is unexpected; never fatal
                if log is not None:
                    log.warning("warm-up: could not rehearse strategy %s (%s); its kernels compile at first use",
                                slot.name, exc)
        symbols = {s.strategy.symbol.symbol_id: s.strategy.symbol for s in scratch.slots.values()}
        exchange_ids = iter(range(1, 1 << 30))
        open_orders: dict[tuple[int, int], np.void] = {}
        now = _START_NS
        mid_ticks = _MID_TICKS
        for step, move in enumerate(_MOVES):
            now += _STEP_NS
            mid_ticks += move
            for symbol_id, symbol in symbols.items():
                scratch.on_events(_events(symbol_id, symbol.tick_size, mid_ticks, now))
                scratch.on_books(_books(symbol_id, symbol.tick_size, mid_ticks, now))
                calls += 2
            intents = scratch.take_outbox()
            reports = _answer(intents, open_orders, step, now, exchange_ids)
            if len(reports):
                scratch.set_time(now)
                scratch.on_reports(reports)
                calls += len(reports)
            scratch.on_timer(now)
            scratch.take_outbox()
        for slot in list(scratch.slots.values()):
            scratch.pause(slot.strategy_id)  # cancel_all
        scratch.take_outbox()
    if log is not None:
        for name, error in scratch.failures:
            log.warning("warm-up: the rehearsal of strategy %s raised (%s); the strategy runs, but kernels it "
                        "had not reached compile at first use", name, error)
    return calls


def warm_latency_kernels(book_age: np.ndarray, tick_to_intent: np.ndarray) -> None:
    """The worker's latency recorders (``latency_nb``), on scratch histograms of the same type."""
    from hftshm.strategies import latency_nb

    latency_nb.record_age(np.zeros_like(book_age), BOOK.zeros(1))
    latency_nb.record_intents(np.zeros_like(tick_to_intent), INTENT.zeros(1), 1)


def _events(symbol_id: int, tick: float, mid_ticks: int, now: int) -> np.ndarray:
    events = EVENT.zeros(4)
    bid, ask = (mid_ticks - 1) * tick, (mid_ticks + 1) * tick
    rows = ((EventKind.DEPTH, Side.BUY, bid, 2.0, 0), (EventKind.DEPTH, Side.SELL, ask, 2.0, EventFlag.LAST_IN_MESSAGE),
            (EventKind.TRADE, Side.BUY, ask, 0.5, 0), (EventKind.TRADE, Side.SELL, bid, 0.5, 0))
    for i, (kind, side, price, qty, flags) in enumerate(rows):
        e = events[i]
        e["seq"], e["exch_ts_ns"], e["local_ts_ns"], e["publish_ts_ns"] = i, now, now, now
        e["price"], e["qty"], e["update_id"], e["symbol_id"] = price, qty, now, symbol_id
        e["kind"], e["side"], e["flags"] = kind, side, flags
    return events


def _books(symbol_id: int, tick: float, mid_ticks: int, now: int) -> np.ndarray:
    books = BOOK.zeros(1)
    b = books[0]
    levels = np.arange(len(b["bid_px"]))
    b["exch_ts_ns"], b["local_ts_ns"], b["publish_ts_ns"], b["update_id"] = now, now, now, now
    b["bid_px"] = (mid_ticks - 1 - levels) * tick
    b["ask_px"] = (mid_ticks + 1 + levels) * tick
    b["bid_qty"] = 1.0 + levels
    b["ask_qty"] = 1.0 + levels
    b["mid"] = mid_ticks * tick
    b["spread"] = 2 * tick
    b["microprice"] = mid_ticks * tick
    b["imbalance"] = 0.0
    b["symbol_id"], b["valid"], b["levels"] = symbol_id, 1, len(levels)
    return books


def _answer(intents: np.ndarray, open_orders: dict, step: int, now: int, exchange_ids) -> np.ndarray:
    """Reports a venue could send for ``intents`` and the orders resting from earlier steps: acks
    (one new order rejected), cancels, replaces, and partial then full fills of resting orders."""
    out = []

    def report(source, event, qty=0.0, leaves=0.0, cum=0.0, client_id=None):
        r = REPORT.zeros(1)[0]
        r["exch_ts_ns"], r["local_ts_ns"], r["origin_ts_ns"] = now, now, now
        r["order_id"] = int(source["order_id"]) if "order_id" in source.dtype.names else next(exchange_ids)
        r["client_order_id"] = int(source["client_order_id"]) if client_id is None else client_id
        r["price"], r["qty"], r["leaves_qty"], r["cum_qty"] = source["price"], qty, leaves, cum
        r["fee"] = 0.0
        r["strategy_id"], r["symbol_id"], r["event"], r["side"] = (source["strategy_id"], source["symbol_id"],
                                                                     event, source["side"])
        out.append(r)
        return r

    for k, intent in enumerate(intents):
        action = int(intent["action"])
        key = (int(intent["strategy_id"]), int(intent["client_order_id"]))
        target = (int(intent["strategy_id"]), int(intent["target_client_order_id"]))
        if action == Action.NEW:
            if step == 2 and k == 0:
                report(intent, ReportEvent.REJECT)
                continue
            ack = report(intent, ReportEvent.ACK, leaves=float(intent["qty"]))
            open_orders[key] = ack
        elif action == Action.CANCEL and target in open_orders:
            resting = open_orders.pop(target)
            report(resting, ReportEvent.CANCEL, qty=float(resting["leaves_qty"]))
        elif action == Action.REPLACE and target in open_orders:
            resting = open_orders.pop(target)
            replaced = report(resting, ReportEvent.REPLACE, qty=float(intent["qty"]), leaves=float(intent["qty"]),
                              client_id=int(intent["client_order_id"]))
            replaced["price"] = intent["price"]
            open_orders[key] = replaced
    if step in (3, 5):
        # fill what rests from before this step: half of the first, all of the others
        for n, (key, resting) in enumerate(list(open_orders.items())):
            leaves = float(resting["leaves_qty"])
            if leaves <= 0:
                continue
            if n == 0 and step == 3:
                report(resting, ReportEvent.PARTIAL, qty=leaves / 2, leaves=leaves / 2, cum=leaves / 2)
                resting["leaves_qty"] = leaves / 2
            else:
                report(resting, ReportEvent.FILL, qty=leaves, leaves=0.0, cum=leaves)
                del open_orders[key]
    if not out:
        return REPORT.zeros(0)
    return np.array(out, dtype=REPORT.dtype)
