"""Running compiled strategies through the compiled backtest loop (``simulate_nb.run``).

The strategies are created and initialized through ``StrategyHost`` exactly as on the platform (same
parameter checks, same portfolios); this module bundles each into a ``simulate_nb.StrategySlot``
(its arrays and its callbacks as numba first-class functions), compiles the loop for exactly the
bundle types it is given (or loads it from numba's cache: the callbacks are typed by signature, not
by identity, so the cache key is stable across processes) and drives it over the data in chunks.
"""

from __future__ import annotations

import time

import numpy as np
from numba import typeof, types

from hftshm.backtest import simulate_nb as sim
from hftshm.backtest.data import release_passed
from hftshm.backtest.engine import LoopOutput, currencies_of, sample_by_currency
from hftshm.backtest.report import FILL_DTYPE
from hftshm.codes import EventFlag, Reason, ReportEvent, StrategyState
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies import slots_nb as sn
from hftshm.strategies.base import Strategy, StrategyError
from hftshm.strategies.compiled import CompiledStrategy, fault_text
from hftshm.strategies.slots import slot_of
from hftshm.transport.layout import load

REPORT = load("execution_report")
INTENT = load("order_intent")
MARKET_EVENT = load("market_event")
DRAIN_NS = 10 * 1_000_000_000
CHUNK_EVENTS = 1 << 16
# files at least this big drop the pages behind the loop (a smaller one stays mapped: a repeated run
# over it would pay a page fault per 4 KB again, ~5 % of the shipped day's loop, for no memory worth it)
RELEASE_MIN_BYTES = 1 << 28
OUTBOX = 4096
#: CPU seconds (this thread) of the most recent ``run``'s loop, compilation excluded: what
#: ``hftshm bench backtest`` compares with hftbacktest's CPU time (setup excluded on both sides)
last_loop_cpu_s = float("nan")


def supports(strategy: Strategy) -> bool:
    """True when the compiled loop can drive this strategy (a CompiledStrategy without Python overrides
    of its callbacks)."""
    return isinstance(strategy, CompiledStrategy) and strategy.compiled_only()


def chunk_events(n_strategies: int) -> int:
    """Events per call of the loop. With several strategy slots the compiled loop's stack grows with
    every message until it returns (an alloca inside the loop over the slots: about 8 MB, the default
    stack, after ~29k events of the real day with two slots, then SIGSEGV); returning to Python gives it
    back, so the chunk shrinks with the number of slots and keeps that growth near 1 MB per call."""
    if n_strategies <= 1:
        return CHUNK_EVENTS
    return max(1024, CHUNK_EVENTS // (16 * n_strategies))


def compile_loop(args: tuple, slots_type: types.Type, slots_index: int):
    """The loop's entry point for these argument types (compiled now, or loaded from the cache)."""
    argtypes = tuple(slots_type if k == slots_index else typeof(a) for k, a in enumerate(args))
    sim.run.compile(argtypes)
    return sim.run.overloads[argtypes].entry_point


def run(events: np.ndarray, strategies: list[CompiledStrategy], venue, symbols,
        equity_interval_ns: int) -> tuple[LoopOutput, float]:
    """(loop output, seconds in the loop) for ``strategies`` over ``events`` through ``venue``."""
    from hftshm.book.book import BookSet

    events = np.ascontiguousarray(events, dtype=MARKET_EVENT.dtype)
    books = BookSet(symbols)
    book_of = books.arrays[9]
    book_symbol = np.zeros(max(int(book_of.max()) + 1, 1), np.int64)
    for symbol_id, book in enumerate(book_of):
        if book >= 0:
            book_symbol[book] = symbol_id
    bundles = [slot_of(s, int(book_of[s.symbol.symbol_id]), typeof(events)) for s in strategies]
    slots = tuple(b[0] for b in bundles)
    slots_type = types.BaseTuple.from_types([b[1] for b in bundles])
    intents = INTENT.zeros(OUTBOX)
    icount = np.zeros(1, np.int64)
    reports = REPORT.zeros(4096)
    counters = np.zeros(sim.C_SIZE, dtype=np.int64)
    span_ns = int(events["exch_ts_ns"][-1] - events["exch_ts_ns"][0])
    equity_ts = np.zeros(span_ns // equity_interval_ns + 16, dtype=np.int64)
    equity = np.zeros(len(equity_ts), dtype=np.float64)
    fills = np.zeros(65536, dtype=FILL_DTYPE)
    book_out = _book_out()
    loop_state = np.full(sim.L_SIZE, np.nan)
    loop_state[sim.L_SHARE_UNITS] = 1.0 if _same_grid(books.arrays, venue.V[2][0][0], venue.V[2][0][1]) else 0.0
    entry = None
    started = time.perf_counter()
    cpu = 0.0
    position = 0
    chunk = chunk_events(len(strategies))
    groups = currencies_of(strategies)
    by_currency: dict[str, list] = {}
    while position < len(events):
        # chunks, so the book's far-level arrays are sized for one chunk rather than the whole file
        stop = min(position + chunk, len(events))
        if len(groups) > 1:  # the loop's equity adds currencies: stop where it samples, and sample each here
            stop = _through_next_sample(events, position, stop, equity_ts, counters, equity_interval_ns)
        samples_before = int(counters[sim.C_EQUITY])
        books.reserve(stop - position)
        args = (events, np.int64(position), np.int64(stop), books.arrays, book_out, book_symbol, venue.V, slots,
                intents, icount, reports, fills, equity_ts, equity, np.int64(equity_interval_ns), counters, loop_state)
        if entry is None:
            entry = compile_loop(args, slots_type, 7)
            started = time.perf_counter()  # the loop's time, not its compilation's
        cpu_started = time.thread_time()
        position = entry(*args)
        cpu += time.thread_time() - cpu_started
        if len(groups) > 1 and counters[sim.C_EQUITY] > samples_before:
            sample_by_currency(groups, by_currency, int(counters[sim.C_EQUITY]) - samples_before)
        if events.nbytes >= RELEASE_MIN_BYTES:
            release_passed(events, position)  # pages behind the loop leave the process's RSS
        if position < stop:  # an output filled up: grow it and carry on where the loop stopped
            if counters[sim.C_FILLS] + len(reports) > len(fills):
                fills = np.concatenate([fills, np.zeros(len(fills), dtype=FILL_DTYPE)])
            if counters[sim.C_EQUITY] + 2 >= len(equity):
                equity_ts = np.concatenate([equity_ts, np.zeros(len(equity_ts), np.int64)])
                equity = np.concatenate([equity, np.zeros(len(equity))])
    elapsed = time.perf_counter() - started
    global last_loop_cpu_s
    last_loop_cpu_s = cpu
    out = LoopOutput(rows=len(events), start_ns=int(events["exch_ts_ns"][0]), end_ns=int(events["exch_ts_ns"][-1]))
    out.fills = [tuple(f) for f in fills[:int(counters[sim.C_FILLS])]]
    out.orders_sent = int(counters[sim.C_ORDERS_SENT])
    out.submitted_qty = counters[sim.C_SUBMITTED_LOTS_E9] / 1e9
    for code in range(64):
        count = int(counters[sim.C_REJECT_COUNTS + code])
        if count:
            out.reject_reasons[_reason(code)] = count
    n_eq = int(counters[sim.C_EQUITY])
    out.equity_ts = equity_ts[:n_eq].tolist()
    out.equity = equity[:n_eq].tolist()
    for strategy, slot in zip(strategies, slots):
        strategy.best_bid, strategy.best_ask = float(slot.market[sn.M_BID]), float(slot.market[sn.M_ASK])
        strategy.mid = 0.5 * (strategy.best_bid + strategy.best_ask)
        strategy.now_ns = out.end_ns
        strategy.compiled_fault = int(slot.ids[sn.ID_FAULT])
    _drain(venue, strategies, out)
    out.equity_ts.append(out.end_ns)
    out.equity.append(sum(float(s.portfolio.pf[pnb.PF_REALIZED] - s.portfolio.pf[pnb.PF_FEES]
                                + pnb.unrealized(s.portfolio.pf, s.portfolio.pf[pnb.PF_MID])) for s in strategies))
    if len(groups) > 1:
        sample_by_currency(groups, by_currency)
        out.equity_by_currency = by_currency
    return out, elapsed


def _through_next_sample(events: np.ndarray, start: int, stop: int, equity_ts: np.ndarray, counters: np.ndarray,
                         interval_ns: int) -> int:
    """``stop``, or one past the message in ``events[start:stop]`` at which the loop takes its next
    equity sample, whichever comes first, framing messages as the loop does (up to an event flagged
    last, or the window's end). The loop's own sample adds every strategy; stopping right after it lets
    the caller read the portfolios as the loop saw them and add them per currency instead."""
    taken = int(counters[sim.C_EQUITY])
    next_sample = int(equity_ts[taken - 1]) + interval_ns if taken > 0 else int(events[start]["exch_ts_ns"])
    window = events[start:stop]
    ends = (window["flags"] & EventFlag.LAST_IN_MESSAGE) != 0
    ends[-1] = True
    due = np.flatnonzero(ends & (window["exch_ts_ns"] >= next_sample))
    return start + int(due[0]) + 1 if len(due) else stop


def _same_grid(book_arrays: tuple, view_scale: np.ndarray, view_book_of: np.ndarray) -> bool:
    """True when, for every symbol both keep, the L2 book converts prices and quantities with the very
    factor the fill model's view does (an integral 1/tick and 1/lot, ``SC_TICK_INV``/``SC_LOT_INV``):
    then an event the book finds on its grid has the same units in the view, which takes them from
    the book instead of converting again. A division path (non-integral inverse) or differing
    instruments: each converts its own."""
    from hftshm.book.levels_nb import BP_PX_SCALE, BP_QTY_SCALE
    from hftshm.exchange.common_nb import SC_LOT_INV, SC_TICK_INV

    params, book_of = book_arrays[1], book_arrays[9]
    for symbol_id, b in enumerate(book_of):
        if b < 0 or symbol_id >= len(view_book_of) or view_book_of[symbol_id] < 0:
            continue
        v = view_book_of[symbol_id]
        tick_inv, lot_inv = view_scale[v, SC_TICK_INV], view_scale[v, SC_LOT_INV]
        if not (tick_inv > 0.0 and lot_inv > 0.0 and tick_inv == params[b, BP_PX_SCALE]
                and lot_inv == params[b, BP_QTY_SCALE]):
            return False
    return True


def _book_out() -> tuple:
    """(meta, px, qty) scratch rows for the book kernel. The loop gives it one exchange message at a
    time, which ends at its first event flagged last, and the book writes a row only at such an event:
    one row per call at most (a spare beside it). Sizing them by the longest message read every
    window's flags once more per run (~3.6 ms of the day's wall time)."""
    return np.zeros((2, 8), np.int64), np.zeros((2, 2, 1), np.int64), np.zeros((2, 2, 1), np.int64)


def raise_faults(host, strategies: list[CompiledStrategy]) -> None:
    """Mark strategies the loop paused for an error as FAILED in ``host`` and raise the first, named."""
    first = None
    for strategy in strategies:
        code = getattr(strategy, "compiled_fault", 0)
        if code:
            slot = host.slot(strategy.strategy_id)
            slot.state = StrategyState.FAILED
            slot.last_error = fault_text(code)
            host.failures.append((slot.name, slot.last_error))
            first = first or StrategyError(slot.name, f"was paused during the backtest: {slot.last_error}")
    if first is not None:
        raise first


def _drain(venue, strategies, out: LoopOutput) -> None:
    """Let in-flight orders and reports land (the book is frozen at the end), as the Python loop does."""
    until = np.int64(out.end_ns + DRAIN_NS)
    venue.advance(int(until))
    by_id = {s.strategy_id: s for s in strategies}
    for r in venue.take_reports(int(until)):
        event = int(r["event"])
        owner = by_id.get(int(r["strategy_id"]))
        if owner is not None:
            owner.portfolio.apply_report(r)
        if event in (ReportEvent.PARTIAL, ReportEvent.FILL):
            out.fills.append((int(r["exch_ts_ns"]), int(r["client_order_id"]), int(r["side"]), float(r["price"]),
                              float(r["qty"]), float(r["fee"])))
        elif event == ReportEvent.REJECT:
            out.reject_reasons[_reason(int(r["reason"]))] += 1


def _reason(code: int) -> str:
    try:
        return Reason(code).name.lower()
    except ValueError:
        return str(code)
