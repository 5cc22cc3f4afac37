"""A realistic random order flow for benchmarks and soak runs (not used by the engine itself).

Shape, roughly what a busy crypto book sees: 40% passive limit orders a few ticks from a drifting
mid, 35% cancels and 10% replaces of live orders, 10% marketable limits (IOC or GTC) and 5% market
orders. The generator keeps its own set of ids it believes live, so most cancels hit real orders;
the ones already filled come back as unknown_order rejects, as they do on a real exchange.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import Action, OrderType, Side, TimeInForce
from hftshm.exchange.matching_nb import process_orders
from hftshm.transport.clock_nb import monotonic_ns

FLOW_MIX = "40% passive, 35% cancel, 10% replace, 10% marketable limit (half IOC), 5% market"


@njit(cache=True)
def fill_random_flow(out, seed, symbol_id, mid_ticks, tick_size, lot_size, owners, max_live):
    """Fill ``out`` (order records) with a flow; ids start at 1. Returns the number of live ids at the end."""
    np.random.seed(seed)
    live = np.zeros(max_live, dtype=np.int64)
    live_price = np.zeros(max_live, dtype=np.int64)
    n_live = 0
    next_id = 1
    mid = mid_ticks
    for i in range(len(out)):
        o = out[i]
        o.seq = i
        o.ts_ns = i
        o.market_ts_ns = i
        o.symbol_id = symbol_id
        owner = 1 + np.random.randint(0, owners)
        o.owner = owner
        o.strategy_id = owner
        if np.random.random() < 0.01:
            mid += 1 if np.random.random() < 0.5 else -1
        u = np.random.random()
        if n_live >= max_live and u < 0.40:
            u = 0.5  # full: cancel instead
        if n_live == 0 and 0.40 <= u < 0.85:
            u = 0.0
        if u < 0.40 or u >= 0.85:
            side = Side.BUY if np.random.random() < 0.5 else Side.SELL
            o.action = Action.NEW
            o.order_id = next_id
            o.side = side
            # takers are smaller than makers, so most cancels still find their order live
            o.qty = (1 + np.random.randint(0, 100 if u < 0.40 else 20)) * lot_size
            if u < 0.40:
                offset = 1
                while np.random.random() < 0.7 and offset < 200:
                    offset += 1
                ticks = mid - offset if side == Side.BUY else mid + offset
                o.order_type = OrderType.LIMIT
                o.tif = TimeInForce.GTC
                o.price = ticks * tick_size
                live[n_live] = next_id
                live_price[n_live] = ticks
                n_live += 1
            elif u < 0.95:
                through = np.random.randint(0, 4)
                ticks = mid + through if side == Side.BUY else mid - through
                o.order_type = OrderType.LIMIT
                o.tif = TimeInForce.IOC if np.random.random() < 0.5 else TimeInForce.GTC
                o.price = ticks * tick_size
            else:
                o.order_type = OrderType.MARKET
                o.tif = TimeInForce.IOC
                o.price = np.nan
            next_id += 1
        else:
            k = np.random.randint(0, n_live)
            target = live[k]
            o.order_id = target
            o.target_order_id = target
            if u < 0.75:
                o.action = Action.CANCEL
                o.price = np.nan
                o.qty = np.nan
                n_live -= 1
                live[k] = live[n_live]
                live_price[k] = live_price[n_live]
            else:
                o.action = Action.REPLACE
                # half keep price and shrink (keeps priority), half move one tick away from the mid
                ticks = live_price[k]
                if np.random.random() < 0.5:
                    ticks = ticks - 1 if ticks < mid else ticks + 1
                live_price[k] = ticks
                o.price = ticks * tick_size
                o.qty = (1 + np.random.randint(0, 50)) * lot_size
    return n_live


@njit(cache=True, _nrt=False)
def process_each_timed(orders_in, out, latency_ns, stats, sym_to_book, scale, maker_bps, taker_bps,
                       orders, levels, ladder, book_i64, free_orders, free_levels, id_table):
    """Process one order per matching call, timing each with the monotonic clock (~25 ns of it included)."""
    done = 0
    for i in range(len(orders_in)):
        t0 = monotonic_ns()
        nxt, _ = process_orders(orders_in, i, i + 1, out, 0, stats, sym_to_book, scale, maker_bps, taker_bps,
                                orders, levels, ladder, book_i64, free_orders, free_levels, id_table)
        latency_ns[i] = monotonic_ns() - t0
        done += nxt - i
    return done
