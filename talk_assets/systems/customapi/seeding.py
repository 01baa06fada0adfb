"""Seed-time helpers: fast enough for worlds of 100,000 records per entity."""

from __future__ import annotations

from datetime import UTC, datetime

from talk_assets.systems.customapi.types import format_ts


def seed_ts(value: datetime) -> str:
    """`format_ts` for the world's whole-second UTC times, twice as fast (400,000 calls at 100k)."""
    if value.microsecond == 0 and value.tzinfo is UTC:
        return value.replace(tzinfo=None).isoformat() + ".000Z"
    return format_ts(value)
