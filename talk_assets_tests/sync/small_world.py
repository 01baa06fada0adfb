"""A small hand-made world for the merge rules (DuckDB in memory, no HTTP): records collected at
hours after `T0`; the `con` fixture (conftest.py) is the connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

from talk_assets.sync.collect import collect_records
from talk_assets.sync.declaration import SOURCES_BY_KEY

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ts(hours: int) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def put(con: duckdb.DuckDBPyConnection, source: str, *records: dict) -> None:
    collect_records(con, SOURCES_BY_KEY[source], list(records), since=None, now=T0 + timedelta(days=30))


