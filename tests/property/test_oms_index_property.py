"""The OMS hash index behaves like a dict under any sequence of inserts and deletes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hftshm.oms import order_table_nb

keys = st.tuples(st.integers(0, 40), st.integers(-(2**40), 2**40))
operations = st.lists(st.tuples(st.sampled_from(["insert", "delete"]), keys), max_size=300)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_index_matches_a_dict(ops):
    keys_a, keys_b, values = order_table_nb.new_index(256)
    model: dict[tuple[int, int], int] = {}
    for i, (op, (a, b)) in enumerate(ops):
        if op == "insert":
            inserted = order_table_nb.index_insert(keys_a, keys_b, values, a, b, i)
            assert inserted == (0 if (a, b) in model else 1)
            model.setdefault((a, b), i)
        else:
            present = model.pop((a, b), None) is not None
            assert order_table_nb.index_delete(keys_a, keys_b, values, a, b) == (1 if present else 0)
    for (a, b), value in model.items():
        assert order_table_nb.index_find(keys_a, keys_b, values, a, b) == value
    for op, (a, b) in ops:
        if (a, b) not in model:
            assert order_table_nb.index_find(keys_a, keys_b, values, a, b) == -1
