"""Running a kernel strategy (the built-in market maker) through the compiled loop (compiled_nb).

The strategy is created and initialized through ``StrategyHost`` exactly as on the platform (same
parameter checks, same portfolio and intent buffers); the loop then drives its kernel directly.
"""

from __future__ import annotations

import time

import numpy as np

from hftshm.backtest import compiled_nb
from hftshm.backtest.engine import LoopOutput
from hftshm.backtest.report import FILL_DTYPE
from hftshm.codes import Reason, ReportEvent
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.base import Strategy
from hftshm.transport.layout import load

REPORT = load("execution_report")
DRAIN_NS = 10 * 1_000_000_000
CHUNK_EVENTS = 1 << 16


def supports(strategy: Strategy) -> bool:
    """True when the compiled loop can drive this strategy (it is the built-in market maker kernel)."""
    from hftshm.strategies.builtin import market_maker_nb

    return getattr(type(strategy), "KERNEL", None) is market_maker_nb and hasattr(strategy, "kernel_params")


def run(events: np.ndarray, strategy: Strategy, venue, symbols, equity_interval_ns: int) -> tuple[LoopOutput, float]:
    """(loop output, seconds in the loop) for ``strategy`` over ``events`` through ``venue``."""
    from hftshm.book.book import BookSet

    books = BookSet(symbols)
    symbol = strategy.symbol
    book_index = int(books.arrays[9][symbol.symbol_id])
    ids = np.array([strategy.strategy_id, symbol.symbol_id, book_index], dtype=np.int64)
    grid = np.array([symbol.tick_size, symbol.lot_size], dtype=np.float64)
    reports = REPORT.zeros(4096)
    counters = np.zeros(compiled_nb.C_SIZE, dtype=np.int64)
    span_ns = int(events["exch_ts_ns"][-1] - events["exch_ts_ns"][0])
    equity_ts = np.zeros(span_ns // equity_interval_ns + 16, dtype=np.int64)
    equity = np.zeros(len(equity_ts), dtype=np.float64)
    fills = np.zeros(65536, dtype=FILL_DTYPE)
    portfolio = strategy.portfolio
    longest = int(np.diff(np.flatnonzero(events["flags"] & 1), prepend=-1).max()) + 1 if len(events) else 1
    book_out = (np.zeros((longest + 1, 8), np.int64), np.zeros((longest + 1, 2, 1), np.int64),
                np.zeros((longest + 1, 2, 1), np.int64))
    loop_state = np.full(compiled_nb.L_SIZE, np.nan)
    started = time.perf_counter()
    position = 0
    while position < len(events):
        # chunks, so the book's far-level arrays are sized for one chunk rather than the whole file
        stop = min(position + CHUNK_EVENTS, len(events))
        books.reserve(stop - position)
        args = (books.arrays, book_out, venue.V, strategy.kernel_params, strategy.kernel_state, portfolio.pf,
                portfolio.orders, strategy.intents, strategy.intent_count, ids, grid, reports)
        position = compiled_nb.run_market_maker(events, position, stop, *args, fills, equity_ts, equity,
                                                np.int64(equity_interval_ns), counters, loop_state)
        if position < stop:  # an output filled up: grow it and carry on where the loop stopped
            if counters[compiled_nb.C_FILLS] + len(reports) > len(fills):
                fills = np.concatenate([fills, np.zeros(len(fills), dtype=FILL_DTYPE)])
            if counters[compiled_nb.C_EQUITY] + 2 >= len(equity):
                equity_ts = np.concatenate([equity_ts, np.zeros(len(equity_ts), np.int64)])
                equity = np.concatenate([equity, np.zeros(len(equity))])
    elapsed = time.perf_counter() - started
    out = LoopOutput(rows=len(events), start_ns=int(events["exch_ts_ns"][0]), end_ns=int(events["exch_ts_ns"][-1]))
    n_fills = int(counters[compiled_nb.C_FILLS])
    out.fills = [tuple(f) for f in fills[:n_fills]]
    out.orders_sent = int(counters[compiled_nb.C_ORDERS_SENT])
    out.submitted_qty = counters[compiled_nb.C_SUBMITTED_LOTS_E9] / 1e9
    for code in range(64):
        count = int(counters[compiled_nb.C_REJECT_COUNTS + code])
        if count:
            out.reject_reasons[_reason(code)] = count
    n_eq = int(counters[compiled_nb.C_EQUITY])
    out.equity_ts = equity_ts[:n_eq].tolist()
    out.equity = equity[:n_eq].tolist()
    _drain(venue, portfolio, out)
    out.equity_ts.append(out.end_ns)
    out.equity.append(float(portfolio.pf[pnb.PF_REALIZED] - portfolio.pf[pnb.PF_FEES]
                            + pnb.unrealized(portfolio.pf, portfolio.pf[pnb.PF_MID])))
    return out, elapsed


def _drain(venue, portfolio, out: LoopOutput) -> None:
    """Let in-flight orders and reports land (the book is frozen at the end), as the Python loop does."""
    until = np.int64(out.end_ns + DRAIN_NS)
    venue.advance(int(until))
    reports = venue.take_reports(int(until))
    for r in reports:
        event = int(r["event"])
        portfolio.apply_report(r)
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

