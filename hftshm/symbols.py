"""The symbol table: names, numeric ids carried in records, tick and lot sizes, market kind (``[symbols]``).

Data files bring their own instruments (``hftshm.feed.instruments``); ``[symbols]`` overrides them.
market: ``spot``, ``linear`` (USD-M: qty in the coin) or ``inverse`` (COIN-M: qty in contracts of
``contract_size`` USD each; position and PnL in the coin).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from hftshm.config import ConfigError, Section


@dataclass(frozen=True)
class Symbol:
    name: str
    symbol_id: int
    tick_size: float
    lot_size: float
    market: str = "linear"
    contract_size: float = 1.0


MARKETS = ("spot", "linear", "inverse")


class Market(IntEnum):
    """Market kind as kernels take it (``hftshm.instruments_nb``); the names are ``MARKETS``."""

    SPOT = 0
    LINEAR = 1
    INVERSE = 2

    @classmethod
    def of(cls, name: str) -> "Market":
        return cls[name.upper()]


class SymbolTable:
    def __init__(self, symbols: list[Symbol], explicit: dict[str, frozenset] | None = None):
        # which keys [symbols] set explicitly per symbol (a data file's instrument fills in the rest)
        self.explicit = dict(explicit or {})
        self.fallback = False  # True: built-in defaults, not a user's config (data instruments replace them)
        self._by_name = {s.name: s for s in symbols}
        self._by_id = {s.symbol_id: s for s in symbols}
        if len(self._by_id) != len(symbols):
            raise ConfigError("[symbols] two symbols share an id; every symbol needs its own id")

    @classmethod
    def from_section(cls, raw: dict | None) -> "SymbolTable":
        section = Section("symbols", raw or {})
        symbols = []
        explicit = {}
        for name in list(section.raw):
            sub = section.sub(name)
            keys = frozenset(sub.raw) if isinstance(sub.raw, dict) else frozenset()
            symbols.append(Symbol(
                name=name.upper(),
                symbol_id=sub.integer("id", min=1, max=65535),
                tick_size=float(sub.number("tick_size", positive=True)),
                lot_size=float(sub.number("lot_size", 0.001, positive=True)),
                market=sub.choice("market", MARKETS, "linear"),
                contract_size=float(sub.number("contract_size", 1.0, positive=True)),
            ))
            explicit[name.upper()] = keys
            sub.done()
        section.done()
        return cls(symbols, explicit)

    def by_name(self, name: str) -> Symbol:
        try:
            return self._by_name[name.upper()]
        except KeyError:
            raise KeyError(f"unknown symbol {name!r}; configured: {', '.join(sorted(self._by_name)) or '(none)'}") from None

    def by_id(self, symbol_id: int) -> Symbol:
        try:
            return self._by_id[int(symbol_id)]
        except KeyError:
            raise KeyError(f"unknown symbol id {symbol_id}; configured: {sorted(self._by_id)}") from None

    def __contains__(self, name: str) -> bool:
        return name.upper() in self._by_name

    def __iter__(self):
        return iter(sorted(self._by_id.values(), key=lambda s: s.symbol_id))

    def __len__(self) -> int:
        return len(self._by_id)

    def max_id(self) -> int:
        return max(self._by_id, default=0)


# used when there is no config at all; a data file's own instruments replace these entries
DEFAULT_SYMBOLS = SymbolTable([Symbol("BTCUSDT", 1, 0.1, 0.001), Symbol("ETHUSDT", 2, 0.01, 0.001)])
DEFAULT_SYMBOLS.fallback = True
