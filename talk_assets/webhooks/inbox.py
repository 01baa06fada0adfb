"""The webhook inbox: a small SQLite file in WAL mode beside (never inside) the DuckDB state.

Why SQLite and not the state file or a JSONL log: the DuckDB state has one writer (a sync run
holds it for seconds); a receipt must be stored in milliseconds while a run is going, so it goes
to its own file. SQLite gives what a hand-rolled append-only log would have to rebuild: a UNIQUE
constraint that turns a redelivered notification into a no-op (de-duplication by event id), an
ordered sequence for the sensors' cursors, concurrent readers beside one writer (WAL), and
durability at commit (`synchronous=FULL`: a notification we answered 200 to survives a power cut).

A record's newest notified change time is kept too, so an older notification arriving after a
newer one (the senders do not promise order: Shopify and Squarespace say so) is stored as stale
and starts nothing: the newer one's run already read the record as it is now.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from talk_assets.settings import settings

INBOX_FILE = "webhooks.sqlite"
ROTATION_GRACE_S = 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    system TEXT NOT NULL,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    entity TEXT NOT NULL,
    record_id TEXT,
    updated_at TEXT,
    received_at TEXT NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0,
    UNIQUE (system, event_id)
);
CREATE TABLE IF NOT EXISTS record_times (
    system TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (system, entity, record_id)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    system TEXT NOT NULL, subscription_id TEXT NOT NULL, secret TEXT NOT NULL, previous_secret TEXT,
    rotated_at TEXT, PRIMARY KEY (system, subscription_id)
);
"""


class Notification(BaseModel):
    """A verified notification, reduced to what the sync needs: which record of which entity changed.

    The payload itself is not kept: the run reads the record from the API (the source of truth),
    so a notification is only a reason to look, never data to apply.
    """

    system: str
    event_id: str
    topic: str
    entity: str
    record_id: str | None = None
    updated_at: str | None = None  # the record's change time (ISO 8601, UTC), for ordering


@dataclass(frozen=True)
class Pending:
    seq: int
    event_id: str
    entity: str
    record_id: str | None


def inbox_path() -> Path:
    return settings().data_dir / INBOX_FILE


def _utc(iso: str) -> str:
    """An ISO 8601 time normalised to UTC text that compares in time order."""
    ts = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


class Inbox:
    """Append verified notifications; read the ones after a cursor. Safe across threads and processes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or inbox_path())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        self._con.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, n: Notification) -> str:
        """Store a notification: 'new', 'duplicate' (its id was seen) or 'stale' (a strictly older change
        of a record than one already notified)."""
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        updated = _utc(n.updated_at) if n.updated_at else None
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                if con.execute("SELECT 1 FROM events WHERE system = ? AND event_id = ?",
                               (n.system, n.event_id)).fetchone():
                    con.execute("ROLLBACK")
                    return "duplicate"
                stale = False
                if updated and n.record_id is not None:
                    row = con.execute("SELECT updated_at FROM record_times WHERE system = ? AND entity = ? "
                                      "AND record_id = ?", (n.system, n.entity, n.record_id)).fetchone()
                    # strictly older only: an equal time may be another change in the same second (Shopify's
                    # `updated_at` has whole seconds); a redelivery of the same change has the same id (above)
                    stale = row is not None and row[0] > updated
                    if not stale:
                        con.execute("INSERT OR REPLACE INTO record_times VALUES (?, ?, ?, ?)",
                                    (n.system, n.entity, n.record_id, updated))
                con.execute("INSERT INTO events (system, event_id, topic, entity, record_id, updated_at, "
                            "received_at, stale) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (n.system, n.event_id, n.topic, n.entity, n.record_id, updated, now, int(stale)))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return "stale" if stale else "new"

    def pending(self, system: str, after: int, limit: int = 5000) -> list[Pending]:
        """Fresh (not stale) notifications of `system` after sequence number `after`, oldest first."""
        with self._lock:
            rows = self._con.execute(
                "SELECT seq, event_id, entity, record_id FROM events WHERE system = ? AND seq > ? AND stale = 0 "
                "ORDER BY seq LIMIT ?", (system, after, limit)).fetchall()
        return [Pending(*r) for r in rows]

    def last_seq(self, system: str) -> int:
        with self._lock:
            row = self._con.execute("SELECT max(seq) FROM events WHERE system = ?", (system,)).fetchone()
        return int(row[0] or 0)

    def counts(self, system: str) -> dict[str, int]:
        with self._lock:
            rows = self._con.execute("SELECT stale, count(*) FROM events WHERE system = ? GROUP BY stale",
                                     (system,)).fetchall()
        d = dict(rows)
        return {"fresh": int(d.get(0, 0)), "stale": int(d.get(1, 0))}

    # -- per-subscription secrets (Squarespace returns one per subscription) -----------------------
    def save_secret(self, system: str, subscription_id: str, secret: str) -> None:
        """Keep a subscription's new secret; the one it replaces stays valid for notifications already
        signed with it (rotation: deliveries in flight or being retried)."""
        now = datetime.now(UTC).isoformat()
        with self._lock:
            row = self._con.execute("SELECT secret FROM subscriptions WHERE system = ? AND subscription_id = ?",
                                    (system, subscription_id)).fetchone()
            previous = row[0] if row and row[0] != secret else None
            self._con.execute("INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?)",
                              (system, subscription_id, secret, previous, now if previous else None))

    def secrets(self, system: str, subscription_id: str | None = None) -> list[str]:
        """The secrets a notification of `system` may be signed with: the current one, and the one it
        replaced for `ROTATION_GRACE_S` after a rotation (the vendor docs are silent on how long old
        deliveries keep the old signature; an hour is Shopify's figure for its client secret)."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=ROTATION_GRACE_S)).isoformat()
        sql = ("SELECT secret, CASE WHEN rotated_at >= ? THEN previous_secret END FROM subscriptions "
               "WHERE system = ?")
        args: tuple = (cutoff, system)
        if subscription_id is not None:
            sql += " AND subscription_id = ?"
            args = (cutoff, system, subscription_id)
        with self._lock:
            rows = self._con.execute(sql, args).fetchall()
        return [s for row in rows for s in row if s]

    def subscription_ids(self, system: str) -> list[str]:
        with self._lock:
            rows = self._con.execute("SELECT subscription_id FROM subscriptions WHERE system = ?",
                                     (system,)).fetchall()
        return [r[0] for r in rows]
