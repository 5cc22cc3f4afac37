"""``[redis]``: where risk mirrors its state and listens for a remote kill switch (the OMS reads it too).

Redis is optional. ``url = ""`` means not configured: the platform runs from shared memory alone and
says so once at start. Every key lives under ``hftshm:<namespace>:`` so two platforms (or two test
runs) can share one server without seeing each other's state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hftshm.config import ConfigError, Section

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""  # "" = not configured
    namespace: str = "default"
    mirror_interval_s: float = 0.1  # write-behind period; also how often the kill-switch key is polled
    socket_timeout_s: float = 0.5  # a stalled server must not stall the mirror thread for long

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def key(self, *parts: str) -> str:
        """``key("kill_switch")`` -> ``hftshm:<namespace>:kill_switch``."""
        return ":".join(("hftshm", self.namespace, *parts))

    @classmethod
    def from_section(cls, section: Section) -> "RedisConfig":
        url = section.string("url", "")
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis.url {url!r} must start with redis://, rediss:// or unix:// "
                              f"(or be \"\" for no Redis)")
        namespace = section.string("namespace", "default")
        if not _NAMESPACE.match(namespace):
            raise ConfigError(f"redis.namespace {namespace!r} must be 1-64 characters of letters, digits, _ . -")
        interval_ms = section.number("mirror_interval_ms", 100, min=1, max=60_000)
        timeout_ms = section.number("socket_timeout_ms", 500, min=1, max=60_000)
        section.done()
        return cls(url=url, namespace=namespace, mirror_interval_s=interval_ms / 1e3, socket_timeout_s=timeout_ms / 1e3)
