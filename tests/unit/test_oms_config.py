"""``[oms]`` config: defaults, the shipped file, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hftshm.config import ConfigError, Section, read_toml
from hftshm.oms.config import OmsConfig


def config(**raw) -> OmsConfig:
    return OmsConfig.from_section(Section("oms", raw))


def test_defaults_and_sqlite_under_the_run_dir(tmp_path):
    c = config()
    assert c.on_backlog_full == "halt" and c.max_retries == 3
    assert c.database_url_for(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'oms.sqlite'}"
    assert config(database_url="postgresql+psycopg://u@h/db").database_url_for(tmp_path) == "postgresql+psycopg://u@h/db"


def test_the_shipped_config_is_valid():
    raw = read_toml(Path(__file__).resolve().parents[2] / "config" / "platform.toml")
    shipped = OmsConfig.from_section(Section("oms", raw["oms"]))
    assert shipped.timeouts_ns()[0] == int(shipped.ack_timeout_ms * 1e6)
    assert len(shipped.timeouts_ns()) == shipped.max_retries + 1


@pytest.mark.parametrize("raw,message", [
    ({"on_backlog_full": "drop"}, "oms.on_backlog_full is 'drop'; allowed: halt, block"),
    ({"ack_timeout_ms": 0}, "oms.ack_timeout_ms must be > 0"),
    ({"max_retries": -1}, "oms.max_retries must be >= 0"),
    ({"database_url": "localhost:5432"}, "oms.database_url 'localhost:5432' is not a database URL"),
    ({"database_schema": "a;drop"}, "oms.database_schema"),
    ({"max_order": 5}, "[oms] has unknown key(s) max_order"),
])
def test_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError) as info:
        config(**raw)
    assert message in str(info.value)
