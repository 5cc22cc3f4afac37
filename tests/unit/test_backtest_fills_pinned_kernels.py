"""The shipped day's fills, pinned: a speed change in the fill model, the market view, the latency
draws or the L2 book must leave every fill (and every report) of the real day exactly as it was.

Two drivers: the built-in market maker through ``run_backtest`` (compiled loop: book, strategy,
risk, OMS, exchange), and the scripted quoter of ``test_exchange_fill_model_day`` straight on the
``ExchangeSimulator`` (takers, market orders, IOC, queue and cross fills; both queue models), whose
whole report stream (latencies, flags, sequence numbers) is hashed. A digest changes only with a
documented fix to the fill rules; then update it here with the reason in the commit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from hftshm.codes import EventFlag, ReportEvent
from hftshm.exchange.config import ExchangeConfig
from hftshm.feed.cache import load_events
from hftshm.symbols import DEFAULT_SYMBOLS
from tests.unit.test_exchange_fill_model_day import run_day

DATA = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"

MARKET_MAKER_FILLS = (159, "ed831199da31f22a14bb2a55261aa39a60f49316d5785ed9e0c1aff141e1cd4b")
QUOTER_REPORTS = {
    "risk_averse": (1601, "1bb251803d62f5ffaabf3039679393b9505e9192c0a4a77d1880a0d19b1e0151"),
    "probabilistic": (1599, "888382bc21509d718e2fc030d1437371a9b400be3ece36291c47ad0627f58a7f"),
}


@pytest.fixture(scope="module")
def day():
    if not DATA.exists():
        pytest.skip(f"{DATA} not present")
    return np.asarray(load_events(DATA, DEFAULT_SYMBOLS))


def fills_digest(fills) -> tuple[int, str]:
    """(count, sha256) of (exch_ts, client id, side, price, qty, fee) per fill, in order."""
    h = hashlib.sha256()
    for f in fills:
        h.update(repr((int(f["exch_ts_ns"]), int(f["client_order_id"]), int(f["side"]), float(f["price"]),
                       float(f["qty"]), float(f["fee"]))).encode())
    return len(fills), h.hexdigest()


def test_market_maker_fills_of_the_day_are_pinned(day):
    from hftshm.backtest.api import run_backtest

    result = run_backtest(None, day, "market_maker", {}, seed=1, engine_name="compiled")
    assert fills_digest(result.fills) == MARKET_MAKER_FILLS


@pytest.mark.slow  # a Python step per exchange message: ~5 s each
@pytest.mark.parametrize("model", ["risk_averse", "probabilistic"])
def test_fill_model_reports_of_the_day_are_pinned(day, model):
    ends = np.flatnonzero(day["flags"] & EventFlag.LAST_IN_MESSAGE) + 1
    bounds = np.concatenate([[0], ends[ends < len(day)], [len(day)]])
    reports, _ = run_day(day, bounds, ExchangeConfig(fill_model=model, seed=11), checks=False)
    fills = int(np.isin(reports["event"], [ReportEvent.PARTIAL, ReportEvent.FILL]).sum())
    assert fills > 100  # the quoter trades on the day: the digest covers fills, not just acks
    assert (len(reports), hashlib.sha256(reports.tobytes()).hexdigest()) == QUOTER_REPORTS[model]
