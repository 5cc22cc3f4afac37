"""A second platform starts from a first one's positions, rebuilt from its order-event journal in
JetStream (``[bridge] recover_from``, ``hftshm run --recover-from-journal``).

The first platform trades the head of the real day and exports its order events to NATS. The
second starts with ``recover_from`` = the first's namespace and trading halted (only cancels pass,
so nothing it does moves a position): its strategies' positions, average prices, realized PnL and
fees, and its risk stage's realized PnL and fees, equal the first platform's at its end."""

import gzip
import math
import uuid

import numpy as np
import pytest

from hftshm.bridge.journal_positions import fills_of
from hftshm.codes import OrderEventKind
from hftshm.transport import layout
from tests.bridge_helpers import NATS_URL, delete_stream
from tests.e2e.platform_harness import MARKET_MAKER_AND_VWAP, REAL_DAY, e2e_config, run_platform
from tests.market_files import canonical_rows

HEAD_ROWS = 120_000  # the first minutes of the day: both strategies fill on both sides


def _head_of_day(path):
    with gzip.open(REAL_DAY, "rt") as source:
        header = source.readline()
    with gzip.open(path, "wt") as out:
        out.write(header)
        for row in canonical_rows(REAL_DAY, HEAD_ROWS):
            out.write(",".join(row) + "\n")
    return path


def _positions(result) -> dict:
    return {(p.strategy, p.symbol): (round(p.quantity, 9), round(p.avg_price, 6) if p.quantity else None,
                                     round(p.realized_pnl, 6), round(p.fees, 6))
            for p in result.snapshot.positions}


def test_fills_of_takes_the_fill_events_in_event_order():
    events = layout.load("order_event").zeros(4)
    events["event_id"] = [7, 3, 5, 9]
    events["kind"] = [int(OrderEventKind.FILL), int(OrderEventKind.ACK), int(OrderEventKind.PARTIAL),
                      int(OrderEventKind.CANCELLED)]
    events["exec_price"] = [101.0, 0.0, 100.0, 0.0]
    events["exec_qty"] = [0.2, 0.0, 0.1, 0.0]
    fills = fills_of(events)
    assert fills["event_id"].tolist() == [5, 7]
    assert fills["price"].tolist() == [100.0, 101.0] and fills["qty"].tolist() == [0.1, 0.2]


@pytest.mark.slow
def test_a_second_platform_starts_from_the_first_ones_positions_rebuilt_from_the_journal(tmp_path):
    data = _head_of_day(tmp_path / "head.csv.gz")
    first_ns, second_ns = "rec" + uuid.uuid4().hex[:8], "rec" + uuid.uuid4().hex[:8]
    common = {"feed": {"data": [str(data)]}, "bridge": {"url": NATS_URL}, **MARKET_MAKER_AND_VWAP}
    try:
        first = run_platform(e2e_config(tmp_path / "first", {**common, "bridge": {"url": NATS_URL,
                                                                                  "namespace": first_ns}},
                                        rings={"oms.events": {"export": "nats:"}}), timeout_s=500)
        assert first.fills, "the first platform traded nothing"
        traded = _positions(first)
        assert any(q for q, *_ in traded.values()), traded
        second = run_platform(e2e_config(tmp_path / "second", {
            **common, "bridge": {"url": NATS_URL, "namespace": second_ns, "recover_from": first_ns},
            "risk": {"initial_state": "halted"}}), timeout_s=500)
    finally:
        delete_stream(first_ns)
        delete_stream(second_ns)
    assert not second.fills, "halted: the second platform must not have traded"
    assert _positions(second) == traded
    assert math.isclose(second.snapshot.risk.realized_pnl, first.snapshot.risk.realized_pnl, abs_tol=1e-6)
    assert math.isclose(second.snapshot.risk.fees, first.snapshot.risk.fees, abs_tol=1e-6)
    assert np.isclose(second.snapshot.risk.fees, sum(f[3] for f in traded.values()), atol=1e-6)
    assert "recover: risk booked %d fills" % len(first.fills) in second.logs["risk"]
