"""Risk's open-order hash table behaves like a dict under inserts and removals (backward shift)."""

from __future__ import annotations

import random

import numpy as np

from hftshm.risk import orders_nb


def test_table_matches_a_dict_under_churn():
    table = orders_nb.new_table(64)
    mirror: dict[tuple[int, int], int] = {}
    rng = random.Random(7)
    keys = [(rng.randrange(3), rng.randrange(1, 200)) for _ in range(300)]
    for step in range(5000):
        key = rng.choice(keys)
        if key in mirror and rng.random() < 0.5:
            slot = orders_nb.find(table, *key)
            assert slot >= 0
            orders_nb.remove(table, slot)
            del mirror[key]
        elif key not in mirror:
            slot = orders_nb.insert(table, key[0], key[1], len(mirror))
            if len(mirror) * 8 >= len(table) * 7:
                assert slot == -1  # refuses to go past 7/8 full
                continue
            assert slot >= 0
            table[slot]["price"] = step
            mirror[key] = step
        else:
            assert orders_nb.insert(table, key[0], key[1], len(mirror)) == -1  # duplicate key
        if step % 97 == 0:
            for k, value in mirror.items():
                slot = orders_nb.find(table, *k)
                assert slot >= 0 and table[slot]["price"] == value
            assert int(table["used"].sum()) == len(mirror)
    for k in set(keys) - set(mirror):
        assert orders_nb.find(table, *k) == -1


def test_capacity_rounds_up_to_a_power_of_two():
    assert len(orders_nb.new_table(1000)) == 1024
    assert len(orders_nb.new_table(1)) == 16
    assert orders_nb.new_table(16).dtype.itemsize == 48
    assert np.all(orders_nb.new_table(32)["used"] == 0)


def test_a_new_table_is_resident_before_the_first_order():
    import resource

    table = orders_nb.new_table(8192)  # 384 KB: np.zeros alone leaves its ~96 pages unmapped
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    table.view(np.uint8)[::4096] = 1  # a write to every page, as random order slots do over time
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 10
