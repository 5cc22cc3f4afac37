"""Mean reversion on the mid: fade moves of more than ``entry_z`` deviations, exit inside ``exit_z``.

The mid is sampled every ``sample_interval_ms`` of market time into a rolling window of ``window``
samples; z = (mid - mean) / std over that window. With a full window:

* z <= -entry_z: buy ``quantity`` (IOC at the best ask), while position < ``max_position``;
* z >= +entry_z: sell ``quantity`` (IOC at the best bid), while position > -``max_position``;
* |z| <= exit_z with a position: close it (IOC at the touch).

One order in flight at a time, and at most one decision per ``cooldown_ms``. Pure Python: it acts
a few times a minute, so a kernel would buy nothing. ``decisions`` keeps (time, z, action) of every
order it sent, so a test or notebook can check the thresholds were honoured.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from hftshm.codes import TimeInForce
from hftshm.strategies.base import Param, Strategy


class MeanReversion(Strategy):
    """Fades z-score extremes of the mid over a rolling window; exits near the mean; position capped."""

    PARAMS = {
        "window": Param(60, "mid samples in the rolling window", min=2),
        "sample_interval_ms": Param(1000.0, "market time between mid samples", positive=True),
        "entry_z": Param(2.0, "enter when |z| reaches this", positive=True),
        "exit_z": Param(0.5, "close the position when |z| falls to this", min=0.0),
        "quantity": Param(0.01, "size of each entry, base units", positive=True),
        "max_position": Param(0.05, "|position| cap, base units", positive=True),
        "cooldown_ms": Param(1000.0, "market time between decisions", min=0.0),
    }

    def initialize(self, params):
        super().initialize(params)
        if params["exit_z"] >= params["entry_z"]:
            raise ValueError(f"exit_z {params['exit_z']} must be below entry_z {params['entry_z']}")
        if params["quantity"] > params["max_position"]:
            raise ValueError(f"quantity {params['quantity']} exceeds max_position {params['max_position']}")
        self.samples: deque[float] = deque(maxlen=params["window"])
        self.sample_ns = int(params["sample_interval_ms"] * 1e6)
        self.cooldown_ns = int(params["cooldown_ms"] * 1e6)
        self.next_sample_ns = 0
        self.next_decision_ns = 0
        self.z = math.nan
        self.decisions: list[tuple[int, float, str]] = []

    def on_book(self, snapshot):
        mid = float(snapshot["mid"])
        if not math.isfinite(mid):
            return
        now = self.now_ns
        if now >= self.next_sample_ns:
            self.samples.append(mid)
            self.next_sample_ns = now + self.sample_ns
        if len(self.samples) < self.samples.maxlen:
            return
        window = np.fromiter(self.samples, dtype=np.float64, count=len(self.samples))
        std = float(window.std())
        if std <= 0.0:
            return
        self.z = z = (mid - float(window.mean())) / std
        if now < self.next_decision_ns or self.portfolio.count("open_orders"):
            return
        p = self.params
        position = self.position
        bid, ask = float(snapshot["bid_px"][0]), float(snapshot["ask_px"][0])
        action = ""
        if z <= -p["entry_z"] and position + p["quantity"] <= p["max_position"] + 1e-12:
            self.buy(ask, p["quantity"], TimeInForce.IOC)
            action = "enter_long"
        elif z >= p["entry_z"] and position - p["quantity"] >= -p["max_position"] - 1e-12:
            self.sell(bid, p["quantity"], TimeInForce.IOC)
            action = "enter_short"
        elif abs(z) <= p["exit_z"] and position != 0.0:
            if position > 0:
                self.sell(bid, position, TimeInForce.IOC)
            else:
                self.buy(ask, -position, TimeInForce.IOC)
            action = "exit"
        if action:
            self.signal(z)
            self.decisions.append((now, z, action))
            self.next_decision_ns = now + self.cooldown_ns

    def summary(self):
        return {"decisions": len(self.decisions), "last_z": None if math.isnan(self.z) else self.z}
