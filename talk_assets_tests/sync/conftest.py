"""Fixtures of the sync tests."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from talk_assets.sync.store import SCHEMA


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory state with the store's schema (the small hand-made worlds of test_merge/test_echo)."""
    c = duckdb.connect()
    c.execute(SCHEMA)
    yield c
    c.close()
