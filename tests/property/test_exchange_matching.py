"""Invariants of the matching engine on random flows, checked against a mirror rebuilt from reports only.

- the resting book is never crossed;
- for every order: executed + cancelled + resting == what was opened (ack qty, then each replace);
- price-time priority: each execution's resting order is the best (price, then time) live order;
- FOK is all or nothing; post-only never takes liquidity (not when new, not when replaced).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings

from hftshm.codes import Action, OrderType, TimeInForce
from hftshm.exchange.config import ExchangeConfig
from hftshm.exchange.engine import MatchingEngine
from hftshm.symbols import Symbol, SymbolTable
from tests.property.exchange_flows import order_flows, report_tuples

SYMBOLS = SymbolTable([Symbol("BTCUSDT", 1, 0.1, 0.001)])
LOT = 1000  # lots per unit: compare quantities as integers


def lots(x: float) -> int:
    return round(x * LOT)


@dataclass
class Live:
    side: int
    price: float
    open_lots: int
    priority: int
    tif: int


def _priority_key(live: Live):
    # best first: highest bid, lowest ask; then earliest
    return (-live.price if live.side == 1 else live.price, live.priority)


@settings(max_examples=250, deadline=None)
@given(orders=order_flows(max_orders=80))
def test_matching_invariants(orders):
    engine = MatchingEngine(ExchangeConfig(book_capacity=32), SYMBOLS)
    live: dict[int, Live] = {}
    opened: dict[int, int] = {}  # order id -> lots opened in total (ack + replace increases)
    closed: dict[int, int] = {}  # order id -> lots executed or cancelled
    priority = 0
    for record in orders:
        reports = report_tuples(engine.process(record.reshape(1)))
        incoming = int(record["target_order_id"]) or int(record["order_id"])
        action = int(record["action"])
        market = action == Action.NEW and int(record["order_type"]) == OrderType.MARKET
        if action == Action.NEW:
            incoming_tif = TimeInForce.IOC if market else int(record["tif"])
        else:
            incoming_tif = live[incoming].tif if incoming in live else 0
        acked_qty = None
        k = 0
        while k < len(reports):
            oid, event, price, qty, leaves, contra, reason = reports[k]
            if event == "ack":
                acked_qty = lots(qty)
                opened[oid] = opened.get(oid, 0) + acked_qty
                assert lots(leaves) == acked_qty
            elif event == "replace":
                before = live.pop(oid)
                opened[oid] += lots(qty) - before.open_lots
                keeps = price == before.price and lots(qty) <= before.open_lots
                live[oid] = Live(before.side, price, lots(qty), before.priority if keeps else 10**9, before.tif)
            elif event in ("partial", "fill"):
                # the aggressor's report, then the resting order's
                rest_oid, rest_event, rest_price, rest_qty, rest_leaves, rest_contra, _ = reports[k + 1]
                assert (rest_contra, contra) == (oid, rest_oid) and rest_qty == qty and rest_price == price
                assert oid == incoming, "only the incoming order takes liquidity"
                assert incoming_tif != TimeInForce.POST_ONLY, "a post-only order took liquidity"
                resting = live[rest_oid]
                side_orders = [v for key, v in live.items() if v.side == resting.side and key != oid]
                assert resting is min(side_orders, key=_priority_key), "price-time priority violated"
                assert price == resting.price
                for this_oid, this_leaves, this_event in ((oid, leaves, event), (rest_oid, rest_leaves, rest_event)):
                    closed[this_oid] = closed.get(this_oid, 0) + lots(qty)
                    assert opened[this_oid] - closed[this_oid] == lots(this_leaves)
                    assert (this_event == "fill") == (lots(this_leaves) == 0)
                resting.open_lots -= lots(qty)
                if resting.open_lots == 0:
                    del live[rest_oid]
                if oid in live:  # a replaced order trading as aggressor
                    live[oid].open_lots -= lots(qty)
                    if live[oid].open_lots == 0:
                        del live[oid]
                k += 2
                continue
            elif event == "cancel":
                closed[oid] = closed.get(oid, 0) + lots(qty)
                assert opened[oid] == closed[oid], "a cancel must close exactly what was open"
                live.pop(oid, None)
            k += 1
        # the incoming order rests if anything of it is still open and it was not cancelled
        if action == Action.NEW and acked_qty is not None:
            remaining = opened[incoming] - closed.get(incoming, 0)
            if remaining:
                priority += 1
                live[incoming] = Live(int(record["side"]), float(record["price"]), remaining, priority,
                                      int(record["tif"]))
        if action == Action.REPLACE and incoming in live and live[incoming].priority == 10**9:
            priority += 1
            live[incoming].priority = priority
        if incoming_tif == TimeInForce.FOK and action == Action.NEW and acked_qty is not None:
            assert opened[incoming] == closed.get(incoming, 0) and incoming not in live, "FOK partially filled"
            assert not any(r[1] == "cancel" and r[0] == incoming for r in reports), "FOK had a remainder"
        _check_book(engine, live)


def _check_book(engine: MatchingEngine, live: dict[int, Live]) -> None:
    bids, asks = engine.book_top(1, 1000)
    if len(bids) and len(asks):
        assert bids["price"][0] < asks["price"][0], "resting book is crossed"
    # the engine rests exactly what the reports say is open, order by order
    for oid, mirror in live.items():
        state = engine.open_order(oid)
        assert state is not None and lots(state["leaves_qty"]) == mirror.open_lots and state["price"] == mirror.price
    assert engine.resting_orders(1) == len(live)
    shown = sum(lots(q) for q in bids["qty"]) + sum(lots(q) for q in asks["qty"])
    assert shown == sum(v.open_lots for v in live.values())
