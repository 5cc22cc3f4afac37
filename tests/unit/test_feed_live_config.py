"""``[feed]`` keys of live market data (hftshm.feed.config): streams, endpoints, validation."""

from __future__ import annotations

import pytest

from hftshm.config import ConfigError, Section
from hftshm.feed.config import FeedConfig


def _config(**raw) -> FeedConfig:
    return FeedConfig.from_section(Section("feed", raw))


def test_defaults_replay_and_binance_public_endpoints():
    config = _config()
    assert config.source == "replay" and config.live_symbols == ("usdm:BTCUSDT",)
    assert config.live_network == "thread" and _config(live_network="process").live_network == "process"
    assert config.live_poll == "spin" and _config(live_poll="block").live_poll == "block"
    [sub] = config.subscriptions()
    assert sub.market.ws_url == "wss://fstream.binance.com/stream"
    assert sub.market.rest_url == "https://fapi.binance.com/fapi/v1/depth"
    assert sub.url().endswith("?streams=btcusdt@depth@0ms/btcusdt@trade/btcusdt@bookTicker")


def test_streams_grouped_by_market_with_configured_endpoints():
    config = _config(source="binance", live_symbols=["usdm:btcusdt", "spot:ETHUSDT", "usdm:ETHUSDT"],
                     ws_url={"usdm": "ws://127.0.0.1:9000/stream"}, rest_url={"spot": "http://127.0.0.1:9001/d"})
    subs = {s.market.name: s for s in config.subscriptions()}
    assert subs["usdm"].symbols == ("BTCUSDT", "ETHUSDT") and subs["spot"].symbols == ("ETHUSDT",)
    assert subs["usdm"].market.ws_url == "ws://127.0.0.1:9000/stream"
    assert subs["usdm"].market.rest_url == "https://fapi.binance.com/fapi/v1/depth"
    assert subs["spot"].market.rest_url == "http://127.0.0.1:9001/d"
    assert "ethusdt@depth@100ms" in subs["spot"].streams()  # spot's diff stream is 100 ms


@pytest.mark.parametrize("raw, message", [
    ({"source": "kafka"}, "allowed: replay, binance"),
    ({"live_symbols": ["nasdaq:AAPL"]}, "not MARKET:SYMBOL"),
    ({"live_symbols": []}, "is empty"),
    ({"ws_url": {"usdm": "http://127.0.0.1/stream"}}, "ws:// or wss://"),
    ({"rest_url": {"moon": "http://127.0.0.1/x"}}, "unknown market 'moon'"),
    ({"heartbeat_timeout_s": 0}, "heartbeat_timeout_s"),
    ({"live_symbol": ["usdm:BTCUSDT"]}, "unknown key"),
    ({"live_network": "fork"}, "allowed: process, thread"),
    ({"live_poll": "busy"}, "feed.live_poll is 'busy'; allowed: spin, block"),
    ({"live_poll": 1}, "feed.live_poll is 1; allowed: spin, block"),
])
def test_broken_live_keys_are_clear_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        _config(**raw)
