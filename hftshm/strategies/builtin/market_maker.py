"""Market maker: quote both sides around the mid, skewed by inventory (rules in market_maker_nb)."""

from __future__ import annotations

import numpy as np

from hftshm.codes import TimeInForce
from hftshm.strategies.base import Param, Strategy
from hftshm.strategies.builtin import market_maker_nb as nb


class MarketMaker(Strategy):
    """Quotes a bid and an ask around the mid at spread_bps, skewed by inventory, within max_inventory."""

    PARAMS = {
        "spread_bps": Param(2.0, "full quoted width, bid to ask, in basis points of the mid", positive=True),
        "quantity": Param(0.01, "size of each quote, base units", positive=True),
        "max_inventory": Param(0.1, "|position| + open orders on a side never exceed this, base units",
                               positive=True),
        "skew_bps": Param(1.0, "how far both quotes shift against a full inventory, basis points", min=0.0),
        "requote_ticks": Param(2, "replace a quote when the wanted price moved this many ticks", min=1),
        "min_requote_interval_ms": Param(100.0, "at most one requote per side per this much market time",
                                         min=0.0),
        "quote_ttl_ms": Param(5000.0, "a quote resting this long is stale: cancel and requote", positive=True),
        "post_only": Param(True, "send quotes post-only (rejected rather than crossing)"),
    }

    #: the compiled backtest loop drives this strategy through ``market_maker_nb.on_book`` directly
    KERNEL = nb

    def initialize(self, params):
        super().initialize(params)
        if params["quantity"] > params["max_inventory"]:
            raise ValueError(f"quantity {params['quantity']} is larger than max_inventory {params['max_inventory']}")
        if params["quantity"] < self.symbol.lot_size:
            raise ValueError(f"quantity {params['quantity']} is below the lot size {self.symbol.lot_size}")
        self.kernel_params = self.kernel_params_of(params)
        self.kernel_state = nb.new_state()

    @staticmethod
    def kernel_params_of(params: dict) -> np.ndarray:
        tif = TimeInForce.POST_ONLY if params["post_only"] else TimeInForce.GTC
        return nb.new_params(params["spread_bps"], params["quantity"], params["max_inventory"], params["skew_bps"],
                             params["requote_ticks"], params["min_requote_interval_ms"], params["quote_ttl_ms"],
                             int(tif))

    def on_book(self, snapshot):
        self._quote(float(snapshot["bid_px"][0]), float(snapshot["ask_px"][0]))

    def on_execution_report(self, report):
        # a fill changes inventory, hence the skew and the headroom: requote without waiting for the book
        if self.best_bid == self.best_bid:
            self._quote(self.best_bid, self.best_ask)

    def _quote(self, best_bid: float, best_ask: float) -> None:
        portfolio = self.portfolio
        nb.on_book(self.kernel_params, self.kernel_state, portfolio.pf, portfolio.orders, self.intents,
                   self.intent_count, self.strategy_id, self.symbol.symbol_id, self.symbol.tick_size,
                   self.symbol.lot_size, self.now_ns, self.origin_ts_ns, best_bid, best_ask)
