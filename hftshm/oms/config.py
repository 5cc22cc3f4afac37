"""``[oms]``: the order table, ack timeouts and retries, and the write-behind to the database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hftshm.config import ConfigError, Section

BACKLOG_POLICIES = ("halt", "block")
SQLITE_FILE = "oms.sqlite"


@dataclass(frozen=True)
class OmsConfig:
    database_url: str = ""  # "" = SQLite file ``oms.sqlite`` under the run directory
    database_schema: str = ""  # PostgreSQL schema for the tables ("" = the default search_path)
    max_orders: int = 65536
    ack_timeout_ms: float = 500.0
    max_retries: int = 3
    backoff_factor: float = 2.0
    max_backoff_ms: float = 5000.0
    batch_size: int = 512
    writer_batch_size: int = 5000
    writer_linger_ms: float = 5.0
    backlog_max_events: int = 1_000_000
    on_backlog_full: str = "halt"
    overflow_events: int = 1_000_000
    reconnect_backoff_ms: float = 100.0
    reconnect_backoff_max_ms: float = 5000.0
    connect_timeout_s: float = 2.0
    recovery_timeout_s: float = 60.0
    recover_recent_orders: int = 10000
    journal_fsync: bool = False
    redis_cache: bool = True

    @classmethod
    def from_section(cls, section: Section) -> "OmsConfig":
        url = section.string("database_url", "")
        if url and "://" not in url:
            raise ConfigError(f"oms.database_url {url!r} is not a database URL (like "
                              f"postgresql+psycopg://user@host:5432/db or sqlite:///path), or \"\" for SQLite "
                              f"under the run directory")
        schema = section.string("database_schema", "")
        if schema and not schema.replace("_", "").isalnum():
            raise ConfigError(f"oms.database_schema {schema!r} must be letters, digits and _")
        config = cls(
            database_url=url,
            database_schema=schema,
            max_orders=section.integer("max_orders", 65536, min=16, max=1 << 24),
            ack_timeout_ms=float(section.number("ack_timeout_ms", 500.0, positive=True)),
            max_retries=section.integer("max_retries", 3, min=0, max=30),
            backoff_factor=float(section.number("backoff_factor", 2.0, min=1.0, max=10.0)),
            max_backoff_ms=float(section.number("max_backoff_ms", 5000.0, positive=True)),
            batch_size=section.integer("batch_size", 512, min=1, max=65536),
            writer_batch_size=section.integer("writer_batch_size", 5000, min=1, max=1_000_000),
            writer_linger_ms=float(section.number("writer_linger_ms", 5.0, min=0.0, max=10_000.0)),
            backlog_max_events=section.integer("backlog_max_events", 1_000_000, min=1000),
            on_backlog_full=section.choice("on_backlog_full", BACKLOG_POLICIES, "halt"),
            overflow_events=section.integer("overflow_events", 1_000_000, min=64),
            reconnect_backoff_ms=float(section.number("reconnect_backoff_ms", 100.0, positive=True)),
            reconnect_backoff_max_ms=float(section.number("reconnect_backoff_max_ms", 5000.0, positive=True)),
            connect_timeout_s=float(section.number("connect_timeout_s", 2.0, positive=True)),
            recovery_timeout_s=float(section.number("recovery_timeout_s", 60.0, positive=True)),
            recover_recent_orders=section.integer("recover_recent_orders", 10000, min=0),
            journal_fsync=section.boolean("journal_fsync", False),
            redis_cache=section.boolean("redis_cache", True),
        )
        section.done()
        return config

    def database_url_for(self, run_dir: str | Path) -> str:
        """The URL to connect to: ``database_url``, or the SQLite file under ``run_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(run_dir).resolve() / SQLITE_FILE}"

    def timeouts_ns(self) -> np.ndarray:
        from hftshm.oms.engine import ack_timeouts_ns

        return ack_timeouts_ns(self.ack_timeout_ms, self.max_retries, self.backoff_factor, self.max_backoff_ms)


def journal_path(run_dir: str | Path) -> Path:
    """The writer's journal: events taken off the ring and not yet committed to the database."""
    return Path(run_dir) / "oms-events.journal"


def spill_path(run_dir: str | Path) -> Path:
    """The OMS's overflow: events made while the writer's ring was full, not yet handed to it."""
    return Path(run_dir) / "oms-events.spill"
