"""Market maker: quote both sides around the mid, skewed by inventory (rules and callbacks in market_maker_nb)."""

from __future__ import annotations

from hftshm.strategies.base import Param
from hftshm.strategies.builtin import market_maker_nb as nb
from hftshm.strategies.compiled import CompiledStrategy


class MarketMaker(CompiledStrategy):
    """Quotes a bid and an ask around the mid at spread_bps, skewed by inventory, within max_inventory."""

    PARAMS = {
        "spread_bps": Param(2.0, "full quoted width, bid to ask, in basis points of the mid", positive=True),
        "quantity": Param(0.01, "size of each quote, base units (contracts on an inverse market)", positive=True,
                          contracts=1.0),
        # 5 contracts: within the shipped risk limit of 5 a symbol (10 had risk reject a third of a
        # default-config COIN-M run's intents for max_position)
        "max_inventory": Param(0.1, "|position| + open orders on a side never exceed this, base units (contracts "
                               "on an inverse market)", positive=True, contracts=5.0),
        "skew_bps": Param(1.0, "how far both quotes shift against a full inventory, basis points", min=0.0),
        "requote_ticks": Param(2, "replace a quote when the wanted price moved this many ticks", min=1),
        "min_requote_interval_ms": Param(100.0, "at most one requote per side per this much market time",
                                         min=0.0),
        "quote_ttl_ms": Param(5000.0, "a quote resting this long is stale: cancel and requote", positive=True),
        "post_only": Param(True, "send quotes post-only (rejected rather than crossing)"),
    }
    STATE = nb.STATE
    on_book = nb.on_book
    on_report = nb.on_report

    def initialize(self, params):
        if params["quantity"] > params["max_inventory"]:
            raise ValueError(f"quantity {params['quantity']} is larger than max_inventory {params['max_inventory']}")
        if params["quantity"] < self.symbol.lot_size:
            raise ValueError(f"quantity {params['quantity']} is below the lot size {self.symbol.lot_size}")
        super().initialize(params)
