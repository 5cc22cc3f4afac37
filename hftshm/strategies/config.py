"""``[strategies]``: which strategies run, on which symbol, with which parameters.

Each sub-table is one strategy instance, named by its table::

    [strategies.market_maker]        # instance name (what logs, metrics and the CLI call it)
    class = "market_maker"           # built-in, "package.module:Class", or an entry-point name;
                                     # default: the instance name
    symbol = "BTCUSDT"
    enabled = true                   # false: declared, not started (hftshm strategies add starts it)
    spread_bps = 2.0                 # every other key is a parameter of the strategy
    quantity = 0.01

Two instances of one class need two names (``[strategies.mm_tight]`` and ``[strategies.mm_wide]``
with ``class = "market_maker"``). Parameters are checked against the class's ``PARAMS`` when the
config is read, so a typo fails at start with the instance and key named, not at the first tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hftshm.config import ConfigError, Section
from hftshm.symbols import SymbolTable

RESERVED_KEYS = ("class", "symbol", "enabled", "strategy_id")


@dataclass(frozen=True)
class StrategyInstanceConfig:
    name: str
    spec: str  # what registry.load_class takes
    symbol: str
    enabled: bool = True
    strategy_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategiesConfig:
    instances: tuple[StrategyInstanceConfig, ...] = ()
    status_slots: int = 64  # rows in the strategy_status segment: strategies that can run at once
    order_table_size: int = 64  # open orders one strategy may have at once

    def instance(self, name: str) -> StrategyInstanceConfig:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise KeyError(f"no strategy instance {name!r} in [strategies]; declared: "
                       f"{', '.join(i.name for i in self.instances) or '(none)'}")

    @property
    def enabled(self) -> tuple[StrategyInstanceConfig, ...]:
        return tuple(i for i in self.instances if i.enabled)

    @classmethod
    def from_section(cls, section: Section, symbols: SymbolTable | None = None,
                     check_classes: bool = True) -> "StrategiesConfig":
        status_slots = section.integer("status_slots", 64, min=1, max=4096)
        order_table_size = section.integer("order_table_size", 64, min=4, max=65536)
        instances = []
        ids: dict[int, str] = {}
        for name in [k for k in section.raw if isinstance(section.raw[k], dict)]:
            inst = _instance(section.sub(name), name, symbols, check_classes)
            if inst.strategy_id is not None:
                if inst.strategy_id in ids:
                    raise ConfigError(f"strategies.{name}.strategy_id {inst.strategy_id} is also used by "
                                      f"strategies.{ids[inst.strategy_id]}")
                ids[inst.strategy_id] = name
            instances.append(inst)
        section.done()
        if len(instances) > status_slots:
            raise ConfigError(f"[strategies] declares {len(instances)} strategies but status_slots is {status_slots}")
        return cls(tuple(instances), status_slots, order_table_size)

    @classmethod
    def from_raw(cls, raw: dict | None, symbols: SymbolTable | None = None) -> "StrategiesConfig":
        return cls.from_section(Section("strategies", raw or {}), symbols)


def _instance(section: Section, name: str, symbols: SymbolTable | None, check_classes: bool) -> StrategyInstanceConfig:
    if not name.replace("_", "").replace("-", "").isalnum() or len(name) > 40:
        raise ConfigError(f"[strategies.{name}]: an instance name is letters, digits, _ or -, at most 40 characters")
    # reserved keys are read through a Section (typed errors); everything else is a parameter,
    # checked against the class's PARAMS below
    params = {k: v for k, v in section.raw.items() if k not in RESERVED_KEYS}
    section = Section(section.name, {k: v for k, v in section.raw.items() if k in RESERVED_KEYS})
    spec = section.string("class", name)
    symbol = section.string("symbol", "BTCUSDT")
    # symbols None: read without the platform's symbol table (PlatformConfig's lazy section load);
    # the strategy worker reads it again with the table and checks the symbol then
    if symbols is not None and symbol not in symbols:
        raise ConfigError(f"strategies.{name}.symbol is {symbol!r}; configured symbols: "
                          f"{', '.join(s.name for s in symbols)}")
    enabled = section.boolean("enabled", True)
    strategy_id = section.integer("strategy_id", None, min=1, max=65535)
    section.done()
    if check_classes:
        from hftshm.strategies.base import StrategyError, resolve_params
        from hftshm.strategies.registry import load_class

        try:
            cls = load_class(spec)
            market = symbols.by_name(symbol).market if symbols is not None and symbol in symbols else None
            params = resolve_params(name, cls.PARAMS, params, market)
        except LookupError as exc:
            raise ConfigError(f"strategies.{name}.class: {exc}") from None
        except StrategyError as exc:
            raise ConfigError(f"[strategies.{name}]: {exc}") from None
    return StrategyInstanceConfig(name, spec, symbol.upper(), enabled, strategy_id, params)


def sizes_for_market(cls, merged: dict, given: dict | None, configured_symbol: str, symbols: SymbolTable,
                     traded) -> dict:
    """An instance configured for one symbol run on the data's other symbol: its quantity parameters
    (``Param.contracts``) stay only if both count quantities in the same kind of unit. Coin sizes
    (0.01 BTC) mean nothing on an inverse market whose quantities are contracts of 10 USD, nor the
    other way round: the traded market's defaults apply instead, unless ``given`` (the caller's own
    parameters) sets them."""
    configured_market = symbols.by_name(configured_symbol).market if configured_symbol in symbols else "linear"
    if (configured_market == "inverse") == (traded.market == "inverse"):
        return merged
    declared = getattr(cls, "PARAMS", {}) or {}
    given = given or {}
    return {k: v for k, v in merged.items() if k in given or not (k in declared and declared[k].is_quantity)}
