"""[exchange] config: defaults, every key validated with a message naming it, latency series files."""

from __future__ import annotations

import pytest

from hftshm.config import ConfigError
from hftshm.exchange.config import ExchangeConfig, LatencyConfig


def test_defaults_and_shipped_config_agree():
    from hftshm.config import read_toml

    shipped = ExchangeConfig.from_raw(read_toml("config/platform.toml").get("exchange"))
    assert shipped == ExchangeConfig()
    assert shipped.entry_latency.min_ns() == 50_000


@pytest.mark.parametrize("raw, words", [
    ({"book_capacity": 0}, "exchange.book_capacity must be >= 1"),
    ({"fill_model": "optimistic"}, "exchange.fill_model is 'optimistic'; allowed: risk_averse, probabilistic"),
    ({"maker_fee_bps": "2"}, "exchange.maker_fee_bps must be a number"),
    ({"seeed": 1}, "[exchange] has unknown key(s) seeed"),
    ({"entry_latency": {"model": "gauss"}}, "exchange.entry_latency.model is 'gauss'"),
    ({"entry_latency": {"min_us": 600}}, "max_us (500.0) must be >= min_us (600.0)"),
    ({"response_latency": {"model": "series"}}, "series_path is required"),
    ({"entry_latency": {"max_us": float("nan")}}, "must be finite"),
])
def test_bad_values_name_the_key(raw, words):
    with pytest.raises(ConfigError) as info:
        ExchangeConfig.from_raw(raw)
    assert words in str(info.value)


def test_latency_series_file(tmp_path):
    path = tmp_path / "lat.txt"
    path.write_text("# one latency per line, microseconds\n120\n80.5\n300\n")
    cfg = LatencyConfig.from_section(__import__("hftshm.config", fromlist=["Section"]).Section(
        "exchange.entry_latency", {"model": "series", "series_path": str(path)}))
    assert list(cfg.series_ns()) == [120_000, 80_500, 300_000] and cfg.min_ns() == 80_500
    path.write_text("12\nabc\n")
    with pytest.raises(ConfigError, match="cannot read"):
        cfg.series_ns()
    path.write_text("-5\n")
    with pytest.raises(ConfigError, match=">= 0"):
        cfg.series_ns()


def test_latency_draws_are_seeded_per_direction_and_in_range():
    import numpy as np

    from hftshm.exchange.latency_nb import ENTRY, RESPONSE, draw, new_latency

    cfg = LatencyConfig("uniform", min_us=50, max_us=500)
    a, sa = new_latency(cfg, 7, ENTRY)
    b, sb = new_latency(cfg, 7, ENTRY)
    c, sc = new_latency(cfg, 7, RESPONSE)
    first = [draw(a, sa) for _ in range(1000)]
    assert first == [draw(b, sb) for _ in range(1000)]
    assert first != [draw(c, sc) for _ in range(1000)]
    assert min(first) >= 50_000 and max(first) <= 500_000 and np.std(first) > 100_000
    series, values = new_latency(LatencyConfig("constant", constant_us=75), 1, ENTRY)
    assert {draw(series, values) for _ in range(10)} == {75_000}
