"""``[feed]``: what the feed replays and how fast, or (``source = "binance"``) which live streams it takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hftshm.book.book import DEFAULT_WINDOW_TICKS
from hftshm.config import ConfigError, Section

DEFAULT_DATA = ("data/btcusdt_20240808.csv.gz",)
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FeedConfig:
    data: tuple[str, ...] = DEFAULT_DATA
    speed: float = 1.0
    batch_events: int = 4096
    book_levels: int = 10
    window_ticks: int = DEFAULT_WINDOW_TICKS
    repeat: int = 1
    strict: bool = False
    # live market data (hftshm.feed.live): source "binance" takes these streams instead of replaying data
    source: str = "replay"
    live_symbols: tuple[str, ...] = ("usdm:BTCUSDT",)  # MARKET:SYMBOL, markets spot / usdm / coinm
    ws_url: tuple[tuple[str, str], ...] = ()  # (market, combined-stream URL); default Binance's
    rest_url: tuple[tuple[str, str], ...] = ()  # (market, depth snapshot URL); default Binance's
    heartbeat_timeout_s: float = 10.0
    batch_frames: int = 2048
    record: str = ""  # a directory: the raw stream is written there as it arrives (hftshm record's files)
    # "thread" (default): the websocket client on a thread of the feed's process (shares its GIL);
    # "process": in a child process, frames over a shared-memory ring (docs/BENCHMARKS.md compares them)
    live_network: str = "thread"
    # "spin" (default): with the thread, its loop busy-polls and rehearses a twin feed when idle, so the
    # first frame after a quiet spell finds warm caches (``feed.live_poll``); "block": it sleeps in epoll.
    # No effect with live_network = "process"
    live_poll: str = "spin"

    @classmethod
    def from_section(cls, section: Section) -> "FeedConfig":
        raw = section.raw.get("data", list(DEFAULT_DATA))
        if isinstance(raw, str):
            raw = [raw]
        section._read.add("data")
        if not isinstance(raw, list) or not raw or not all(isinstance(p, str) and p for p in raw):
            raise ConfigError(f"feed.data must be a file name or a non-empty list of file names, found {raw!r}")
        config = cls(
            data=tuple(raw),
            speed=float(section.number("speed", 1.0, min=0.0)),
            batch_events=section.integer("batch_events", 4096, min=1, max=1 << 20),
            book_levels=section.integer("book_levels", 10, min=1, max=10),
            window_ticks=section.integer("window_ticks", DEFAULT_WINDOW_TICKS, min=64, max=1 << 24),
            repeat=section.integer("repeat", 1, min=1),
            strict=section.boolean("strict", False),
            source=section.choice("source", ("replay", "binance"), "replay"),
            live_symbols=tuple(_live_symbols(section.list_of("live_symbols", str, ["usdm:BTCUSDT"]))),
            ws_url=_endpoints(section, "ws_url", ("ws://", "wss://")),
            rest_url=_endpoints(section, "rest_url", ("http://", "https://")),
            heartbeat_timeout_s=float(section.number("heartbeat_timeout_s", 10.0, min=0.05)),
            batch_frames=section.integer("batch_frames", 2048, min=1, max=1 << 20),
            record=section.string("record", ""),
            live_network=section.choice("live_network", ("process", "thread"), "thread"),
            live_poll=section.choice("live_poll", ("spin", "block"), "spin"),
        )
        section.done()
        return config

    def subscriptions(self) -> list:
        """The live streams, one ``hftshm.feed.live_client.Subscription`` per market."""
        from hftshm.feed.live_client import Subscription, market_for

        by_market: dict[str, list[str]] = {}
        for item in self.live_symbols:
            market, symbol = item.split(":")
            by_market.setdefault(market, []).append(symbol)
        ws, rest = dict(self.ws_url), dict(self.rest_url)
        return [Subscription(market_for(m, ws.get(m), rest.get(m)), tuple(symbols)) for m, symbols in by_market.items()]

    def data_paths(self) -> list[Path]:
        """The data files: relative names are tried in the working directory, then the project root."""
        paths = []
        for name in self.data:
            path = Path(name)
            if not path.is_absolute() and not path.exists() and (_PROJECT_ROOT / path).exists():
                path = _PROJECT_ROOT / path
            if not path.exists():
                raise ConfigError(f"feed.data: {name} does not exist (relative names are looked up in the working "
                                  f"directory, then in {_PROJECT_ROOT})")
            paths.append(path)
        return paths


_MARKETS = ("spot", "usdm", "coinm")


def _live_symbols(items: list[str]) -> list[str]:
    out = []
    for item in items:
        market, sep, symbol = item.rpartition(":")
        market = market if sep else "usdm"
        if market not in _MARKETS or not symbol or not symbol.replace("_", "").isalnum():
            raise ConfigError(f"feed.live_symbols: {item!r} is not MARKET:SYMBOL with a market of "
                              f"{', '.join(_MARKETS)} (e.g. \"usdm:BTCUSDT\")")
        out.append(f"{market}:{symbol.upper()}")
    if not out:
        raise ConfigError("feed.live_symbols is empty: name at least one MARKET:SYMBOL")
    return out


def _endpoints(section: Section, key: str, schemes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    table = section.table(key, {})
    for market, url in table.items():
        if market not in _MARKETS:
            raise ConfigError(f"feed.{key}: unknown market {market!r}; known: {', '.join(_MARKETS)}")
        if not isinstance(url, str) or not url.startswith(schemes):
            raise ConfigError(f"feed.{key}.{market} must be a URL starting with {' or '.join(schemes)}, found {url!r}")
    return tuple(sorted(table.items()))
