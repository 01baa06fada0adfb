"""Collect: read what changed in one API entity since its cursor and keep every version in DuckDB.

The cursor is the newest change time seen; each run reads from the later of the cursor and the
server's time when the last read began, minus a lookback, because APIs commit late (a record can
appear with a change time older than one already read); see `collect_since`. A record whose
content hash equals its current version is "unchanged" and stores nothing, so re-reading the
lookback window costs nothing downstream. "Full sync" ignores the cursor.

Bad input is rejected by name (`BadRecord`: system, entity, record, field) and the rest of the
batch is stored: a record that is not a JSON object, has no id or a broken change time, or holds a
value one of its views cannot convert (a price of "tolv kroner", see `merge.unconvertible_sql`).
A rejected record stores nothing, so its previous good version stays current.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from talk_assets.settings import Settings, settings
from talk_assets.sync.merge import unconvertible_sql
from talk_assets.sync.model import Source
from talk_assets.sync.store import first, replace_rows

log = logging.getLogger("talk_assets.collect")

DEFAULT_LOOKBACK = timedelta(seconds=Settings().collect_lookback_s)


@dataclass
class BadRecord:
    """A record the API returned that cannot be stored: names system, entity, record and field."""

    system: str
    entity: str
    record: str
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.system} {self.entity} record {self.record}: field '{self.field}' {self.problem}"


@dataclass
class CollectResult:
    system: str
    entity: str
    read: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    cursor: datetime | None = None
    since: datetime | None = None
    bad: list[BadRecord] = field(default_factory=list)  # one per bad field: a record can have several

    @property
    def rejected(self) -> int:
        """How many records were rejected (not stored)."""
        return len({b.record for b in self.bad})

    def as_metadata(self) -> dict[str, Any]:
        return {
            "read": self.read, "new": self.new, "changed": self.changed, "unchanged": self.unchanged,
            "rejected": self.rejected, "since": self.since.isoformat() if self.since else "full",
            "cursor": self.cursor.isoformat() if self.cursor else "",
        }


def bad_lines(bad: list[BadRecord], limit: int = 50) -> list[str]:
    """The messages to show a user (Dagster logs and metadata, the CLI): the first `limit`, then a count."""
    lines = [str(b) for b in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more")
    return lines


def content_hash(record: dict[str, Any]) -> str:
    return hashlib.md5(json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value).replace("Z", "+00:00")
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def collect_records(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    records: Iterable[dict[str, Any]],
    *,
    since: datetime | None,
    now: datetime | None = None,
    read_from: datetime | None = None,
    probe: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> CollectResult:
    """Store `records` (one API entity's, as JSON dicts) as new versions where their content changed.

    `read_from`: the server's time when the read of `records` began (`read_changes`), where the
    next read may start (minus the lookback) even if nothing has changed since an old burst.
    `probe`: the entity's probe taken before the read, which the next cycle's plan compares."""
    now = now or datetime.now(UTC)
    res = CollectResult(source.system, source.entity, since=since)
    ids: list[str] = []
    hashes: list[str] = []
    changed: list[datetime | None] = []
    payloads: list[str] = []
    newest: datetime | None = None
    for i, rec in enumerate(records):
        res.read += 1
        if progress and res.read % 1000 == 0:
            progress(res.read)
        if not isinstance(rec, dict):
            res.bad.append(BadRecord(source.system, source.entity, f"#{i}", "(record)", "is not a JSON object"))
            continue
        rid = rec.get(source.id_field)
        if rid in (None, ""):
            res.bad.append(BadRecord(source.system, source.entity, f"#{i}", source.id_field, "is missing"))
            continue
        ts = None
        if source.changed_field:
            try:
                ts = parse_time(rec.get(source.changed_field))
            except ValueError:
                res.bad.append(BadRecord(source.system, source.entity, str(rid), source.changed_field,
                                         f"is not a timestamp: {str(rec.get(source.changed_field))[:40]!r}"))
                continue
        if ts and (newest is None or ts > newest):
            newest = ts
        ids.append(str(rid))
        hashes.append(content_hash(rec))
        changed.append(ts)
        payloads.append(json.dumps(rec, separators=(",", ":"), ensure_ascii=False, default=str))
    staged = pd.DataFrame(
        {"record_id": ids, "hash": hashes, "changed_at": pd.Series(changed, dtype="datetime64[us, UTC]"),
         "payload": payloads}
    )
    # without a change time from the API: a record's first version is "unknown, long ago" (so it
    # never outranks a timed edit elsewhere); a later version changed when we saw it change
    # ...and dated at the previous read, not now: our own earlier write coming back must not outrank an
    # edit made elsewhere since (the change happened at some time between the two reads)
    changed_expr = ("coalesce(s.changed_at, CASE WHEN c.record_id IS NULL THEN TIMESTAMPTZ '1970-01-01 00:00:00+00' "
                    "ELSE ?::TIMESTAMPTZ END)")
    prev_read = first(con, "SELECT last_collected_at FROM collect_state WHERE system = ? AND entity = ?",
                      [source.system, source.entity])
    seen = prev_read[0] if prev_read and prev_read[0] else now
    con.register("staged", staged)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE stage AS SELECT DISTINCT ON (record_id) record_id, hash, changed_at, "
                    "payload::JSON AS payload FROM staged")
        res.bad += reject_unconvertible(con, source)
        counts = first(con,
            """
            SELECT count(*) FILTER (WHERE c.record_id IS NULL),
                   count(*) FILTER (WHERE c.record_id IS NOT NULL AND c.hash <> s.hash),
                   count(*) FILTER (WHERE c.hash = s.hash)
            FROM stage s LEFT JOIN raw_current c
              ON c.system = ? AND c.entity = ? AND c.record_id = s.record_id
            """,
            [source.system, source.entity],
        )
        res.new, res.changed, res.unchanged = (int(x) for x in counts)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE stage_new AS
            SELECT ?::VARCHAR AS system, ?::VARCHAR AS entity, s.record_id::VARCHAR AS record_id,
                   s.hash::VARCHAR AS hash, {changed_expr} AS changed_at,
                   ?::TIMESTAMPTZ AS collected_at, s.payload::JSON AS payload, false AS deleted
            FROM stage s LEFT JOIN raw_current c
              ON c.system = ? AND c.entity = ? AND c.record_id = s.record_id
            WHERE c.record_id IS NULL OR c.hash <> s.hash
            """,
            [source.system, source.entity, seen, now, source.system, source.entity],
        )
        con.execute("INSERT INTO raw_versions SELECT * EXCLUDE (deleted) FROM stage_new")
        replace_rows(con, "raw_current", "stage_new", "system = ? AND entity = ? AND record_id IN "
                     "(SELECT record_id FROM stage_new)", [source.system, source.entity])
        prev = first(con, "SELECT cursor, first_collected_at, changed_read_at FROM collect_state "
                          "WHERE system = ? AND entity = ?", [source.system, source.entity])
        # the first read's time on the source's clock, which stamps the edit times the breaker compares
        # with it (push._pending_by_source): the server's `Date` when the read began, else the newest
        # change seen; our clock only where the source shows neither (an empty system without `Date`)
        first_read = read_from or newest or now
        cursor = max([t for t in (newest, prev[0] if prev else None) if t is not None], default=None)
        # a read saw a change when it stored a new version (or is the first); one that found nothing keeps the
        # time of the last that did, so rechecks end one lookback after it. A probe that moved without a new
        # version (a period of Squarespace's inventory token, a deletion) starts none: its read saw everything
        saw_change = prev is None or prev[2] is None or res.new > 0 or res.changed > 0
        con.execute(
            "INSERT OR REPLACE INTO collect_state (system, entity, cursor, last_collected_at, read_from, probe, "
            "first_collected_at, changed_read_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [source.system, source.entity, cursor, now, read_from, probe, (prev[1] if prev else None) or first_read,
             now if saw_change else prev[2]],
        )
        res.cursor = cursor
    finally:
        con.unregister("staged")
    return res


def reject_unconvertible(con: duckdb.DuckDBPyConnection, source: Source) -> list[BadRecord]:
    """Take the records of the batch in `stage` that hold a value their views cannot convert out of
    it, and name them: one `BadRecord` per record and field, e.g. "field 'price' is not a number:
    'tolv kroner'" (the value cut to 40 characters)."""
    checks = [sql for v in source.views if (sql := unconvertible_sql(v, "stage"))]
    if not checks:
        return []
    con.execute(
        "CREATE OR REPLACE TEMP TABLE stage_bad AS SELECT record_id, field, min(value) AS value, min(problem) AS problem "
        f"FROM ({' UNION ALL '.join(f'({c})' for c in checks)}) GROUP BY record_id, field"
    )
    con.execute("DELETE FROM stage WHERE record_id IN (SELECT record_id FROM stage_bad)")
    rows = con.execute("SELECT record_id, field, value, problem FROM stage_bad ORDER BY record_id, field").fetchall()
    return [BadRecord(source.system, source.entity, rid, fld, f"{problem}: {value[:40]!r}")
            for rid, fld, value, problem in rows]


def lookback_window() -> timedelta:
    """How far before the last read a read of changes starts: APIs commit late (`TALK_COLLECT_LOOKBACK_S`)."""
    return timedelta(seconds=settings().collect_lookback_s)


def stored_probes(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Each entity's probe as stored with its last complete read (`collect_state.probe`), by source key."""
    return {f"{s}.{e}": p for s, e, p in con.execute(
        "SELECT system, entity, probe FROM collect_state WHERE probe IS NOT NULL").fetchall()}


def collect_since(con: duckdb.DuckDBPyConnection, source: Source, *, full: bool) -> datetime | None:
    """Where the next incremental read starts: None for a full read.

    From the later of the newest change seen (the cursor) and the server's time when the last read
    began, minus the lookback: every record committed before that read began was in it, and one
    committed since carries a change time no earlier than the read's start minus its commit delay.
    Both are the server's clock, never ours. Without the second, an entity whose last change was a
    burst (an import, the first sync's creates) would re-read that burst every cycle until it
    changes again.
    """
    if full:
        return None
    row = first(con, "SELECT cursor, read_from FROM collect_state WHERE system = ? AND entity = ?",
                [source.system, source.entity])
    if not row or row[0] is None:
        return None
    cursor, read_from = row
    return max(cursor, read_from or cursor) - lookback_window()


def read_changes(client: Any, source: Source, since: datetime | None) -> tuple[list[dict[str, Any]], datetime | None]:
    """The entity's records changed since `since`, and the server's time when the read began."""
    started = client.server_time_since() if hasattr(client, "server_time_since") else (lambda: None)
    records = list(client.iter_records(source.entity, since=since))
    return records, started()
