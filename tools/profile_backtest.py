#!/usr/bin/env python3
"""Where the nanoseconds of a compiled backtest go: ``python tools/profile_backtest.py [DATA]``.

Two measurements over the same day, printed as one table (docs/BENCHMARKS.md, "Backtest: where the
time goes"):

1. The compiled loop (``hftshm.backtest.compiled_nb.run_market_maker``) copied here with a CPU cycle
   counter read (``llvm.readcyclecounter``, i.e. rdtsc) between its steps; the cycles of each step
   are summed over the run. The copy calls exactly the kernels the loop calls, in the same order, so
   its fills are checked equal to the real loop's. The counter's own cost is measured (a loop of
   empty sections) and subtracted.
2. Kernels alone over the day's events, the way the loop calls them: the L2 book per message, and
   the fill model's market view with no order of ours (``fill_model_nb.run_events``).

The machine may be shared: every figure is the minimum over ``--repeats`` runs (cycles are
converted to ns with a calibration against ``time.perf_counter`` in the same process).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from hftshm.backtest import compiled_nb, venue_nb
from hftshm.backtest.compiled_nb import (C_DECISIONS, C_EQUITY, C_FILLS, C_MESSAGES, C_REJECT_COUNTS, L_BEST_ASK,
                                         L_BEST_BID, L_MARKED_MID, _equity, _send_intents)
from hftshm.book import book_nb
from hftshm.codes import EventFlag, EventKind, ReportEvent
from hftshm.oms import oms_nb
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.builtin import market_maker_nb as mm_nb

_LAST = int(EventFlag.LAST_IN_MESSAGE)

STEPS = ("message framing", "fill model: market events (view + our queues)", "reports: OMS + risk accounting",
         "reports: portfolio + strategy on fills", "L2 book (per message)", "risk mark (new mid)",
         "strategy decision (on_book)", "intents: risk checks + OMS + entry latency", "equity sampling",
         "loop bookkeeping")
N_STEPS = len(STEPS)


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (rdtsc on x86)."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@njit(cache=True)
def counter_cost(n, acc):
    """Cycles of one section boundary (what each step's sum carries per message in overhead)."""
    t = cycles()
    for k in range(n):
        u = cycles()
        if u - t < PREEMPTED:
            acc[k % 8] += u - t
        t = u
    return t


# a step longer than this (~40 us) was interrupted (the machine is shared): counted apart, not summed
PREEMPTED = 100_000


@njit(cache=True, inline="always")
def _add(acc, step, d):
    if d < PREEMPTED:
        acc[step] += d
    else:
        acc[N_STEPS] += 1


@njit(cache=True)
def profiled_loop(events, start, stop, books, book_out, V, mm_params, mm_state, pf, orders, intents, icount, ids,
                  grid, reports, fills, equity_ts, equity, interval_ns, counters, loop_state, acc):
    """``compiled_nb.run_market_maker`` with a cycle count per step into ``acc`` (see STEPS)."""
    strategy_id = ids[0]
    symbol_id = ids[1]
    mine = ids[2]
    tick = grid[0]
    lot = grid[1]
    state = books[0]
    params = books[1]
    S, pend, pend_arrival, x_room = V[2]
    room = x_room[0]
    sq_reports, sq_times, sq_srcs, sq_ptr = V[3]
    lq_ptr = V[4][3]
    x_out = V[5][0]
    stats = V[6]
    oms_words = V[1][1][1]
    risk = V[0]
    snap, r_symbols, r_account, r_control = risk[9], risk[0], risk[2], risk[4]
    b_state, b_params, b_bw, b_aw, b_fbp, b_fbq, b_fap, b_faq, b_issues, b_of = books
    b_meta, b_px, b_qty = book_out
    best_bid = loop_state[L_BEST_BID]
    best_ask = loop_state[L_BEST_ASK]
    marked_mid = loop_state[L_MARKED_MID]
    if counters[C_EQUITY] > 0:
        next_sample = equity_ts[counters[C_EQUITY] - 1] + interval_ns
    else:
        next_sample = events[start].exch_ts_ns
    i = start
    t = cycles()
    while i < stop:
        if counters[C_FILLS] + reports.shape[0] > fills.shape[0] or counters[C_EQUITY] + 2 >= equity.shape[0]:
            break
        end = i
        book_event = False
        while True:
            kind = events[end].kind
            if kind != EventKind.TRADE and kind != EventKind.BBO:
                book_event = True
            if end >= stop - 1 or (events[end].flags & _LAST) != 0:
                break
            end += 1
        end += 1
        now = events[end - 1].exch_ts_ns
        u = cycles(); _add(acc, 0, u - t); t = u  # noqa: E702
        venue_nb.market_flat(events, i, end, S, pend, pend_arrival, room, x_out, sq_reports, sq_times, sq_srcs, sq_ptr,
                             stats)
        u = cycles(); _add(acc, 1, u - t); t = u  # noqa: E702
        n = 0
        if (lq_ptr[venue_nb.Q_HEAD] < lq_ptr[venue_nb.Q_TAIL] or venue_nb.due(sq_times, sq_ptr, now)
                or now >= oms_words[oms_nb.O_NEXT_DEADLINE]):
            n = venue_nb.deliver(V, now, reports, 0)
        u = cycles(); _add(acc, 2, u - t); t = u  # noqa: E702
        for k in range(n):
            r = reports[k]
            event = r.event
            pnb.apply_report(pf, orders, event, r.client_order_id, r.side, r.price, r.qty, r.leaves_qty, r.fee,
                             r.exch_ts_ns, False)
            if event == ReportEvent.PARTIAL or event == ReportEvent.FILL:
                f = fills[counters[C_FILLS]]
                f.exch_ts_ns = r.exch_ts_ns
                f.client_order_id = r.client_order_id
                f.side = r.side
                f.price = r.price
                f.qty = r.qty
                f.fee = r.fee
                counters[C_FILLS] += 1
            elif event == ReportEvent.REJECT and r.reason < 64:
                counters[C_REJECT_COUNTS + r.reason] += 1
            if best_bid == best_bid:
                mm_nb.on_book(mm_params, mm_state, pf, orders, intents, icount, strategy_id, symbol_id, tick, lot,
                              now, events[end - 1].publish_ts_ns, best_bid, best_ask)
        u = cycles(); _add(acc, 3, u - t); t = u  # noqa: E702
        changed = False
        rows = 0
        if book_event:
            _, rows, _, _, _ = book_nb._run(b_state, b_params, b_bw, b_aw, b_fbp, b_fbq, b_fap, b_faq, b_issues, b_of,
                                            events, i, end, 1, b_meta, b_px, b_qty, None, b_meta.shape[0])
        for r in range(rows):
            if b_meta[r, 0] == mine:
                changed = True
        u = cycles(); _add(acc, 4, u - t); t = u  # noqa: E702
        decide = False
        if changed:
            bid_t = state[mine, book_nb.BS_BEST_BID]
            ask_t = state[mine, book_nb.BS_BEST_ASK]
            if bid_t != book_nb.NO_BID and ask_t != book_nb.NO_ASK:
                best_bid = bid_t * params[mine, book_nb.BP_PX_NUM] / params[mine, book_nb.BP_PX_DEN]
                best_ask = ask_t * params[mine, book_nb.BP_PX_NUM] / params[mine, book_nb.BP_PX_DEN]
                mid = 0.5 * (best_bid + best_ask)
                pf[pnb.PF_MID] = mid
                if state[mine, book_nb.BS_VALID] != 0 and mid != marked_mid:
                    marked_mid = mid
                    venue_nb.mark_flat(snap, r_symbols, r_account, r_control, symbol_id, mid, now)
                counters[C_DECISIONS] += 1
                decide = True
        u = cycles(); _add(acc, 5, u - t); t = u  # noqa: E702
        if decide:
            mm_nb.on_book(mm_params, mm_state, pf, orders, intents, icount, strategy_id, symbol_id, tick, lot,
                          now, events[end - 1].publish_ts_ns, best_bid, best_ask)
        u = cycles(); _add(acc, 6, u - t); t = u  # noqa: E702
        if icount[0] > 0:
            _send_intents(V, intents, icount, now, counters)
        u = cycles(); _add(acc, 7, u - t); t = u  # noqa: E702
        while now >= next_sample:
            k = counters[C_EQUITY]
            equity_ts[k] = next_sample
            equity[k] = _equity(pf, pf[pnb.PF_MID])
            counters[C_EQUITY] = k + 1
            next_sample += interval_ns
        counters[C_MESSAGES] += 1
        i = end
        u = cycles(); _add(acc, 8, u - t); t = u  # noqa: E702
    counters[compiled_nb.C_NEXT_EVENT] = i
    loop_state[L_BEST_BID] = best_bid
    loop_state[L_BEST_ASK] = best_ask
    loop_state[L_MARKED_MID] = marked_mid
    return i


@njit(cache=True)
def book_per_message(books, events, book_out):
    """The L2 book as the loop calls it: one ``_run`` per message that can change levels."""
    b_state, b_params, b_bw, b_aw, b_fbp, b_fbq, b_fap, b_faq, b_issues, b_of = books
    b_meta, b_px, b_qty = book_out
    i = 0
    stop = len(events)
    total = 0
    while i < stop:
        end = i
        book_event = False
        while True:
            kind = events[end].kind
            if kind != EventKind.TRADE and kind != EventKind.BBO:
                book_event = True
            if end >= stop - 1 or (events[end].flags & _LAST) != 0:
                break
            end += 1
        end += 1
        if book_event:
            _, rows, _, _, _ = book_nb._run(b_state, b_params, b_bw, b_aw, b_fbp, b_fbq, b_fap, b_faq, b_issues, b_of,
                                            events, i, end, 1, b_meta, b_px, b_qty, None, b_meta.shape[0])
            total += rows
        i = end
    return total


@njit(cache=True)
def framing_only(events):
    i = 0
    stop = len(events)
    n = 0
    while i < stop:
        end = i
        while True:
            if end >= stop - 1 or (events[end].flags & _LAST) != 0:
                break
            end += 1
        i = end + 1
        n += 1
    return n


def _setup(events):
    """The same objects ``run_backtest(..., engine_name="compiled")`` builds."""
    from hftshm.backtest.api import make_venue, platform_raw
    from hftshm.backtest.report import FILL_DTYPE
    from hftshm.book.book import BookSet
    from hftshm.strategies.runtime import StrategyHost
    from hftshm.symbols import DEFAULT_SYMBOLS
    from hftshm.transport.layout import load

    raw = platform_raw(None)
    venue = make_venue(raw, DEFAULT_SYMBOLS, 1)
    host = StrategyHost(DEFAULT_SYMBOLS)
    from hftshm.strategies.registry import load_class
    sid = host.add("market_maker", load_class("market_maker"), "BTCUSDT", {})
    strategy = host.strategy(sid)
    books = BookSet(DEFAULT_SYMBOLS)
    books.reserve(len(events))
    symbol = strategy.symbol
    ids = np.array([strategy.strategy_id, symbol.symbol_id, int(books.arrays[9][symbol.symbol_id])], np.int64)
    grid = np.array([symbol.tick_size, symbol.lot_size], np.float64)
    longest = int(np.diff(np.flatnonzero(events["flags"] & 1), prepend=-1).max()) + 1
    book_out = (np.zeros((longest + 1, 8), np.int64), np.zeros((longest + 1, 2, 1), np.int64),
                np.zeros((longest + 1, 2, 1), np.int64))
    span = int(events["exch_ts_ns"][-1] - events["exch_ts_ns"][0])
    equity_ts = np.zeros(span // 1_000_000_000 + 16, np.int64)
    args = (books.arrays, book_out, venue.V, strategy.kernel_params, strategy.kernel_state, strategy.portfolio.pf,
            strategy.portfolio.orders, strategy.intents, strategy.intent_count, ids, grid,
            load("execution_report").zeros(4096), np.zeros(65536, FILL_DTYPE), equity_ts,
            np.zeros(len(equity_ts)), np.int64(1_000_000_000), np.zeros(compiled_nb.C_SIZE, np.int64),
            np.full(compiled_nb.L_SIZE, np.nan))
    return args


def _ns_per_cycle() -> float:
    acc = np.zeros(8, np.int64)
    counter_cost(10, acc)
    best = None
    for _ in range(5):
        t0 = time.perf_counter()
        c0 = counter_cost(1, acc)
        while time.perf_counter() - t0 < 0.05:
            pass
        c1 = counter_cost(1, acc)
        ratio = (time.perf_counter() - t0) / max(c1 - c0, 1) * 1e9
        best = ratio if best is None else min(best, ratio)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="data/btcusdt_20240808.csv.gz")
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()

    from hftshm.backtest.api import run_backtest
    from hftshm.backtest.data import load_events
    from hftshm.book.book import BookSet
    from hftshm.exchange.config import ExchangeConfig
    from hftshm.exchange.simulator import ExchangeSimulator
    from hftshm.symbols import DEFAULT_SYMBOLS

    events, _ = load_events(opts.data, DEFAULT_SYMBOLS)
    rows = len(events)
    ns = _ns_per_cycle()

    # counter overhead per section boundary, in cycles
    acc = np.zeros(8, np.int64)
    counter_cost(1_000_000, acc)
    acc[:] = 0
    counter_cost(1_000_000, acc)
    boundary = acc.sum() / 1_000_000

    reference = run_backtest(None, events, "market_maker", {}, seed=1, engine_name="compiled")
    ref_fills = [tuple(f) for f in reference.fills]
    best = None
    loop_s = []
    for _ in range(opts.repeats):
        args = _setup(events)
        acc = np.zeros(N_STEPS + 1, np.int64)
        t0 = time.perf_counter()
        profiled_loop(events, 0, rows, *args, acc)
        loop_s.append(time.perf_counter() - t0)
        n_fills = int(args[16][C_FILLS])
        if best is None or acc[:N_STEPS].sum() < best[:N_STEPS].sum():
            best = acc.copy()
    counters = args[16]
    messages = int(counters[C_MESSAGES])
    steps_ns = best[:N_STEPS] * ns  # each carries one counter read per message (see the header line)
    # the loop's fills before its end-of-data drain must be a prefix of the real run's
    fills = [tuple(f) for f in args[12][:n_fills]]
    assert fills == ref_fills[:n_fills], "the profiled copy of the loop no longer gives the loop's fills"

    real = []
    for _ in range(opts.repeats):
        r = run_backtest(None, events, "market_maker", {}, seed=1, engine_name="compiled")
        real.append(r.elapsed_s)

    def best_of(fn):
        """Best of the repeats of ``fn()``, which sets itself up and returns the seconds of its kernel."""
        fn()
        return min(fn() for _ in range(opts.repeats))

    def book():
        b = BookSet(DEFAULT_SYMBOLS)
        b.reserve(rows)
        t0 = time.process_time()
        book_per_message(b.arrays, events, args[1])
        return time.process_time() - t0

    def view():
        sim = ExchangeSimulator(ExchangeConfig(), DEFAULT_SYMBOLS, seed=1)
        t0 = time.process_time()
        sim.on_market(events)
        return time.process_time() - t0

    def framing():
        t0 = time.process_time()
        framing_only(events)
        return time.process_time() - t0

    alone = {"L2 book alone, per message as the loop calls it": best_of(book),
             "fill model alone, market events, no orders of ours": best_of(view),
             "message framing alone": best_of(framing)}

    total = steps_ns.sum()
    print(f"{rows:,} rows, {messages:,} messages, {int(counters[C_DECISIONS]):,} decisions, {n_fills} fills in "
          f"the loop; run_backtest loop best {min(real) * 1e3:.1f} ms, profiled copy best "
          f"{min(loop_s) * 1e3:.1f} ms; a counter read costs ~{boundary * ns:.0f} ns (included in each step, per "
          f"message); {int(best[N_STEPS])} interrupted steps left out; {ns:.3f} ns/cycle")
    print(f"{'step':52} {'ms':>7} {'ns/row':>7} {'ns/msg':>7} {'share':>6}")
    for name, value in zip(STEPS, steps_ns):
        if name == "loop bookkeeping":
            continue
        print(f"{name:52} {value / 1e6:7.1f} {value / rows:7.1f} {value / messages:7.0f} {value / total:6.1%}")
    print(f"{'total':52} {total / 1e6:7.1f} {total / rows:7.1f} {total / messages:7.0f}")
    for name, seconds in alone.items():
        print(f"{name:52} {seconds * 1e3:7.1f} {seconds * 1e9 / rows:7.1f} {seconds * 1e9 / messages:7.0f}")


if __name__ == "__main__":
    main()
