"""The fill model's market view (dense window + far arrays) against a plain dict model of its semantics:
levels set/deleted by price, ``used`` reset by the market's next update of a level, a side full to
``depth`` dropping its worst level (or the newcomer if it is worse), BBO trimming better stale levels,
walking a side best first. Small windows force levels through the far arrays and re-centring."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hftshm.exchange import market_view_nb as mv


class DictView:
    def __init__(self, depth: int):
        self.depth = depth
        self.sides = ({}, {})  # price -> [qty, used]
        self.dropped = 0
        self.last_update_id = 0

    @staticmethod
    def key(side, price):
        return price if side == 0 else -price

    def set_level(self, side, price, lots):
        levels = self.sides[side]
        if price in levels:
            before = levels[price][0]
            if lots > 0:
                levels[price] = [lots, 0]
            else:
                del levels[price]
            return before
        if lots <= 0:
            return 0
        if len(levels) == self.depth:
            self.dropped += 1
            worst = min(levels, key=lambda p: self.key(side, p))
            if self.key(side, price) < self.key(side, worst):
                return 0
            del levels[worst]
        levels[price] = [lots, 0]
        return 0

    def apply_bbo(self, side, price, lots, update_id):
        if update_id < self.last_update_id or price <= 0:
            return
        for p in [p for p in self.sides[side] if self.key(side, p) > self.key(side, price)]:
            del self.sides[side][p]
        self.set_level(side, price, lots)

    def walk(self, side):
        levels = self.sides[side]
        return [(p, *levels[p]) for p in sorted(levels, key=lambda p: -self.key(side, p))]


def walk(v, side):
    out = []
    loc = mv.best_loc(v["mv_price"], v["mv_i64"], 0, side)
    while loc >= 0:
        out.append((int(mv.loc_price(v["mv_price"], v["mv_i64"], 0, side, loc)), int(v["mv_qty"][0, side, loc]),
                    int(v["mv_used"][0, side, loc])))
        loc = mv.next_loc(v["mv_price"], v["mv_qty"], v["mv_i64"], 0, side, loc)
    return out


op = st.tuples(st.sampled_from(["set", "set", "set", "set", "bbo", "use", "clear"]), st.integers(0, 1),
               st.integers(1, 60), st.sampled_from([0, 1, 5, 30]), st.integers(1, 50))


@settings(max_examples=500, deadline=None)
@given(depth=st.sampled_from([1, 2, 3, 8, 64]), window=st.sampled_from([8, 16, 64, 1024]),
       base=st.sampled_from([1, 1000, 1 << 30]), ops=st.lists(op, max_size=80))
def test_market_view_matches_dict_model(depth, window, base, ops):
    v = mv.allocate(1, depth, window)
    arrays = (v["mv_price"], v["mv_qty"], v["mv_used"], v["mv_i64"])
    ref = DictView(depth)
    update_id = 0
    for kind, side, offset, lots, amount in ops:
        price = base + offset * (1 if offset % 5 else 40)  # some levels far apart
        if kind == "set":
            update_id += 1
            v["mv_i64"][0, mv.MV_LAST_UPDATE_ID] = ref.last_update_id = update_id
            assert mv.set_level(*arrays, 0, side, price, lots) == ref.set_level(side, price, lots)
        elif kind == "bbo":
            mv.apply_bbo(*arrays, 0, side, price, lots, update_id - amount % 3)
            ref.apply_bbo(side, price, lots, update_id - amount % 3)
        elif kind == "clear":
            mv.clear(*arrays, 0)
            ref.sides[0].clear()
            ref.sides[1].clear()
        else:  # our order took from the k-th level: the view must find the same level again
            levels = walk(v, side)
            if levels:
                k = amount % len(levels)
                loc = mv.best_loc(v["mv_price"], v["mv_i64"], 0, side)
                for _ in range(k):
                    loc = mv.next_loc(v["mv_price"], v["mv_qty"], v["mv_i64"], 0, side, loc)
                v["mv_used"][0, side, loc] += amount
                ref.sides[side][levels[k][0]][1] += amount
        for s in (0, 1):
            assert walk(v, s) == ref.walk(s)
            assert mv.qty_at(v["mv_price"], v["mv_qty"], v["mv_i64"], 0, s, price) == \
                ref.sides[s].get(price, [0])[0]
        assert v["mv_i64"][0, mv.MV_DROPPED] == ref.dropped
