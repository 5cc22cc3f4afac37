"""Database fixtures for OMS tests: a real PostgreSQL schema per test (dropped after) or a SQLite file."""

from __future__ import annotations

import uuid

import pytest

from hftshm.oms.store import Store

POSTGRES_URL = "postgresql+psycopg://postgres@localhost:5432/test"


def new_database(kind: str, tmp_path) -> tuple[str, str]:
    """(url, schema) of a fresh, empty database of ``kind``."""
    if kind == "postgresql":
        return POSTGRES_URL, f"oms_test_{uuid.uuid4().hex[:12]}"
    return f"sqlite:///{tmp_path / 'oms.sqlite'}", ""


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(url, schema) of an empty OMS database; dropped afterwards."""
    url, schema = new_database(request.param, tmp_path)
    yield url, schema
    drop(url, schema)


def drop(url: str, schema: str) -> None:
    store = Store(url, schema=schema, create=False)
    try:
        store.drop_schema()
    finally:
        store.close()
