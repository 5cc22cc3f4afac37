#!/usr/bin/env python3
"""The peer of ``hftshm bench backtest``: hftbacktest on the same raw file, in ITS OWN environment.

hftbacktest is not a dependency of hftshm. ``hftshm bench backtest --peer-python PY`` runs this script
with an interpreter that has it (``python3 -m venv /tmp/hbt && /tmp/hbt/bin/pip install hftbacktest==2.4.4``)
and reads one JSON line: conversion time of the raw Binance file, and rows/s of a plain market maker
(quote both sides around mid every 10 ms, cancel stale quotes, position capped) over the converted
events, warm (after a first run that compiles the strategy): the median of N warm runs (second
argument, 5 by default; ``hftshm bench backtest`` passes its ``--repeats``), in wall and CPU seconds
(CPU time is the steadier figure on a machine shared with other work), and each run's figures.
"""

import json
import sys
import time

import numpy as np
from numba import njit


@njit
def plain_market_maker(hbt, half_spread_ticks, qty, max_position):
    asset = 0
    order_id = 0
    while hbt.elapse(10_000_000) == 0:  # every 10 ms of market time
        hbt.clear_inactive_orders(asset)
        depth = hbt.depth(asset)
        if not (depth.best_bid > 0 and depth.best_ask > depth.best_bid):
            continue
        tick = depth.tick_size
        mid_tick = (depth.best_bid_tick + depth.best_ask_tick) / 2.0
        bid_tick = np.floor(mid_tick - half_spread_ticks)
        ask_tick = np.ceil(mid_tick + half_spread_ticks)
        position = hbt.position(asset)
        orders = hbt.orders(asset)
        values = orders.values()
        while values.has_next():
            order = values.get()
            if order.cancellable:
                if (order.side == 1 and order.price_tick != bid_tick) or (order.side == -1 and order.price_tick != ask_tick):
                    hbt.cancel(asset, order.order_id, False)
        if position < max_position and not orders.__contains__(int(bid_tick)):
            order_id += 1
            hbt.submit_buy_order(asset, int(bid_tick), bid_tick * tick, qty, 1, 0, False)
        if position > -max_position and not orders.__contains__(int(ask_tick)):
            order_id += 1
            hbt.submit_sell_order(asset, int(ask_tick), ask_tick * tick, qty, 1, 0, False)
    return order_id


def build(events):
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    asset = (
        BacktestAsset()
        .data([events])
        .linear_asset(1.0)
        .constant_order_latency(50_000, 50_000)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(-0.00005, 0.0002)
        .tick_size(0.1)
        .lot_size(0.001)
    )
    return HashMapMarketDepthBacktest([asset])


def main(path: str, repeats: int = 5) -> None:
    from hftbacktest.data.utils import binancefutures

    started = time.perf_counter()
    events = binancefutures.convert(path, combined_stream=True)
    convert_s = time.perf_counter() - started
    rows = len(events)
    wall, cpu = [], []
    for _ in range(1 + max(1, repeats)):  # the first run includes numba compilation of the strategy
        hbt = build(events)
        started, cpu_started = time.perf_counter(), time.process_time()
        plain_market_maker(hbt, 2.0, 0.01, 0.1)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        hbt.close()
    warm_s, warm_cpu_s = float(np.median(wall[1:])), float(np.median(cpu[1:]))
    print(json.dumps({"rows": rows, "convert_s": convert_s, "cold_s": wall[0], "warm_s": warm_s,
                      "warm_cpu_s": warm_cpu_s, "warm_runs_s": wall[1:], "warm_runs_cpu_s": cpu[1:],
                      "rows_per_s_warm": rows / warm_s, "rows_per_s_cold": rows / wall[0]}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
