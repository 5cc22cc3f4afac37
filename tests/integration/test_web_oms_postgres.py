"""The API's OMS reader against a real PostgreSQL (its own schema, dropped afterwards)."""

from __future__ import annotations

import uuid

import pytest

from hftshm.web.oms_reader import OmsReader
from tests.unit.test_web_wiring import _check_reader, _fill_oms_tables

URL = "postgresql+psycopg://postgres@localhost:5432/test"


def test_oms_reader_pages_postgresql():
    schema = f"web_{uuid.uuid4().hex[:10]}"
    try:
        store = _fill_oms_tables(URL, schema)
    except Exception as exc:  # the tier needs PostgreSQL; say so instead of a confusing error
        pytest.fail(f"PostgreSQL at {URL} is required for integration tests: {exc}")
    reader = OmsReader(URL, schema=schema, strategy_names=lambda: {1: "momo-btc", 2: "mm-btc"},
                       symbol_names={1: "BTCUSDT"})
    try:
        _check_reader(reader)
    finally:
        reader.close()
        store.drop_schema()
        store.close()
