"""Parity across processes: the exchange worker in its own process, a strategy stand-in in this one,
real shared-memory rings between them, and the same reports, bit for bit (bar the publisher's seq and
publish stamp), as the in-process run of the same strategy on the same market.

The strategy sends its orders and then a watermark record (action 0, market_ts_ns = the market time it
has processed) in the order ring; the worker (parity on) applies market data only below the safe
horizon of the last watermark, however far ahead the feed is."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
from numpy.lib.recfunctions import repack_fields

from hftshm.exchange.config import ExchangeConfig
from hftshm.exchange.worker import WATERMARK_ACTION, ExchangeWorker
from hftshm.metrics.histogram_nb import SLOTS
from hftshm.runtime.worker import WorkerContext
from hftshm.transport.ring import Ring
from hftshm.transport.testing import no_segment_leaks, unique_name
from tests.unit.test_exchange_simulator import SYMBOLS, in_process, random_market, strategy_orders

CONFIG = ExchangeConfig(fill_model="probabilistic", seed=9)


class _Config:
    exchange = CONFIG
    symbols = SYMBOLS


def _exchange_process(names: dict, run_dir: str) -> None:
    rings = {key: Ring.attach(name, layout) for key, (name, layout) in names.items()}
    ctx = WorkerContext(name="exchange", params={}, inputs={"orders": rings["orders"], "md": rings["md_exchange"]},
                        outputs={"reports": rings["reports"]}, config=_Config(),
                        counters=np.zeros(32, np.int64), histograms={"hop": np.zeros(SLOTS, np.int64)},
                        run_dir=Path(run_dir))
    worker = ExchangeWorker(batch=37, parity=True)
    worker.on_start(ctx)
    deadline = time.monotonic() + 120
    while worker.watermark_ns != np.iinfo(np.int64).max and time.monotonic() < deadline:
        if worker.do_work() == 0:
            time.sleep(0.0002)
    while worker.on_drain() and time.monotonic() < deadline:
        pass
    for ring in rings.values():
        ring.close()


def _write(ring, records) -> None:
    for record in records:
        while not ring.try_write(record):
            time.sleep(0.0001)


def test_worker_in_another_process_matches_the_in_process_run(tmp_path):
    events = random_market(17, 1500)
    expected = in_process(events, CONFIG)
    with no_segment_leaks():
        specs = {"md_exchange": ("market_event", 64), "md_strategy": ("market_event", 64), "orders": ("order", 64),
                 "reports": ("execution_report", 64)}
        rings = {key: Ring.create(unique_name("xp"), layout, capacity) for key, (layout, capacity) in specs.items()}
        names = {key: (ring.name, ring.layout.name) for key, ring in rings.items()}
        child = multiprocessing.get_context("spawn").Process(target=_exchange_process, args=(names, str(tmp_path)))
        child.start()
        try:
            got = _run_feed_and_strategy(events, rings, child)
        finally:
            child.join(60)
            if child.is_alive():
                child.kill()
            for ring in rings.values():
                ring.close()
                ring.unlink()
    assert child.exitcode == 0
    assert len(got) == len(expected) > 30
    fields = [name for name in expected.dtype.names if name not in ("seq", "local_ts_ns")]
    assert repack_fields(got[fields]).tobytes() == repack_fields(expected[fields]).tobytes()
    assert list(got["seq"]) == list(range(len(got)))


def _run_feed_and_strategy(events, rings, child) -> np.ndarray:
    """This process is the feed (one event at a time into both market data rings, the exchange's may
    fill up) and the strategy (reacting to each event, then confirming it with a watermark)."""
    reports = []
    to_exchange = 0
    seen = 0
    watermark = np.iinfo(np.int64).min
    deadline = time.monotonic() + 120
    while seen < len(events) and time.monotonic() < deadline:
        if rings["md_exchange"].try_write(events[to_exchange]) if to_exchange < len(events) else False:
            to_exchange += 1
        if seen < to_exchange:  # the strategy is never ahead of the feed
            watermark = max(watermark, int(events[seen]["exch_ts_ns"]))
            orders = strategy_orders(events, seen)
            if orders is not None:
                _write(rings["orders"], orders)
            mark = np.zeros(1, dtype=rings["orders"].dtype)
            mark["action"], mark["market_ts_ns"] = WATERMARK_ACTION, watermark
            _write(rings["orders"], mark)
            seen += 1
        reports.append(_drain(rings["reports"]))
    mark = np.zeros(1, dtype=rings["orders"].dtype)
    mark["action"], mark["market_ts_ns"] = WATERMARK_ACTION, np.iinfo(np.int64).max  # end of the run
    _write(rings["orders"], mark)
    while child.is_alive() and time.monotonic() < deadline:
        reports.append(_drain(rings["reports"]))
        time.sleep(0.001)
    reports.append(_drain(rings["reports"]))
    return np.concatenate(reports)


def _drain(ring) -> np.ndarray:
    view = ring.poll(1024)
    out = view.copy()
    ring.release(len(view))
    return out
