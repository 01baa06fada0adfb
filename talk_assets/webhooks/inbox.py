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

The sync's own writes come back as notifications too (the target tells every subscriber, us
included). A push records each record it wrote here (`own_writes`: what it did and the record's
change time the target answered with); a notification that matches one is stored as `own` and
starts no run (a run would collect our own write and find nothing new). One write claims one
notification, so a person's edit of the same record in the same second (Shopify's `updated_at` has
whole seconds) is a second notification that nothing claims: it starts a run. Own notifications do
not move a record's newest change time: a run was not requested for them, so an older person's edit
arriving after our echo is not stale.

Some echoes carry no change time of the record to match (`Echo.by_arrival`): Squarespace's
`order.update` names only the order, the kind of update and the notification's own time, and the
Shopify writer's answer to a variant write is the variant as read before it. Such a write claims one
notification of its record (and, where it names one, of its update kind) that arrives from
`ECHO_EARLY_S` before it was recorded (the target may notify before our write's answer is back) to
`ECHO_WINDOW_S` after. Claiming the wrong one of two such notifications (ours and a person's in the
same window) costs nothing: the one left unclaimed starts a run, which reads the record as it is now.
What this does not cover: an echo that comes later than the window (a sender's retry after a failed
delivery, a delivery queue hours behind) starts a run that finds nothing new; an echo that never comes
(dropped) lets our write claim a person's notification of the same record and kind within the window,
and that edit then waits for polling.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from talk_assets.settings import settings

INBOX_FILE = "webhooks.sqlite"
ROTATION_GRACE_S = 3600
OWN_WRITES_KEPT_S = 48 * 3600  # Squarespace retries for up to 48 hours, Shopify 4: a later echo starts a run
# an echo matched by arrival (no record time to match): from this long before our write was recorded ...
ECHO_EARLY_S = 30.0
# ... to this long after. The vendors document no delivery latency; their notifications come within
# seconds when nothing fails (a retry after a failed delivery comes minutes later, and starts a run)
ECHO_WINDOW_S = 60.0

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
    own INTEGER NOT NULL DEFAULT 0,
    action TEXT,
    kind TEXT,                   -- the kind of update the notification names, where it does (Squarespace)
    UNIQUE (system, event_id)
);
CREATE TABLE IF NOT EXISTS own_writes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    action TEXT NOT NULL,        -- create | update
    updated_at TEXT,             -- the record's change time in the target's answer (UTC text), if any
    written_at TEXT NOT NULL,
    claimed_seq INTEGER,         -- the notification it matched, once one did
    kind TEXT,                   -- the kind of update its notification names (Squarespace), if known
    by_arrival INTEGER NOT NULL DEFAULT 0  -- 1: matched by arrival near `written_at` (no record time)
);
CREATE INDEX IF NOT EXISTS own_writes_record ON own_writes (system, entity, record_id);
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
    action: Literal["create", "update", "delete"] | None = None  # from the topic, where it says
    kind: str | None = None  # the kind of update, where the notification names one (Squarespace `data.update`)


@dataclass(frozen=True)
class Echo:
    """A notification a write of ours will cause, as the receiver will see it: the record it names (not
    always the one written: Shopify notifies a variant's product), and how to recognise it."""

    entity: str
    record_id: str
    action: str  # create | update
    updated_at: str | None = None  # the record's change time the notification will carry, if known
    kind: str | None = None  # the kind of update it will name, if the system names one
    by_arrival: bool = False  # no change time to match: matched by arrival just after the write


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

    def __init__(self, path: Path | None = None, durable: bool = True) -> None:
        """`durable=False` (the push's own-write log): commits are not synced to disk one by one; a
        record lost in a power cut costs one run that finds nothing new, never a change."""
        self.path = Path(path or inbox_path())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._migrate()
        self._con.executescript(SCHEMA)

    def _migrate(self) -> None:
        """An inbox written before own writes were recorded gets the new columns of `events`."""
        cols = {r[1] for r in self._con.execute("PRAGMA table_info(events)").fetchall()}
        if cols and "own" not in cols:
            self._con.execute("ALTER TABLE events ADD COLUMN own INTEGER NOT NULL DEFAULT 0")
        if cols and "action" not in cols:
            self._con.execute("ALTER TABLE events ADD COLUMN action TEXT")
        if cols and "kind" not in cols:
            self._con.execute("ALTER TABLE events ADD COLUMN kind TEXT")
        own = {r[1] for r in self._con.execute("PRAGMA table_info(own_writes)").fetchall()}
        if own and "kind" not in own:
            self._con.execute("ALTER TABLE own_writes ADD COLUMN kind TEXT")
        if own and "by_arrival" not in own:
            self._con.execute("ALTER TABLE own_writes ADD COLUMN by_arrival INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, n: Notification) -> str:
        """Store a notification: 'new', 'duplicate' (its id was seen), 'own' (the echo of a write the
        sync recorded, see `record_own`) or 'stale' (a strictly older change of a record than one
        already notified)."""
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
                own = None if n.record_id is None else _own_match(con, n.system, n.entity, n.record_id, updated,
                                                                  n.action, n.kind, now)
                stale = False
                if own is None and updated and n.record_id is not None:
                    row = con.execute("SELECT updated_at FROM record_times WHERE system = ? AND entity = ? "
                                      "AND record_id = ?", (n.system, n.entity, n.record_id)).fetchone()
                    # strictly older only: an equal time may be another change in the same second (Shopify's
                    # `updated_at` has whole seconds); a redelivery of the same change has the same id (above)
                    stale = row is not None and row[0] > updated
                    if not stale:
                        con.execute("INSERT OR REPLACE INTO record_times VALUES (?, ?, ?, ?)",
                                    (n.system, n.entity, n.record_id, updated))
                cur = con.execute("INSERT INTO events (system, event_id, topic, entity, record_id, updated_at, "
                                  "received_at, stale, own, action, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                  (n.system, n.event_id, n.topic, n.entity, n.record_id, updated, now, int(stale),
                                   int(own is not None), n.action, n.kind))
                if own is not None:
                    con.execute("UPDATE own_writes SET claimed_seq = ? WHERE id = ?", (cur.lastrowid, own))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return "own" if own is not None else "stale" if stale else "new"

    # -- the sync's own writes -----------------------------------------------------------------------
    def record_own(self, system: str, entity: str, record_id: str, action: str, updated_at: str | None,
                   kind: str | None = None, by_arrival: bool = False) -> None:
        """A record the sync has just written (`action` create or update) and the change time the
        target answered with: its notification, when it comes, is `own` and starts no run. `by_arrival`:
        the notification carries no change time to match; it is recognised by its record, its `kind`
        of update (where given) and its arrival near this write (module docstring)."""
        updated = _utc(updated_at) if updated_at else None
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._lock:
            self._con.execute("INSERT INTO own_writes (system, entity, record_id, action, updated_at, written_at, "
                              "kind, by_arrival) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              (system, entity, str(record_id), action, updated, now, kind, int(by_arrival)))

    def forget_old_own_writes(self) -> None:
        """Own writes no notification claimed within the senders' retry window (a dropped notification,
        an unsubscribed target): an echo after that starts a run, which finds nothing new."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=OWN_WRITES_KEPT_S)).isoformat(timespec="microseconds")
        with self._lock:
            self._con.execute("DELETE FROM own_writes WHERE written_at < ?", (cutoff,))

    def claim_own(self, system: str, after: int) -> int:
        """Mark the notifications after `after` that echo a recorded own write as `own` (the sensor's
        step before it reads `pending`): a notification can arrive before the push that caused it has
        recorded its write. The record's newest change time is then set from its other notifications
        again, and a notification stored stale only against the echo is fresh again."""
        claimed = 0
        with self._lock:
            con = self._con
            # the sensor asks every second: take the write lock only when there is something to match
            if not con.execute("SELECT 1 FROM events e WHERE e.system = ? AND e.seq > ? AND e.own = 0 AND e.stale = 0 "
                               "AND EXISTS (SELECT 1 FROM own_writes w WHERE w.system = e.system AND w.entity = "
                               "e.entity AND w.record_id = e.record_id AND w.claimed_seq IS NULL) LIMIT 1",
                               (system, after)).fetchone():
                return 0
            con.execute("BEGIN IMMEDIATE")
            try:
                rows = con.execute("SELECT seq, entity, record_id, updated_at, action, kind, received_at FROM events "
                                   "WHERE system = ? AND seq > ? AND own = 0 AND stale = 0 AND record_id IS NOT NULL "
                                   "ORDER BY seq", (system, after)).fetchall()
                touched: set[tuple[str, str]] = set()
                for seq, entity, record_id, updated, action, kind, received in rows:
                    own = _own_match(con, system, entity, record_id, updated, action, kind, received)
                    if own is None:
                        continue
                    con.execute("UPDATE events SET own = 1 WHERE seq = ?", (seq,))
                    con.execute("UPDATE own_writes SET claimed_seq = ? WHERE id = ?", (seq, own))
                    touched.add((entity, record_id))
                    claimed += 1
                for entity, record_id in touched:
                    key = (system, entity, record_id)
                    newest = con.execute("SELECT max(updated_at) FROM events WHERE system = ? AND entity = ? AND "
                                         "record_id = ? AND own = 0 AND stale = 0", key).fetchone()[0]
                    con.execute("UPDATE events SET stale = 0 WHERE system = ? AND entity = ? AND record_id = ? "
                                "AND seq > ? AND stale = 1 AND own = 0 AND (? IS NULL OR updated_at >= ?)",
                                (*key, after, newest, newest))
                    newest = con.execute("SELECT max(updated_at) FROM events WHERE system = ? AND entity = ? AND "
                                         "record_id = ? AND own = 0 AND stale = 0", key).fetchone()[0]
                    if newest is None:
                        con.execute("DELETE FROM record_times WHERE system = ? AND entity = ? AND record_id = ?", key)
                    else:
                        con.execute("INSERT OR REPLACE INTO record_times VALUES (?, ?, ?, ?)", (*key, newest))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return claimed

    def pending(self, system: str, after: int, limit: int = 5000) -> list[Pending]:
        """Fresh notifications of `system` after sequence number `after` that are not the echo of our own
        writes, oldest first."""
        with self._lock:
            rows = self._con.execute(
                "SELECT seq, event_id, entity, record_id FROM events WHERE system = ? AND seq > ? AND stale = 0 "
                "AND own = 0 ORDER BY seq LIMIT ?", (system, after, limit)).fetchall()
        return [Pending(*r) for r in rows]

    def last_seq(self, system: str) -> int:
        with self._lock:
            row = self._con.execute("SELECT max(seq) FROM events WHERE system = ?", (system,)).fetchone()
        return int(row[0] or 0)

    def counts(self, system: str) -> dict[str, int]:
        with self._lock:
            rows = self._con.execute("SELECT own, stale, count(*) FROM events WHERE system = ? GROUP BY own, stale",
                                     (system,)).fetchall()
        own = sum(n for o, _s, n in rows if o)
        stale = sum(n for o, st, n in rows if st and not o)
        fresh = sum(n for o, st, n in rows if not st and not o)
        return {"fresh": int(fresh), "stale": int(stale), "own": int(own)}

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


def _own_match(con: sqlite3.Connection, system: str, entity: str, record_id: str, updated: str | None,
               action: str | None, kind: str | None, received: str) -> int | None:
    """The oldest unclaimed own write a notification of this record echoes: the same change time as the
    target answered our write with; the creation of a record we created (nobody else creates a record
    with the id the target gave us); or, for a write whose echo has no record time (`by_arrival`), an
    update of the same kind (where the write names one) arriving near the write. A match by change
    time is preferred: it is exact."""
    row = con.execute(
        "SELECT id FROM own_writes WHERE system = :system AND entity = :entity AND record_id = :rid "
        "AND claimed_seq IS NULL AND ((updated_at IS NOT NULL AND updated_at = :updated) "
        "OR (action = 'create' AND :action = 'create') "
        "OR (by_arrival = 1 AND action = :action AND (kind IS NULL OR kind = :kind) "
        "    AND julianday(:received) BETWEEN julianday(written_at) - :early / 86400.0 "
        "                                 AND julianday(written_at) + :window / 86400.0)) "
        "ORDER BY (updated_at IS NOT NULL AND updated_at = :updated) DESC, id LIMIT 1",
        {"system": system, "entity": entity, "rid": str(record_id), "updated": updated, "action": action,
         "kind": kind, "received": received, "early": ECHO_EARLY_S, "window": ECHO_WINDOW_S}).fetchone()
    return None if row is None else int(row[0])
