"""``runtime.argument_types``: a dispatcher types each bundle (tuple) once per object, and still gets
the right type for every new bundle."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numba.core.typing.typeof import Purpose, typeof

from hftshm.runtime.argument_types import BundleTypes, remember_bundle_types

RECORD = np.dtype([("seq", np.int64), ("price", np.float64)])


class Bundle(NamedTuple):
    records: np.ndarray
    n: int


@njit(_nrt=False)
def _first_price(bundle):
    return bundle.records[0].price * bundle.n


def test_a_bundle_is_typed_once_and_a_new_one_gets_its_own_type():
    wrapper = remember_bundle_types(_first_price)
    assert remember_bundle_types(_first_price) is wrapper  # idempotent
    records = np.zeros(4, dtype=RECORD)
    records[0]["price"] = 2.5
    bundle = Bundle(records, 3)
    # numba's C dispatcher asks typeof_pyval only for what its own fast path cannot type (the
    # compiled cycle's bundles, below); asked directly, the wrapper answers from its memory
    first = _first_price.typeof_pyval(bundle)
    assert first == typeof(bundle, Purpose.argument)
    for _ in range(3):
        assert _first_price.typeof_pyval(bundle) is first
    assert wrapper.misses == 1 and wrapper.hits == 3
    # another bundle is typed on its own: a different dtype gets a different type
    other = Bundle(np.zeros(2, dtype=[("seq", np.int64), ("price", np.float32)]), 2)
    assert _first_price.typeof_pyval(other) == typeof(other, Purpose.argument) != first
    assert wrapper.misses == 2
    assert _first_price.typeof_pyval(7) == typeof(7, Purpose.argument)  # not a tuple: numba's own
    assert wrapper.misses == 2
    records[0]["price"] = 2.5
    other.records[0]["price"] = 1.5
    assert _first_price(bundle) == 7.5 and _first_price(other) == 3.0


def test_the_compiled_cycle_types_its_bundles_once(tmp_path):
    from hftshm.runtime import trading_cycle_nb as nb
    from hftshm.runtime.trading_cycle import TradingCycle
    from hftshm.transport.wait import WaitStrategy
    from tests.trading_cycle_rig import TradingRig

    rig = TradingRig(tmp_path)
    try:
        cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
        assert cycle is not None and cycle.warm()
        cycle.limits = cycle.limits._replace(slice_ns=0, max_slice_ns=0)
        wrapper = nb.run_slice.__dict__["typeof_pyval"]
        assert isinstance(wrapper, BundleTypes)
        cycle.run_slice()
        misses = wrapper.misses
        for _ in range(20):
            assert cycle.run_slice() is not None
        assert wrapper.misses == misses, "the same bundles were typed again on a later slice"
        assert wrapper.hits >= 20
    finally:
        rig.close()
