"""Mean reversion on the mid: fade moves of more than ``entry_z`` deviations, exit inside ``exit_z``.

The mid is sampled every ``sample_interval_ms`` of market time into a rolling window of ``window``
samples; z = (mid - mean) / std over that window. With a full window:

* z <= -entry_z: buy ``quantity`` (IOC at the best ask), while position < ``max_position``;
* z >= +entry_z: sell ``quantity`` (IOC at the best bid), while position > -``max_position``;
* |z| <= exit_z with a position: close it (IOC at the touch).

One order in flight at a time, and at most one decision per ``cooldown_ms``. A compiled strategy
(callbacks in mean_reversion_nb); ``state["decisions"]`` counts the orders it sent and
``state["last_action"]`` says what the last was, so a test or notebook can check the thresholds.
"""

from __future__ import annotations

import math

from hftshm.strategies.base import Param
from hftshm.strategies.builtin import mean_reversion_nb as nb
from hftshm.strategies.compiled import Array, CompiledStrategy


class MeanReversion(CompiledStrategy):
    """Fades z-score extremes of the mid over a rolling window; exits near the mean; position capped."""

    PARAMS = {
        "window": Param(60, "mid samples in the rolling window", min=2),
        "sample_interval_ms": Param(1000.0, "market time between mid samples", positive=True),
        "entry_z": Param(2.0, "enter when |z| reaches this", positive=True),
        "exit_z": Param(0.5, "close the position when |z| falls to this", min=0.0),
        "quantity": Param(0.01, "size of each entry, base units (contracts on an inverse market)", positive=True,
                          contracts=1.0),
        # 1 contract: closing the position is one order, within the shipped risk limit of 1 contract an
        # order (5 had every close of a full position rejected for max_order_size)
        "max_position": Param(0.05, "|position| cap, base units (contracts on an inverse market)", positive=True,
                              contracts=1.0),
        "cooldown_ms": Param(1000.0, "market time between decisions", min=0.0),
    }
    STATE = {"samples": Array("window"), "scratch": Array("window"), **nb.STATE}
    on_book = nb.on_book

    def initialize(self, params):
        if params["exit_z"] >= params["entry_z"]:
            raise ValueError(f"exit_z {params['exit_z']} must be below entry_z {params['entry_z']}")
        if params["quantity"] > params["max_position"]:
            raise ValueError(f"quantity {params['quantity']} exceeds max_position {params['max_position']}")
        super().initialize(params)

    @property
    def z(self) -> float:
        return float(self.state["z"])

    def summary(self):
        z = self.z
        return {"decisions": int(self.state["decisions"]), "last_z": None if math.isnan(z) else z}
