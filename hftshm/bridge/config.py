"""``[bridge]``: the NATS JetStream server rings cross hosts through, and what the stream retains.

A ring whose ``from`` or ``to`` is ``nats:<subject>`` (``hftshm.runtime.topology``) is exported to or
imported from JetStream by a bridge worker; every subject ``hftshm.<namespace>.>`` lives in one stream,
``HFTSHM_<namespace>``, whose retention limits are set here (the order-event journal reads it back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hftshm.config import ConfigError, Section

_NAMESPACE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
DEFAULT_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class BridgeConfig:
    url: str = DEFAULT_URL
    namespace: str = "default"      # exported subjects: hftshm.<namespace>.<ring>
    batch_records: int = 8192       # most records one NATS message carries
    max_age_s: float = 86400.0      # stream retention: messages older than this are discarded ...
    max_bytes: int = 1 << 30        # ... or beyond this many bytes (oldest first); -1 = unlimited
    max_msgs: int = -1              # ... or beyond this many messages; -1 = unlimited
    ack_wait_s: float = 30.0        # an import not acked for this long is redelivered (duplicates dropped)
    in_flight: int = 64             # export: batches queued for NATS at once; beyond, the ring waits
    publish_window: int = 1         # export: messages published before their PubAcks came back (1 = one at a time;
                                    # more pays on links with long round trips, see docs/BENCHMARKS.md)
    connect_timeout_s: float = 5.0
    recover_from: str = ""          # namespace of another platform whose order-event journal this one's risk and
                                    # strategies take their starting positions from (hftshm.bridge.journal_positions)

    @property
    def stream(self) -> str:
        return stream_name(self.namespace)

    def subject(self, ring: str) -> str:
        return f"hftshm.{self.namespace}.{ring}"

    @classmethod
    def from_section(cls, section: Section) -> "BridgeConfig":
        url = section.string("url", DEFAULT_URL)
        if not url.startswith(("nats://", "tls://")):
            raise ConfigError(f"bridge.url {url!r} must start with nats:// or tls://")
        namespace = section.string("namespace", "default")
        if not _NAMESPACE.match(namespace):
            raise ConfigError(f"bridge.namespace {namespace!r} must be 1-64 characters of letters, digits, _ -")
        config = cls(
            url=url, namespace=namespace,
            batch_records=section.integer("batch_records", 8192, min=1, max=1 << 20),
            max_age_s=section.number("max_age_s", 86400.0, min=0),
            max_bytes=section.integer("max_bytes", 1 << 30, min=-1),
            max_msgs=section.integer("max_msgs", -1, min=-1),
            ack_wait_s=section.number("ack_wait_s", 30.0, min=0.1),
            in_flight=section.integer("in_flight", 64, min=1, max=65536),
            publish_window=section.integer("publish_window", 1, min=1, max=1024),
            connect_timeout_s=section.number("connect_timeout_s", 5.0, min=0.1),
            recover_from=section.string("recover_from", ""),
        )
        section.done()
        if config.recover_from and not _NAMESPACE.match(config.recover_from):
            raise ConfigError(f"bridge.recover_from {config.recover_from!r} must be a namespace: 1-64 characters "
                              "of letters, digits, _ -")
        return config


def stream_name(namespace: str) -> str:
    return f"HFTSHM_{namespace}".replace("-", "_")


def run_identity(run_dir) -> int:
    """This platform run's identity: its manifest's start time (``<run_dir>/current.json``), the same
    for every worker and every restart of one within the run; a new run gets a new one."""
    import json
    import time
    from pathlib import Path

    try:
        return int(json.loads((Path(run_dir) / "current.json").read_text())["started_ns"])
    except (OSError, ValueError, KeyError):
        return time.time_ns()


def of(config) -> BridgeConfig:
    """The ``[bridge]`` settings of a ``PlatformConfig`` (defaults when it has none, e.g. unit tests)."""
    if config is None:
        return BridgeConfig()
    if isinstance(config, BridgeConfig):  # tests hand the section alone
        return config
    return config.bridge
