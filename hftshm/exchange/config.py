"""``[exchange]``: the simulated exchange's matching engine, fill model and latencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hftshm.config import ConfigError, Section

FILL_MODELS = ("risk_averse", "probabilistic")
LATENCY_MODELS = ("constant", "uniform", "series")


@dataclass(frozen=True)
class LatencyConfig:
    """One direction of latency (order entry, or response back), in microseconds in the file."""

    model: str = "uniform"
    constant_us: float = 100.0
    min_us: float = 50.0
    max_us: float = 500.0
    # series: a text file, one latency in microseconds per line, replayed in order and cycled
    series_path: str = ""

    @classmethod
    def from_section(cls, section: Section) -> "LatencyConfig":
        cfg = cls(
            model=section.choice("model", LATENCY_MODELS, cls.model),
            constant_us=float(section.number("constant_us", cls.constant_us, min=0)),
            min_us=float(section.number("min_us", cls.min_us, min=0)),
            max_us=float(section.number("max_us", cls.max_us, min=0)),
            series_path=section.string("series_path", cls.series_path),
        )
        section.done()
        if cfg.max_us < cfg.min_us:
            raise ConfigError(f"{section.name}.max_us ({cfg.max_us}) must be >= min_us ({cfg.min_us})")
        if cfg.model == "series" and not cfg.series_path:
            raise ConfigError(f"{section.name}.series_path is required when model = \"series\"")
        return cfg

    def series_ns(self, base_dir: Path | None = None) -> np.ndarray:
        """The recorded series in ns (the model's parameters for constant/uniform)."""
        if self.model == "constant":
            return np.array([self.constant_us * 1000.0], dtype=np.int64)
        if self.model == "uniform":
            return np.array([self.min_us * 1000.0, self.max_us * 1000.0], dtype=np.int64)
        path = Path(self.series_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            values = np.loadtxt(path, dtype=np.float64, ndmin=1, comments="#")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"latency series_path {path}: cannot read a column of microseconds ({exc})") from None
        if len(values) == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ConfigError(f"latency series_path {path}: needs at least one finite latency >= 0 (microseconds)")
        return np.round(values * 1000.0).astype(np.int64)

    def min_ns(self, base_dir: Path | None = None) -> int:
        """The smallest latency this model can draw: the safe look-ahead for parity (see simulator)."""
        if self.model == "constant":
            return int(round(self.constant_us * 1000.0))
        if self.model == "uniform":
            return int(round(self.min_us * 1000.0))
        return int(self.series_ns(base_dir).min())


@dataclass(frozen=True)
class ExchangeConfig:
    # matching engine: resting orders per symbol book (tables are preallocated to this)
    book_capacity: int = 65536
    # replay fill model: how a passive order's queue position advances (see fill_model_nb)
    fill_model: str = "risk_averse"
    # probabilistic model: f(x) = x ** queue_power in the power-prob queue estimate
    queue_power: float = 3.0
    # replay fill model: visible market levels kept per side, and our open orders at once
    market_depth_levels: int = 4096
    max_open_orders: int = 4096
    maker_fee_bps: float = 2.0
    taker_fee_bps: float = 5.0
    seed: int = 1
    entry_latency: LatencyConfig = field(default_factory=LatencyConfig)
    response_latency: LatencyConfig = field(default_factory=LatencyConfig)

    @classmethod
    def from_section(cls, section: Section) -> "ExchangeConfig":
        d = cls()
        cfg = cls(
            book_capacity=section.integer("book_capacity", d.book_capacity, min=1, max=1 << 22),
            fill_model=section.choice("fill_model", FILL_MODELS, d.fill_model),
            queue_power=float(section.number("queue_power", d.queue_power, positive=True, max=50)),
            market_depth_levels=section.integer("market_depth_levels", d.market_depth_levels, min=1, max=1 << 20),
            max_open_orders=section.integer("max_open_orders", d.max_open_orders, min=1, max=1 << 22),
            maker_fee_bps=float(section.number("maker_fee_bps", d.maker_fee_bps, min=-100, max=1000)),
            taker_fee_bps=float(section.number("taker_fee_bps", d.taker_fee_bps, min=-100, max=1000)),
            seed=section.integer("seed", d.seed, min=0, max=(1 << 63) - 1),
            entry_latency=LatencyConfig.from_section(section.sub("entry_latency")),
            response_latency=LatencyConfig.from_section(section.sub("response_latency")),
        )
        section.done()
        return cfg

    @classmethod
    def from_raw(cls, raw: dict | None) -> "ExchangeConfig":
        """From the ``[exchange]`` table of a parsed platform.toml (None: defaults)."""
        return cls.from_section(Section("exchange", raw or {}))
