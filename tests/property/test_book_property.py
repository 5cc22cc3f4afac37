"""Property: the numba book agrees with a plain-Python dict book on any sequence of messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hftshm.book.book import BookSet
from hftshm.codes import EventFlag, EventKind, Side
from hftshm.feed.testing import events
from hftshm.symbols import Symbol

LAST = int(EventFlag.LAST_IN_MESSAGE)
SYMBOLS = [Symbol("AAA", 1, 0.1, 0.001), Symbol("BBB", 2, 0.01, 1.0)]


class ReferenceBook:
    """The obvious implementation: a dict per side, sorted when asked."""

    def __init__(self):
        self.sides = {Side.BUY: {}, Side.SELL: {}}

    def clear(self):
        self.sides = {Side.BUY: {}, Side.SELL: {}}

    def set(self, side, ticks, lots):
        if lots == 0:
            self.sides[side].pop(ticks, None)
        else:
            self.sides[side][ticks] = lots

    def top(self, n):
        bids = sorted(self.sides[Side.BUY].items(), reverse=True)[:n]
        asks = sorted(self.sides[Side.SELL].items())[:n]
        return bids, asks


# a level: (side, ticks, lots); ticks span far beyond any window so far levels and re-centring happen
level = st.tuples(st.sampled_from([Side.BUY, Side.SELL]),
                  st.one_of(st.integers(9_900, 10_100), st.integers(1, 2_000_000)),
                  st.one_of(st.just(0), st.integers(1, 5_000)))
message = st.tuples(st.sampled_from([1, 2]), st.sampled_from(["depth", "depth", "depth", "snapshot", "clear"]),
                    st.lists(level, min_size=1, max_size=12))


@settings(max_examples=150, deadline=None)
@given(st.lists(message, min_size=1, max_size=40), st.sampled_from([64, 1024, 1 << 17]), st.integers(1, 12))
def test_book_matches_reference(messages, window, depth):
    books = BookSet(SYMBOLS, window_ticks=window, far_capacity=8)
    refs = {1: ReferenceBook(), 2: ReferenceBook()}
    steps = {1: SYMBOLS[0], 2: SYMBOLS[1]}
    rows = []
    expected = []
    for uid, (sym, kind, levels) in enumerate(messages, start=1):
        tick, lot = steps[sym].tick_size, steps[sym].lot_size
        ref = refs[sym]
        msg = []
        if kind in ("snapshot", "clear"):
            ref.clear()
            msg.append({"kind": EventKind.CLEAR, "symbol_id": sym, "update_id": uid,
                        "flags": int(EventFlag.BOOK_INVALID) if kind == "clear" else 0})
        if kind != "clear":
            for side, ticks, lots in levels:
                if kind == "snapshot" and lots == 0:
                    continue
                ref.set(side, ticks, lots)
                msg.append({"kind": EventKind.DEPTH if kind == "depth" else EventKind.SNAPSHOT, "side": side,
                            "price": ticks * tick, "qty": lots * lot, "symbol_id": sym, "update_id": uid})
        msg[-1]["flags"] = msg[-1].get("flags", 0) | LAST
        rows += msg
        expected.append((sym, ref.top(depth)))
    got = []
    for block in books.apply_top(events(rows), levels=depth):
        for r in range(len(block.meta)):
            b = int(block.meta[r, 0])
            nb, na = int(block.meta[r, 5]), int(block.meta[r, 6])
            bids = [(int(block.bid_px[r, k]), int(block.bid_qty[r, k])) for k in range(nb)]
            asks = [(int(block.ask_px[r, k]), int(block.ask_qty[r, k])) for k in range(na)]
            got.append((SYMBOLS[b].symbol_id, (bids, asks)))
    assert got == expected
    assert books.rejected() == 0
    for sym, ref in refs.items():
        book = books.by_id(sym)
        assert book.depth() == (len(ref.sides[Side.BUY]), len(ref.sides[Side.SELL]))
        best_bid = max(ref.sides[Side.BUY], default=None)
        assert book.best_bid_ticks == best_bid
