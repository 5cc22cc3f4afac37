"""VWAP execution: work ``target_qty`` on one side over ``horizon_s``, following traded volume.

From the first event it sees (the start), it counts the market's traded volume and keeps its own
executed quantity near ``participation`` of it. So that the target is done within the horizon
whatever the volume, a time floor takes over when volume-following falls behind a straight-line
schedule that ends at ``finish_fraction`` of the horizon; after that point, whatever remains is sent
as a market order. Child orders are IOC limits at the opposite touch, one in flight at a time,
each at most ``max_slice`` (a small slice does not walk the book). A refused child (risk's limit,
the kill switch) is tried again at the next timer, not at every event, and counted (``rejects``).

``summary()`` reports the average fill price against the market VWAP (trades) of the same
interval, start to completion: slippage in bps, positive = worse than the market (paid more on a
buy, received less on a sell).
"""

from __future__ import annotations

import math

from hftshm.codes import Side
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.base import Param
from hftshm.strategies.builtin import vwap_nb as nb
from hftshm.strategies.compiled import Array, CompiledStrategy


class VwapExecution(CompiledStrategy):
    """Executes target_qty on one side within horizon_s, slicing by market volume under a participation cap."""

    PARAMS = {
        "side": Param("buy", "buy or sell", choices=("buy", "sell")),
        # 5 contracts: within the shipped risk limit of 5 a symbol (100 could never be held)
        "target_qty": Param(0.5, "quantity to execute, base units (contracts on an inverse market)", positive=True,
                            contracts=5.0),
        "horizon_s": Param(300.0, "market time from the first event by which the target is done", positive=True),
        "participation": Param(0.1, "fraction of market traded volume to follow", positive=True, max=1.0),
        # a size too: 0.05 of a 1-contract lot rounded every slice to nothing, and the whole target then
        # went out at the finish time as one order above the risk limit, rejected again on every event
        "max_slice": Param(0.05, "largest child order, base units (contracts on an inverse market)", positive=True,
                           contracts=1.0),
        "finish_fraction": Param(0.9, "the time floor completes the target by this fraction of the horizon",
                                 positive=True, max=1.0),
    }
    STATE = {**nb.STATE, "gather": Array(nb.GATHER)}
    TIMER_INTERVAL_NS = 250_000_000
    on_events = nb.on_events
    on_timer = nb.on_timer
    on_report = nb.on_report

    def initialize(self, params):
        lot = self.symbol.lot_size
        if params["target_qty"] < lot:
            raise ValueError(f"target_qty {params['target_qty']} is below the lot size {lot}")
        super().initialize(params)
        self.side = Side.BUY if params["side"] == "buy" else Side.SELL
        self.target = self.round_qty(params["target_qty"])
        self.state["target"] = self.target

    def on_restart(self):
        # what this side executed before the restart is in the rebuilt portfolio: do not work it again
        pf, state = self.portfolio.pf, self.state
        fill_qty = float(pf[pnb.PF_BUY_QTY] if self.side == Side.BUY else pf[pnb.PF_SELL_QTY])
        state["fill_qty"] = fill_qty
        state["fill_notional"] = float(pf[pnb.PF_TRADED_NOTIONAL]) if fill_qty else 0.0
        if fill_qty and self.remaining() < self.symbol.lot_size:
            state["done_ns"] = int(pf[pnb.PF_LAST_FILL_TS]) or 1

    def remaining(self) -> float:
        return self.round_qty(self.target - float(self.state["fill_qty"]) + 1e-12)

    def __getattr__(self, name):
        # the Python version's attributes (fill_qty, market_qty, start_ns, done_ns...) read the state
        state = self.__dict__.get("state_array")
        if state is not None and name in state.dtype.names:
            return state[0][name].item()
        raise AttributeError(name)

    # -- results ---------------------------------------------------------------------------------
    def summary(self):
        avg = self.fill_notional / self.fill_qty if self.fill_qty else math.nan
        market_vwap = self.market_notional / self.market_qty if self.market_qty else math.nan
        sign = 1.0 if self.side == Side.BUY else -1.0
        known = avg == avg and market_vwap == market_vwap
        slippage = sign * (avg - market_vwap) / market_vwap * 1e4 if known else math.nan
        end_ns = self.done_ns or self.now_ns
        return {
            "side": self.params["side"],
            "target_qty": self.target,
            "filled_qty": round(self.fill_qty, 9),
            "completed": bool(self.done_ns),
            "start_ns": self.start_ns,
            "end_ns": end_ns,
            "elapsed_s": (end_ns - self.start_ns) / 1e9 if self.start_ns else 0.0,
            "horizon_s": self.params["horizon_s"],
            "avg_fill_price": None if avg != avg else avg,
            "market_vwap": None if market_vwap != market_vwap else market_vwap,
            "slippage_bps": None if slippage != slippage else slippage,
            "market_qty": self.market_qty,
            "participation_realized": self.fill_qty / self.market_qty if self.market_qty else None,
            "rejects": self.rejects,
        }
