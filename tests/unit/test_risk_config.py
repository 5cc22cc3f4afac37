"""``[risk]`` and ``[redis]`` validation: bad values name the key and what is allowed."""

from __future__ import annotations

import pytest

from hftshm.codes import TradingState
from hftshm.config import ConfigError, Section, read_toml
from hftshm.redis_config import RedisConfig
from hftshm.risk.config import RiskConfig
from hftshm.risk.testing import SYMBOLS


def risk(raw: dict) -> RiskConfig:
    return RiskConfig.from_section(Section("risk", raw), SYMBOLS)


def test_shipped_config_is_valid_and_sensible_for_btc():
    raw = read_toml("config/platform.toml")
    config = RiskConfig.from_section(Section("risk", raw["risk"]))
    limits = config.limits_for("BTCUSDT")
    assert limits.max_order_size == 1.0 and limits.max_position_per_symbol == 5.0
    assert limits.price_band_min <= 61_000 <= limits.price_band_max
    assert config.max_daily_loss == 10_000 and config.max_orders_per_second == 1_000
    assert config.initial_state == TradingState.ACTIVE
    assert not RedisConfig.from_section(Section("redis", raw["redis"])).enabled


@pytest.mark.parametrize("raw, message", [
    ({"max_order_size": -1}, "risk.max_order_size must be > 0"),
    ({"max_position_per_symbol": -5}, "risk.max_position_per_symbol must be >= 0"),
    ({"max_daily_loss": 0}, "risk.max_daily_loss must be > 0"),
    ({"max_orders_per_second": "fast"}, "risk.max_orders_per_second must be a number"),
    ({"price_band_min": 2000.0, "price_band_max": 1000.0}, "risk.price_band_min (2000.0) must be <= price_band_max"),
    ({"max_daily_los": 5}, "unknown key(s) max_daily_los; known keys:"),
    ({"initial_state": "paused"}, "risk.initial_state is 'paused'; allowed: active, reducing, halted"),
    ({"throttle_clock": "wall"}, "allowed: market, monotonic"),
    ({"symbols": {"DOGEUSDT": {"max_order_size": 5}}}, "[risk.symbols.DOGEUSDT] names a symbol not in [symbols]"),
    ({"symbols": {"BTCUSDT": {"max_qty": 5}}}, "[risk.symbols.BTCUSDT] has unknown key(s) max_qty"),
    ({"symbols": {"BTCUSDT": {"price_band_min": 20.0, "price_band_max": 10.0}}},
     "risk.symbols.BTCUSDT.price_band_min (20.0) must be <="),
])
def test_bad_risk_config_names_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        risk(raw)
    assert message in str(err.value)


def test_symbol_overrides_inherit_the_defaults():
    config = risk({"max_order_size": 2.0, "price_band_bps": 100.0, "symbols": {"ethusdt": {"max_order_size": 20.0}}})
    assert config.limits_for("ETHUSDT").max_order_size == 20.0
    assert config.limits_for("ETHUSDT").price_band_bps == 100.0
    assert config.limits_for("BTCUSDT").max_order_size == 2.0


def test_burst_defaults_to_one_second_of_rate():
    config = risk({"max_orders_per_second": 50, "max_orders_per_second_per_strategy": 10})
    assert config.max_orders_burst == 50 and config.max_orders_burst_per_strategy == 10


@pytest.mark.parametrize("raw, message", [
    ({"url": "localhost:6379"}, "redis.url 'localhost:6379' must start with redis://"),
    ({"namespace": "a b"}, "redis.namespace 'a b' must be"),
    ({"mirror_interval_ms": 0}, "redis.mirror_interval_ms must be >= 1"),
    ({"host": "x"}, "[redis] has unknown key(s) host"),
])
def test_bad_redis_config_names_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        RedisConfig.from_section(Section("redis", raw))
    assert message in str(err.value)


def test_redis_keys_live_under_the_namespace():
    config = RedisConfig.from_section(Section("redis", {"url": "redis://localhost:6379/0", "namespace": "desk-a"}))
    assert config.enabled and config.key("kill_switch") == "hftshm:desk-a:kill_switch"
