"""``[risk]``: pre-trade limits, throttles and the trading state the platform starts in.

Limits are account-wide per symbol (all strategies together), which is what an exchange or a broker
holds you to. Top-level keys are the defaults for every symbol; ``[risk.symbols.<NAME>]`` overrides
them for one symbol with the same key names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hftshm.codes import TradingState
from hftshm.config import ConfigError, Section
from hftshm.symbols import SymbolTable

TRADING_STATES = tuple(s.name.lower() for s in TradingState)
THROTTLE_CLOCKS = ("market", "monotonic")


@dataclass(frozen=True)
class SymbolLimits:
    max_order_size: float = 1.0  # base units per order
    max_position_per_symbol: float = 5.0  # |position + same-side open orders|, base units
    # absolute limit-price floor, quote units: none by default, as any floor fits one symbol's prices
    # only (1,000 suited BTCUSDT and rejected every order of a symbol quoted under it); the bps band
    # from the mid guards every symbol, [risk.symbols.NAME] sets a symbol's own floor
    price_band_min: float = 0.0
    price_band_max: float = 1_000_000.0  # absolute limit-price ceiling
    price_band_bps: float = 500.0  # max distance of a limit price from the current mid

    def check(self, where: str) -> None:
        if self.price_band_min > self.price_band_max:
            raise ConfigError(f"{where}.price_band_min ({self.price_band_min}) must be <= price_band_max "
                              f"({self.price_band_max})")


def _read_limits(section: Section, defaults: SymbolLimits) -> SymbolLimits:
    limits = SymbolLimits(
        max_order_size=float(section.number("max_order_size", defaults.max_order_size, positive=True)),
        max_position_per_symbol=float(section.number("max_position_per_symbol", defaults.max_position_per_symbol,
                                                     min=0)),
        price_band_min=float(section.number("price_band_min", defaults.price_band_min, min=0)),
        price_band_max=float(section.number("price_band_max", defaults.price_band_max, positive=True)),
        price_band_bps=float(section.number("price_band_bps", defaults.price_band_bps, positive=True)),
    )
    limits.check(section.name)
    return limits


@dataclass(frozen=True)
class RiskConfig:
    defaults: SymbolLimits = field(default_factory=SymbolLimits)
    symbol_overrides: dict[str, SymbolLimits] = field(default_factory=dict)  # by upper-case symbol name
    max_daily_loss: float = 10_000.0  # quote units; realized + unrealized at mid - fees since the day began
    max_orders_per_second: float = 1_000.0  # global token bucket refill rate
    max_orders_burst: float = 1_000.0  # global bucket depth: orders allowed back to back
    max_orders_per_second_per_strategy: float = 500.0
    max_orders_burst_per_strategy: float = 500.0
    initial_state: TradingState = TradingState.ACTIVE
    throttle_clock: str = "market"  # "market": intents' market_ts_ns (replays, backtests); "monotonic": live
    max_open_orders: int = 8_192  # open-order table slots (a power of two; 7/8 usable). 8192 x 48 B stays in L2

    def limits_for(self, symbol_name: str) -> SymbolLimits:
        return self.symbol_overrides.get(symbol_name.upper(), self.defaults)

    def check_symbols(self, symbols: SymbolTable) -> None:
        for name in self.symbol_overrides:
            if name not in symbols:
                configured = ", ".join(s.name for s in symbols) or "(none)"
                raise ConfigError(f"[risk.symbols.{name}] names a symbol not in [symbols]; configured: {configured}")

    @classmethod
    def from_section(cls, section: Section, symbols: SymbolTable | None = None) -> "RiskConfig":
        defaults = _read_limits(section, SymbolLimits())
        overrides: dict[str, SymbolLimits] = {}
        symbols_section = section.sub("symbols")
        for name in list(symbols_section.raw):
            sub = symbols_section.sub(name)
            overrides[name.upper()] = _read_limits(sub, defaults)
            sub.done()
        symbols_section.done()
        rate = float(section.number("max_orders_per_second", 1_000.0, positive=True))
        burst = float(section.number("max_orders_burst", rate, min=1))
        strategy_rate = float(section.number("max_orders_per_second_per_strategy", min(rate, 500.0), positive=True))
        strategy_burst = float(section.number("max_orders_burst_per_strategy", strategy_rate, min=1))
        state_name = section.choice("initial_state", TRADING_STATES, "active")
        config = cls(
            defaults=defaults,
            symbol_overrides=overrides,
            max_daily_loss=float(section.number("max_daily_loss", 10_000.0, positive=True)),
            max_orders_per_second=rate,
            max_orders_burst=burst,
            max_orders_per_second_per_strategy=strategy_rate,
            max_orders_burst_per_strategy=strategy_burst,
            initial_state=TradingState[state_name.upper()],
            throttle_clock=section.choice("throttle_clock", THROTTLE_CLOCKS, "market"),
            max_open_orders=int(section.integer("max_open_orders", 8_192, min=16, max=1 << 22)),
        )
        section.done()
        if symbols is not None:
            config.check_symbols(symbols)
        return config
