"""The OMS order table's hash indexes and slot allocation."""

from __future__ import annotations

import numpy as np

from hftshm.oms import order_table_nb


def test_index_insert_find_delete():
    keys_a, keys_b, values = order_table_nb.new_index(8)
    assert order_table_nb.index_insert(keys_a, keys_b, values, 5, 7, 3) == 1
    assert order_table_nb.index_insert(keys_a, keys_b, values, 5, 7, 4) == 0, "a present key is not overwritten"
    assert order_table_nb.index_find(keys_a, keys_b, values, 5, 7) == 3
    assert order_table_nb.index_find(keys_a, keys_b, values, 7, 5) == -1
    assert order_table_nb.index_delete(keys_a, keys_b, values, 5, 7) == 1
    assert order_table_nb.index_delete(keys_a, keys_b, values, 5, 7) == 0
    assert order_table_nb.index_find(keys_a, keys_b, values, 5, 7) == -1


def test_deleting_inside_a_probe_chain_keeps_the_rest_findable():
    keys_a, keys_b, values = order_table_nb.new_index(64)
    keys = [(1, k) for k in range(100)]
    for slot, (a, b) in enumerate(keys):
        order_table_nb.index_insert(keys_a, keys_b, values, a, b, slot)
    for a, b in keys[::3]:
        order_table_nb.index_delete(keys_a, keys_b, values, a, b)
    for slot, (a, b) in enumerate(keys):
        expected = -1 if slot % 3 == 0 else slot
        assert order_table_nb.index_find(keys_a, keys_b, values, a, b) == expected


def test_slots_come_free_first_then_oldest_retired():
    orders, free, retired, words = order_table_nb.new_slots(3)
    oid = order_table_nb.new_index(3)
    cid = order_table_nb.new_index(3)

    def allocate():
        return int(order_table_nb.allocate_slot(orders, free, retired, words, *oid, *cid))

    slots = [allocate() for _ in range(3)]
    assert sorted(slots) == [0, 1, 2]
    for slot in slots:
        orders[slot]["order_id"] = 100 + slot
        orders[slot]["state"] = 1
        order_table_nb.index_insert(*oid, 100 + slot, 0, slot)
        words[order_table_nb.S_OPEN] += 1
    assert allocate() == -1, "every slot holds an open order"
    order_table_nb.retire_slot(retired, words, slots[1])
    order_table_nb.retire_slot(retired, words, slots[0])
    assert words[order_table_nb.S_OPEN] == 1
    reused = allocate()
    assert reused == slots[1], "the oldest retired order gives its slot first"
    assert order_table_nb.index_find(*oid, 100 + slots[1], 0) == -1, "and is forgotten"
    assert order_table_nb.index_find(*oid, 100 + slots[0], 0) == slots[0], "the other stays findable"
    assert orders[reused]["state"] == 0


def test_index_capacity_is_a_power_of_two_at_most_half_full():
    for n in (1, 16, 17, 1000, 65536):
        capacity = order_table_nb.index_capacity(n)
        assert capacity & (capacity - 1) == 0 and capacity >= 2 * n
    assert np.all(order_table_nb.new_index(10)[2] == order_table_nb.EMPTY)
