"""``hftshm run`` before anything starts: on a cold cache it parses the replayed CSV in the CLI
process while the compiling pool works, so the feed worker maps the event cache instead of parsing
before its first tick; a bad tuning switch in the environment stops it there."""

from __future__ import annotations

import shutil
from pathlib import Path

from hftshm.cli.run import _parse_replay_data
from hftshm.config import read_toml
from hftshm.feed import cache as event_cache
from hftshm.platform import PlatformConfig

ROOT = Path(__file__).resolve().parents[2]
DAY = ROOT / "data" / "btcusdt_20240808.csv.gz"


def _config(data: Path) -> PlatformConfig:
    raw = read_toml(ROOT / "config" / "platform.toml")
    raw["feed"]["data"] = [str(data)]
    return PlatformConfig.from_raw(raw)


def test_the_replayed_csv_is_parsed_into_its_event_cache(tmp_path):
    day = tmp_path / DAY.name
    shutil.copy(DAY, day)
    shutil.copy(DAY.with_name(DAY.name + ".instruments.json"), tmp_path)
    cfg = _config(day)
    cache = event_cache.cache_path_for(day)
    assert not cache.exists()
    _parse_replay_data(cfg)
    assert cache.exists()
    assert event_cache.staleness(cache, day, cfg.symbols) is None  # the feed maps it as it is


def test_a_file_that_does_not_parse_is_left_for_the_feed_to_report(tmp_path):
    day = tmp_path / DAY.name
    shutil.copy(DAY, day)
    shutil.copy(DAY.with_name(DAY.name + ".instruments.json"), tmp_path)
    cfg = _config(day)
    day.write_bytes(b"not a tick csv\n")
    _parse_replay_data(cfg)  # no exception: the feed's own start says what is wrong
    assert not event_cache.cache_path_for(day).exists()


def test_a_bad_tuning_switch_stops_hftshm_run_before_anything_starts(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hftshm.cli import app

    monkeypatch.chdir(tmp_path)
    for name in ("HFTSHM_REHEARSE_US", "HFTSHM_KEEP_WARM_US"):
        monkeypatch.setenv(name, "often")
        result = CliRunner().invoke(app, ["run", "--no-web", "--duration", "1", "--config",
                                          str(ROOT / "config" / "platform.toml")])
        assert result.exit_code == 2
        assert f"environment error: {name} must be microseconds" in result.output
        monkeypatch.delenv(name)
