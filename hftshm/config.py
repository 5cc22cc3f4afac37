"""Reading and validating ``config/platform.toml``.

Each domain owns its section and its config class (``hftshm.risk.config.RiskConfig`` reads
``[risk]``); this module gives them one way to read a section so every error reads alike: it names
the key, what was found and what is allowed. Unknown keys are errors, not silently ignored, because
a misspelt limit that falls back to a default is how a risk limit quietly disappears.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any, Iterable

DEFAULT_CONFIG = Path("config/platform.toml")
_MISSING = object()


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the allowed values."""


class Section:
    """Typed, validated reads of one config section; ``done()`` rejects keys nobody read."""

    def __init__(self, name: str, raw: Any):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"[{name}] must be a table, found {type(raw).__name__}")
        self.name = name
        self.raw = raw
        self._read: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key in self.raw:
            return self.raw[key]
        if default is _MISSING:
            raise ConfigError(f"{self._key(key)} is required")
        return default

    def number(self, key: str, default: Any = _MISSING, *, min: float | None = None, max: float | None = None,
               positive: bool = False, integer: bool = False) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise ConfigError(f"{self._key(key)} must be {kind}, found {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{self._key(key)} must be finite, found {value!r}")
        if positive and value <= 0:
            raise ConfigError(f"{self._key(key)} must be > 0, found {value!r}")
        if min is not None and value < min:
            raise ConfigError(f"{self._key(key)} must be >= {min}, found {value!r}")
        if max is not None and value > max:
            raise ConfigError(f"{self._key(key)} must be <= {max}, found {value!r}")
        return value

    def integer(self, key: str, default: Any = _MISSING, **bounds: Any) -> Any:
        return self.number(key, default, integer=True, **bounds)

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._key(key)} must be true or false, found {value!r}")
        return value

    def string(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{self._key(key)} must be a string, found {value!r}")
        return value

    def choice(self, key: str, allowed: Iterable[str], default: Any = _MISSING) -> str:
        allowed = list(allowed)
        value = self._get(key, default)
        if not isinstance(value, str) or value.lower() not in allowed:
            raise ConfigError(f"{self._key(key)} is {value!r}; allowed: {', '.join(allowed)}")
        return value.lower()

    def table(self, key: str, default: Any = _MISSING) -> dict:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise ConfigError(f"{self._key(key)} must be a table, found {value!r}")
        return value

    def list_of(self, key: str, item_type: type, default: Any = _MISSING) -> list:
        value = self._get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, item_type) for v in value):
            raise ConfigError(f"{self._key(key)} must be a list of {item_type.__name__}, found {value!r}")
        return value

    def sub(self, key: str) -> "Section":
        """A nested table as its own Section (``[workers.feed]`` -> ``Section('workers.feed', ...)``)."""
        return Section(self._key(key), self._get(key, {}))

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read)) or "(none)"
            raise ConfigError(f"[{self.name}] has unknown key(s) {', '.join(unknown)}; known keys: {known}")


def parse_duration_s(text: str | int | float, what: str) -> float:
    """``90s``, ``15m``, ``1h``, ``250ms``, ``2d`` or plain seconds -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower()
        units = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
        for suffix in ("ms", "s", "m", "h", "d"):
            if raw.endswith(suffix):
                number, scale = raw[: -len(suffix)], units[suffix]
                break
        else:
            number, scale = raw, 1.0
        try:
            seconds = float(number) * scale
        except ValueError:
            raise ValueError(f"{what} {text!r} is not a duration (like 90s, 15m, 1h, 250ms or plain seconds)") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{what} {text!r} must be a positive duration")
    return seconds


def read_toml(path: str | os.PathLike) -> dict:
    """Parse a TOML config file; a missing or malformed file is a ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
