"""``[feed]``: what the feed replays and how fast."""

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
        )
        section.done()
        return config

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
