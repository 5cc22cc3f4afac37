"""A deliberately plain reference matcher, written apart from the numba engine, for differential tests.

No linked lists, no ladders: the book is one Python list of resting orders, and "best" is found by
sorting it on (price priority, arrival number) every time. Slow and obviously correct is the point.
Prices and quantities are integers (ticks, lots) via Python's own round(); reports come out as the
same tuples the CLI prints: (order_id, event, price, qty, leaves_qty, contra_order_id, reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hftshm.codes import Action, OrderType, Side, TimeInForce

MAX_PRICE_TICKS = 10**15
MAX_QTY_LOTS = 10**12


@dataclass
class Resting:
    order_id: int
    owner: int
    side: int  # Side.BUY / Side.SELL
    price: int  # ticks
    leaves: int  # lots
    tif: int
    arrival: int  # time priority: smaller is earlier


def _units(value: float, per_unit: int) -> int | None:
    """value * per_unit as an integer if it is a positive on-grid number within bounds."""
    if not isinstance(value, float) or math.isnan(value) or math.isinf(value) or value <= 0:
        return None
    exact = value * per_unit
    units = round(exact)
    if units <= 0 or abs(exact - units) > 1e-6 * max(1.0, exact * 1e-9):
        return None
    return units


class ReferenceMatcher:
    """One symbol (id 1), tick 1/ticks_per_unit, lot 1/lots_per_unit."""

    def __init__(self, capacity: int, ticks_per_unit: int = 10, lots_per_unit: int = 1000, symbol_id: int = 1):
        self.capacity = capacity
        self.tpu = ticks_per_unit
        self.lpu = lots_per_unit
        self.symbol_id = symbol_id
        self.book: list[Resting] = []
        self.arrivals = 0
        self.reports: list[tuple] = []

    # ------------------------------------------------------------------ helpers
    def _price(self, ticks: int) -> float:
        return ticks / self.tpu

    def _qty(self, lots: int) -> float:
        return lots / self.lpu

    def _emit(self, order_id, event, price, qty, leaves, contra=0, reason=""):
        self.reports.append((order_id, event, price, qty, leaves, contra, reason))

    def _find(self, order_id: int) -> Resting | None:
        for r in self.book:
            if r.order_id == order_id:
                return r
        return None

    def _opposite_in_priority(self, side: int) -> list[Resting]:
        opposite = [r for r in self.book if r.side != side]
        if side == Side.BUY:  # buying: cheapest ask first
            return sorted(opposite, key=lambda r: (r.price, r.arrival))
        return sorted(opposite, key=lambda r: (-r.price, r.arrival))

    @staticmethod
    def _crosses(side: int, limit: float, price: int) -> bool:
        return price <= limit if side == Side.BUY else price >= limit

    def _next_arrival(self) -> int:
        self.arrivals += 1
        return self.arrivals

    def _match(self, order_id, owner, side, limit, leaves):
        for rest in self._opposite_in_priority(side):
            if leaves == 0 or not self._crosses(side, limit, rest.price):
                break
            if rest.owner == owner:
                self.book.remove(rest)
                self._emit(rest.order_id, "cancel", self._price(rest.price), self._qty(rest.leaves), 0.0, 0, "stp")
                continue
            take = min(leaves, rest.leaves)
            leaves -= take
            rest.leaves -= take
            price = self._price(rest.price)
            self._emit(order_id, "fill" if leaves == 0 else "partial", price, self._qty(take), self._qty(leaves),
                       rest.order_id)
            self._emit(rest.order_id, "fill" if rest.leaves == 0 else "partial", price, self._qty(take),
                       self._qty(rest.leaves), order_id)
            if rest.leaves == 0:
                self.book.remove(rest)
        return leaves

    # ------------------------------------------------------------------ actions
    def new(self, order_id, owner, symbol_id, side, order_type, tif, price, qty):
        def reject(reason):
            self._emit(order_id, "reject", price, qty, 0.0, 0, reason)

        if symbol_id != self.symbol_id:
            return reject("unknown_symbol")
        if side not in (Side.BUY, Side.SELL) or order_type not in (OrderType.LIMIT, OrderType.MARKET):
            return reject("malformed_order")
        if order_type == OrderType.LIMIT and tif not in (1, 2, 3, 4):
            return reject("malformed_order")
        market = order_type == OrderType.MARKET
        if market:
            tif = TimeInForce.IOC
            limit = math.inf if side == Side.BUY else -math.inf
        else:
            limit = _units(price, self.tpu)
            if limit is None or limit > MAX_PRICE_TICKS:
                return reject("bad_price")
        lots = _units(qty, self.lpu)
        if lots is None or lots > MAX_QTY_LOTS:
            return reject("bad_qty")
        if order_id <= 0:
            return reject("unknown_order")
        if self._find(order_id) is not None:
            return reject("duplicate_order_id")
        rests = tif in (TimeInForce.GTC, TimeInForce.POST_ONLY)
        if rests and len(self.book) >= self.capacity:
            return reject("book_full")
        opposite = self._opposite_in_priority(side)
        if tif == TimeInForce.POST_ONLY and opposite and self._crosses(side, limit, opposite[0].price):
            return reject("post_only_would_cross")
        if tif == TimeInForce.FOK:
            available = sum(r.leaves for r in opposite if r.owner != owner and self._crosses(side, limit, r.price))
            if available < lots:
                return reject("fok_cannot_fill")
        shown_price = math.nan if market else self._price(limit)
        self._emit(order_id, "ack", shown_price, self._qty(lots), self._qty(lots))
        leaves = self._match(order_id, owner, side, limit, lots)
        if leaves == 0:
            return None
        if not rests:
            self._emit(order_id, "cancel", shown_price, self._qty(leaves), 0.0, 0, "ioc_remainder")
            return None
        self.book.append(Resting(order_id, owner, side, limit, leaves, tif, self._next_arrival()))
        return None

    def cancel(self, order_id, price=math.nan, qty=math.nan):
        rest = self._find(order_id) if order_id > 0 else None
        if rest is None:
            self._emit(order_id, "reject", price, qty, 0.0, 0, "unknown_order")
            return
        self.book.remove(rest)
        self._emit(order_id, "cancel", self._price(rest.price), self._qty(rest.leaves), 0.0, 0, "user_cancel")

    def replace(self, order_id, price, qty):
        def reject(reason):
            self._emit(order_id, "reject", price, qty, 0.0, 0, reason)

        rest = self._find(order_id) if order_id > 0 else None
        if rest is None:
            return reject("unknown_order")
        ticks = _units(price, self.tpu)
        if ticks is None or ticks > MAX_PRICE_TICKS:
            return reject("bad_price")
        lots = _units(qty, self.lpu)
        if lots is None or lots > MAX_QTY_LOTS:
            return reject("bad_qty")
        opposite = self._opposite_in_priority(rest.side)
        crosses = bool(opposite) and self._crosses(rest.side, ticks, opposite[0].price)
        if crosses and rest.tif == TimeInForce.POST_ONLY:
            return reject("post_only_would_cross")
        self._emit(order_id, "replace", self._price(ticks), self._qty(lots), self._qty(lots))
        if ticks == rest.price and lots <= rest.leaves:
            rest.leaves = lots
            return None
        self.book.remove(rest)
        leaves = self._match(order_id, rest.owner, rest.side, ticks, lots) if crosses else lots
        if leaves:
            rest.price, rest.leaves, rest.arrival = ticks, leaves, self._next_arrival()
            self.book.append(rest)
        return None

    def apply(self, record) -> None:
        """Apply one ``order`` record (as the engine would)."""
        action = int(record["action"])
        oid = int(record["order_id"])
        if action == Action.NEW:
            self.new(oid, int(record["owner"]), int(record["symbol_id"]), int(record["side"]),
                     int(record["order_type"]), int(record["tif"]), float(record["price"]), float(record["qty"]))
        elif action == Action.CANCEL:
            target = int(record["target_order_id"]) or oid
            self.cancel(target, float(record["price"]), float(record["qty"]))
        elif action == Action.REPLACE:
            target = int(record["target_order_id"]) or oid
            self.replace(target, float(record["price"]), float(record["qty"]))
        else:
            self._emit(oid, "reject", float(record["price"]), float(record["qty"]), 0.0, 0, "malformed_order")
