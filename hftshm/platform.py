"""The whole platform's configuration: ``config/platform.toml`` validated section by section.

Each domain owns the class that reads its section (``[risk]`` -> ``hftshm.risk.config.RiskConfig``);
this module only knows which class reads which section, rejects unknown sections, and applies
command-line overrides. Everything is validated at start, before any segment or process exists.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hftshm.config import DEFAULT_CONFIG, ConfigError, Section, read_toml
from hftshm.runtime.topology import Topology
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout


# section -> "module:Class" with a from_section(Section) classmethod
SECTION_CLASSES = {
    "feed": "hftshm.feed.config:FeedConfig",
    "strategies": "hftshm.strategies.config:StrategiesConfig",
    "risk": "hftshm.risk.config:RiskConfig",
    "oms": "hftshm.oms.config:OmsConfig",
    "exchange": "hftshm.exchange.config:ExchangeConfig",
    "web": "hftshm.web.config:WebConfig",
    "redis": "hftshm.redis_config:RedisConfig",
    "bridge": "hftshm.bridge.config:BridgeConfig",
}
STRUCTURE_SECTIONS = ("platform", "symbols", "workers", "rings", "supervisor")


@dataclass
class PlatformSettings:
    run_dir: Path
    log_level: str
    placement: str
    deterministic: bool = False


@dataclass
class SupervisorSettings:
    heartbeat_timeout_s: float = 60.0
    start_timeout_s: float = 120.0
    max_restarts: int = 5
    restart_backoff_s: float = 0.2
    restart_backoff_max_s: float = 5.0
    drain_timeout_s: float = 10.0


@dataclass
class PlatformConfig:
    raw: dict
    platform: PlatformSettings
    symbols: SymbolTable
    supervisor: SupervisorSettings
    topology: Topology
    sections: dict[str, Any] = field(default_factory=dict)
    #: what loading changed or noticed for the data (a strategy moved onto the data's symbol, a data
    #: symbol no strategy trades): ``hftshm run`` prints them; other commands that load the config
    #: (stop, status, ...) stay quiet, they do not replay that data
    notices: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        # domain sections are read on first use, so a process only imports the domains it runs;
        # ``load`` validates them all up front, before anything starts
        if name in SECTION_CLASSES:
            sections = self.__dict__["sections"]
            if name not in sections:
                sections[name] = _load_section(name, SECTION_CLASSES[name], self.raw.get(name, {}))
            return sections[name]
        raise AttributeError(name)

    def validate_all(self) -> "PlatformConfig":
        """Every section read and every worker class importable: what ``hftshm run`` checks first."""
        from hftshm.runtime.topology import load_factory

        for name in SECTION_CLASSES:
            getattr(self, name)
        for worker in self.topology.workers:
            load_factory(worker.factory)
        return self

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CONFIG, overrides: dict | None = None) -> "PlatformConfig":
        raw = read_toml(path)
        if overrides:
            raw = merge(raw, overrides)
        return cls.from_raw(raw, base_dir=Path(path).resolve().parent.parent).validate_all()

    @classmethod
    def from_raw(cls, raw: dict, base_dir: Path | None = None) -> "PlatformConfig":
        raw = copy.deepcopy(raw)
        unknown = sorted(set(raw) - set(SECTION_CLASSES) - set(STRUCTURE_SECTIONS))
        if unknown:
            allowed = ", ".join(sorted(set(SECTION_CLASSES) | set(STRUCTURE_SECTIONS)))
            raise ConfigError(f"unknown config section(s) {', '.join(unknown)}; allowed sections: {allowed}")
        base_dir = base_dir or Path.cwd()
        section = Section("platform", raw.get("platform", {}))
        run_dir = Path(section.string("run_dir", "run"))
        settings = PlatformSettings(
            run_dir=run_dir if run_dir.is_absolute() else (base_dir / run_dir),
            log_level=section.choice("log_level", ("debug", "info", "warning", "error"), "info"),
            placement=section.choice("placement", ("composite", "process-per-worker"), "composite"),
            deterministic=section.boolean("deterministic", False),
        )
        section.done()
        sup = Section("supervisor", raw.get("supervisor", {}))
        supervisor = SupervisorSettings(
            heartbeat_timeout_s=float(sup.number("heartbeat_timeout_s", 60.0, positive=True)),
            start_timeout_s=float(sup.number("start_timeout_s", 120.0, positive=True)),
            max_restarts=sup.integer("max_restarts", 5, min=0),
            restart_backoff_s=float(sup.number("restart_backoff_s", 0.2, positive=True)),
            restart_backoff_max_s=float(sup.number("restart_backoff_max_s", 5.0, positive=True)),
            drain_timeout_s=float(sup.number("drain_timeout_s", 10.0, positive=True)),
        )
        sup.done()
        symbols, data_symbols = _with_data_instruments(raw, SymbolTable.from_section(raw.get("symbols")))
        notices: list[str] = []
        raw = _strategies_on_the_data(raw, symbols, data_symbols, notices)
        topology = Topology.from_config(raw, placement=settings.placement)
        return cls(raw=raw, platform=settings, symbols=symbols, supervisor=supervisor, topology=topology,
                   notices=notices)


def _with_data_instruments(raw: dict, configured: SymbolTable) -> tuple[SymbolTable, list[str]]:
    """([symbols] merged with the instruments of the [feed] data files, the data's symbols): their
    .instruments.json sidecars, written by ``hftshm data import``, make any symbol of the data known
    without a [symbols] entry; the config overrides, and an instrument the config contradicts is a
    ConfigError."""
    from hftshm.feed.config import FeedConfig
    from hftshm.feed.instruments import InstrumentError, instruments_of, resolve

    try:
        paths = FeedConfig.from_section(Section("feed", copy.deepcopy(raw.get("feed") or {}))).data_paths()
    except ConfigError:
        return configured, []  # reported when [feed] itself is validated
    found = []
    described = True  # every file's instruments known: only then are the data's symbols known
    try:
        for path in paths:
            own = instruments_of(path, scan=False)
            described = described and bool(own)
            found.extend(own)
        if not found:
            return configured, []
        names = list(dict.fromkeys(i.symbol for i in found)) if described else []
        return resolve(configured, found, source=", ".join(str(p) for p in paths)), names
    except InstrumentError as exc:
        raise ConfigError(str(exc)) from None


def _strategies_on_the_data(raw: dict, symbols: SymbolTable, data_symbols: list[str], notices: list[str]) -> dict:
    """A replay of one symbol: an enabled strategy configured for a symbol the data does not hold
    trades the data's symbol instead, as ``hftshm backtest`` does (otherwise it would sit idle through
    the whole run, and the run would still report success). Quantity parameters in the configured
    market's unit are dropped when the data's market counts another unit (coin sizes on a contract
    market): the class's defaults for that market apply. Several symbols in the data: each strategy
    keeps its configured symbol. What it did goes to ``notices``."""
    from hftshm.strategies.config import RESERVED_KEYS, sizes_for_market
    from hftshm.strategies.registry import load_class

    section = raw.get("strategies") or {}
    if len(data_symbols) > 1:
        notices.extend(_untraded(section, data_symbols))
    if len(data_symbols) != 1 or data_symbols[0] not in symbols:
        return raw
    target = data_symbols[0]
    moved = {}
    for name, body in section.items():
        if not isinstance(body, dict) or body.get("enabled", True) is False:
            continue
        configured = str(body.get("symbol", "BTCUSDT")).upper()
        if configured == target:
            continue
        try:
            cls = load_class(str(body.get("class", name)))
        except LookupError:
            continue  # reported, with its name, when [strategies] is read
        params = {k: v for k, v in body.items() if k not in RESERVED_KEYS}
        kept = sizes_for_market(cls, params, None, configured, symbols, symbols.by_name(target))
        moved[name] = {**{k: v for k, v in body.items() if k in RESERVED_KEYS}, **kept, "symbol": target}
        notices.append(f"strategy {name} is configured for {configured}, which the data does not hold: it trades "
                       f"{target}" + ("" if kept == params else f" (without {', '.join(sorted(set(params) - set(kept)))}"
                                                               ": that market counts another unit)"))
    if not moved:
        return raw
    out = copy.deepcopy(raw)
    out["strategies"].update(moved)
    return out


def _untraded(section: dict, data_symbols: list[str]) -> list[str]:
    """Several symbols: each strategy keeps its own, so a symbol of the data no enabled strategy names is
    replayed (its book, its marks) and never traded. One notice per such symbol, so the run says so at
    start rather than quietly trade one of two files."""
    traded = {str(body.get("symbol", "BTCUSDT")).upper() for body in section.values()
              if isinstance(body, dict) and body.get("enabled", True) is not False}
    return [f"symbol {name} of the data has no enabled strategy: its book is replayed, nothing trades it "
            f"(add [strategies.NAME] with symbol = \"{name}\", or 'hftshm strategies add' while it runs)"
            for name in data_symbols if name not in traded]


def _load_section(name: str, factory: str, body: Any) -> Any:
    from hftshm.runtime.topology import load_factory

    config_class = load_factory(factory)
    return config_class.from_section(Section(name, body))


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base`` (``{"feed": {"speed": 0}}`` changes one key)."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def check_layouts_present() -> None:
    """Fail early, with the layout's name, if an install lacks a declaration."""
    for name in ("market_event", "book_snapshot", "order_intent", "order", "execution_report", "worker_status"):
        load_layout(name)
