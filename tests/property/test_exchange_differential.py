"""The numba matching engine and the plain-Python reference matcher agree report for report."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hftshm.exchange.config import ExchangeConfig
from hftshm.exchange.engine import MatchingEngine
from hftshm.symbols import Symbol, SymbolTable
from tests.property.exchange_flows import normalise, order_flows, report_tuples
from tests.property.exchange_reference import ReferenceMatcher

SYMBOLS = SymbolTable([Symbol("BTCUSDT", 1, 0.1, 0.001)])


@settings(max_examples=300, deadline=None)
@given(orders=order_flows(max_orders=80), capacity=st.sampled_from([3, 1000]))
def test_engine_and_reference_produce_the_same_reports(orders, capacity):
    engine = MatchingEngine(ExchangeConfig(book_capacity=capacity), SYMBOLS)
    got = report_tuples(engine.process(orders))
    reference = ReferenceMatcher(capacity)
    for record in orders:
        reference.apply(record)
    assert got == normalise(reference.reports)


@settings(max_examples=100, deadline=None)
@given(orders=order_flows(max_orders=60, poison=False, owners=1))
def test_batching_does_not_change_reports(orders):
    """One call for the whole flow or one call per order: same reports (the kernel keeps no batch state)."""
    whole = report_tuples(MatchingEngine(ExchangeConfig(book_capacity=64), SYMBOLS).process(orders))
    engine = MatchingEngine(ExchangeConfig(book_capacity=64), SYMBOLS, output_capacity=16)
    one_by_one = []
    for k in range(len(orders)):
        one_by_one += report_tuples(engine.process(orders[k:k + 1]))
    assert whole == one_by_one
