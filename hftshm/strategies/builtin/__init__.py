"""Built-in strategies: ``market_maker``, ``mean_reversion``, ``vwap`` (see ``hftshm.strategies.registry``)."""
