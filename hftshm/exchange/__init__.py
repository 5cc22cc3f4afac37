"""The simulated exchange: a price-time priority matching engine (``engine.MatchingEngine``) and a
replay fill model that trades our orders against recorded market data (``simulator.ExchangeSimulator``)."""
