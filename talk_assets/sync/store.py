"""The DuckDB file that holds the sync state, opened by short-lived connections.

DuckDB allows one writing process per file, and a second process cannot open it while the first
holds it. Run steps are the only openers (sensors and the webserver never open it). A run launched
from the UI or a sensor holds the file only for its short steps: each Dagster step opens its own
connection for its SQL and closes it. `talk-assets sync` runs its whole cycle in one process with one
connection (`session`: ~80 opens saved) and so holds the file until its cycle ends. When another process holds the file anyway, `connect`
waits as long as it takes (a cycle of another process may run for many minutes while a system is
down), says every `TALK_LOCK_REPORT_S` which file it waits for and which process holds it, and never
fails because of the lock.

The state is a cache of what the systems hold plus the sync's memory (links, intents, dead letters):
a lost file is rebuilt from the systems by the next cycle, which links customers and products by
their keys and orders by the origin reference the sync wrote into each copy, before it creates
anything. A file DuckDB cannot read raises `StateFileError`, whose message says what to do.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import duckdb

from talk_assets.settings import Settings, settings
from talk_assets.sync.declaration import content_digest

log = logging.getLogger("talk_assets.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_versions (
    system VARCHAR NOT NULL, entity VARCHAR NOT NULL, record_id VARCHAR NOT NULL,
    hash VARCHAR NOT NULL, changed_at TIMESTAMPTZ, collected_at TIMESTAMPTZ NOT NULL,
    payload JSON NOT NULL
);
CREATE TABLE IF NOT EXISTS raw_current (
    system VARCHAR NOT NULL, entity VARCHAR NOT NULL, record_id VARCHAR NOT NULL,
    hash VARCHAR NOT NULL, changed_at TIMESTAMPTZ, collected_at TIMESTAMPTZ NOT NULL,
    payload JSON NOT NULL, deleted BOOLEAN DEFAULT false,
    PRIMARY KEY (system, entity, record_id)
);
CREATE TABLE IF NOT EXISTS collect_state (
    system VARCHAR NOT NULL, entity VARCHAR NOT NULL, cursor TIMESTAMPTZ, last_collected_at TIMESTAMPTZ,
    PRIMARY KEY (system, entity)
);
ALTER TABLE collect_state ADD COLUMN IF NOT EXISTS read_from TIMESTAMPTZ;
-- the entity's probe taken before its last complete read: the cycle's plan compares it (sync/plan.py)
ALTER TABLE collect_state ADD COLUMN IF NOT EXISTS probe VARCHAR;
-- when the entity was first read from this state: values edited before then are the first sync's,
-- which the circuit breaker lets through (push.py `_pending_by_source`)
ALTER TABLE collect_state ADD COLUMN IF NOT EXISTS first_collected_at TIMESTAMPTZ;
-- our clock: when a read last saw a change (it stored a new or changed record, or was the first); the
-- plan re-reads for late commits for one lookback after it (sync/plan.py), not after every re-read
ALTER TABLE collect_state ADD COLUMN IF NOT EXISTS changed_read_at TIMESTAMPTZ;
CREATE TABLE IF NOT EXISTS links (
    gid VARCHAR NOT NULL, global_type VARCHAR NOT NULL, nsid VARCHAR NOT NULL, view VARCHAR NOT NULL,
    system VARCHAR NOT NULL, entity VARCHAR NOT NULL, record_id VARCHAR NOT NULL,
    link_mode VARCHAR, origin VARCHAR NOT NULL, first_linked_at TIMESTAMPTZ NOT NULL,
    last_written_hash VARCHAR, last_written_at TIMESTAMPTZ,
    PRIMARY KEY (view, nsid)
);
CREATE TABLE IF NOT EXISTS links_history (
    gid VARCHAR, global_type VARCHAR, nsid VARCHAR, view VARCHAR, system VARCHAR, entity VARCHAR,
    record_id VARCHAR, link_mode VARCHAR, origin VARCHAR, last_written_hash VARCHAR,
    valid_from INTEGER NOT NULL, valid_to INTEGER
);
CREATE SEQUENCE IF NOT EXISTS dead_letter_ids;
CREATE TABLE IF NOT EXISTS dead_letters (
    id BIGINT PRIMARY KEY DEFAULT nextval('dead_letter_ids'), view VARCHAR NOT NULL, gid VARCHAR NOT NULL,
    action VARCHAR NOT NULL, record_id VARCHAR, payload JSON, payload_hash VARCHAR, status INTEGER,
    error VARCHAR, body VARCHAR, attempts INTEGER DEFAULT 1, first_failed_at TIMESTAMPTZ,
    last_failed_at TIMESTAMPTZ, replay BOOLEAN DEFAULT false, resolved_at TIMESTAMPTZ
);
-- how a dead letter was resolved: 'written' (a later call succeeded) or 'present' (found in the target as intended)
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS resolution VARCHAR;
CREATE TABLE IF NOT EXISTS push_intents (
    view VARCHAR NOT NULL, gid VARCHAR NOT NULL, idem_key VARCHAR NOT NULL, started_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL, record_id VARCHAR, fingerprint VARCHAR, PRIMARY KEY (view, gid)
);
-- rows a push held back for their data (`HeldBack`: an order naming a product the target does not have
-- yet), with the payload they waited with: the cycle's plan does not retry them until that payload or
-- the target system changes (plan.py)
CREATE TABLE IF NOT EXISTS push_waits (
    view VARCHAR NOT NULL, gid VARCHAR NOT NULL, payload_hash VARCHAR, reason VARCHAR, since TIMESTAMPTZ,
    PRIMARY KEY (view, gid)
);
CREATE TABLE IF NOT EXISTS push_log (
    run_id VARCHAR, view VARCHAR, logged_at TIMESTAMPTZ, created INTEGER, updated INTEGER, conflicts INTEGER,
    failed INTEGER, skipped INTEGER, pending INTEGER
);
CREATE TABLE IF NOT EXISTS derived_state (
    name VARCHAR PRIMARY KEY, inputs VARCHAR NOT NULL, result VARCHAR, built_at TIMESTAMPTZ
);
-- the entities each merge build changed (gid NULL: the build was whole), which the mappings read to map
-- only those again (sync/mapping.py `map_view`); the recent builds are kept
CREATE TABLE IF NOT EXISTS merge_changes (global_type VARCHAR NOT NULL, build BIGINT NOT NULL, gid VARCHAR);
-- ...and, for a type with references (orders), the entities its changed entities named before or name now
CREATE TABLE IF NOT EXISTS merge_ref_changes (global_type VARCHAR NOT NULL, build BIGINT NOT NULL, prop VARCHAR NOT NULL,
    gid VARCHAR NOT NULL);
-- per mapping: the merge build of its own type it was made from and a digest of what else it read
CREATE TABLE IF NOT EXISTS map_state (view VARCHAR PRIMARY KEY, build BIGINT, others VARCHAR);
-- ...and the builds of the types its own type references (an order's customer and user), as JSON
ALTER TABLE map_state ADD COLUMN IF NOT EXISTS ref_builds VARCHAR;
-- what the state was last built with, per name (sync/plan.py: the code digest of the last planned run)
CREATE TABLE IF NOT EXISTS cycle_state (name VARCHAR PRIMARY KEY, value VARCHAR, recorded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS link_versions (
    version INTEGER PRIMARY KEY, data_version VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,
    row_count BIGINT, added BIGINT, removed BIGINT, run_id VARCHAR
);
-- the version's content checksum (the sum of its rows' hashes, of which `data_version` is a digest): the
-- next version adds and subtracts the rows that changed instead of hashing every link (links.py)
ALTER TABLE link_versions ADD COLUMN IF NOT EXISTS content_sum HUGEINT;
-- the link rows written since the last version (`refresh_links`, a push's creates and writes); the next
-- `record_version` compares only these with the history, then empties it
CREATE TABLE IF NOT EXISTS links_touched (view VARCHAR NOT NULL, nsid VARCHAR NOT NULL);
"""


DEFAULT_MEMORY_LIMIT = Settings().duckdb_memory_limit  # TALK_DUCKDB_MEMORY_LIMIT overrides it
_READY: set[str] = set()  # state files whose schema this process has already created


def data_dir() -> Path:
    """Where the state lives: `TALK_DATA_DIR`, default `data/` in the working directory."""
    return settings().data_dir


def db_path() -> Path:
    return data_dir() / "talk.duckdb"


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def lock_holder(exc: Exception) -> str:
    """Who holds the file, from DuckDB's lock error ("Conflicting lock is held in <program> (PID n)")."""
    m = re.search(r"held in (\S+) \(PID (\d+)\)", str(exc))
    if m:
        return f"{m.group(1)} (PID {m.group(2)})"
    m = re.search(r"PID (\d+)", str(exc))
    return f"PID {m.group(1)}" if m else "another process"


class StateFileError(RuntimeError):
    """The state file exists but DuckDB cannot read it (truncated, overwritten, from another program)."""

    def __init__(self, path: Path, cause: Exception) -> None:
        self.path = path
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        super().__init__(
            f"The sync state file {path} cannot be read ({detail}). It holds only what the sync remembers "
            f"(links, pending creates, dead letters); the records themselves are safe in the systems. "
            f"`talk-assets state check` shows what is wrong; `talk-assets state rebuild` moves the file aside "
            f"(kept as {path.name}.broken-<time>) and the next cycle re-links every record from the systems "
            f"(customers and products by their keys, orders by the origin reference in each copy) before it "
            f"creates anything, so nothing is created twice."
        )

    @classmethod
    def reported(cls, path: Path, message: str) -> StateFileError:
        """The error again, from its message (a run step raised it; the runner raises it to the CLI)."""
        err = cls.__new__(cls)
        RuntimeError.__init__(err, message)
        err.path = path
        return err


def _is_unreadable(exc: Exception) -> bool:
    """DuckDB's errors for a file that is not (or no longer) a readable database."""
    text = str(exc)
    return any(s in text for s in ("not a valid DuckDB database file", "Could not read enough bytes",
                                   "Corrupt database file", "does not match stored checksum",
                                   "Failed to load metadata"))


_SHARED: ContextVar[tuple[str, duckdb.DuckDBPyConnection] | None] = ContextVar("talk_shared_connection", default=None)


@contextmanager
def session(path: Path | str | None = None) -> Iterator[None]:
    """Inside this block every `connect()` to the same file reuses one connection (one whole CLI
    cycle: opening and checkpointing a file costs ~20 ms, a cycle opens it ~80 times). The file
    stays locked for the block, so only a single process's short unit of work should use it."""
    target = Path(path) if path else db_path()
    with connect(target) as con:
        token = _SHARED.set((str(target.resolve()), con))
        try:
            yield
        finally:
            _SHARED.reset(token)


def _open(target: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting without a deadline while another process holds it (see the module doc)."""
    every = settings().lock_report_s
    waited_since = None
    next_report = 0.0
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(target), read_only=read_only and target.exists())
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                if target.exists() and _is_unreadable(exc):
                    raise StateFileError(target, exc) from None
                raise
            now = time.monotonic()
            if waited_since is None:
                waited_since = next_report = now
            if now >= next_report:
                log.warning("state file %s is held by another process; waiting: %s holds it (waited %.0f s; this "
                            "run goes on as soon as it is free)",
                            target, lock_holder(exc), now - waited_since)
                next_report = now + every
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@contextmanager
def connect(path: Path | str | None = None, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the state file, waiting (never failing) while another process holds it;
    `StateFileError` when the file is not readable."""
    target = Path(path) if path else db_path()
    shared = _SHARED.get()
    if shared is not None and shared[0] == str(target.resolve()):
        try:
            yield shared[1]
        except duckdb.Error as exc:  # a damaged block shows only when a statement reads it
            if _is_unreadable(exc) and not _is_lock_error(exc):
                raise StateFileError(target, exc) from exc
            raise
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    key = str(target.resolve())
    if not target.exists():
        _READY.discard(key)  # a lost file: its successor needs the schema again
        if not read_only:
            log.warning("no sync state at %s: starting a new one. The first cycle re-links every record from the "
                        "systems (customers and products by their keys, orders by their origin reference) "
                        "before it creates anything.", target)
    con = _open(target, read_only)
    try:
        # DuckDB's own default is 80 % of RAM; a sync that shares its machine gets a fixed budget and
        # spills to disk beyond it. Measured at 3M customers (benchmarks/README.md): merge and map take
        # 53 s within 2GB (2.1 GB peak) instead of 38 s with DuckDB's default (6.4 GB peak)
        s = settings()  # read once per connection: a cycle opens ~200
        con.execute("SET memory_limit = ?", [s.duckdb_memory_limit])
        if s.duckdb_threads > 0:  # processes that share the cores (the test suite's three)
            con.execute(f"SET threads = {s.duckdb_threads:d}")
        if not read_only and key not in _READY:
            con.execute(SCHEMA)
            _READY.add(key)
    except duckdb.Error as exc:
        con.close()
        if _is_unreadable(exc):
            raise StateFileError(target, exc) from None
        raise
    try:
        yield con
    except duckdb.Error as exc:  # a damaged block shows only when a statement reads it
        if _is_unreadable(exc) and not _is_lock_error(exc):
            raise StateFileError(target, exc) from exc
        raise
    finally:
        con.close()


@contextmanager
def rebuilding(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """For statements that rebuild derived tables (nodes, members, merged, mapped) every cycle.

    DuckDB's FSST string compression makes writing a table ~3x slower than the query that fills
    it (its analysis runs on every string column); a table that lives for one cycle is better
    written fast and a little larger. The stored records (`raw_*`) keep the default compression.
    """
    con.execute("SET disabled_compression_methods = 'fsst,dict_fsst'")
    try:
        yield con
    finally:
        con.execute("RESET disabled_compression_methods")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Statements that must land together or not at all (an incremental rebuild stopped half-way would
    leave tables that no later change makes whole again)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")



def replace_rows(con: duckdb.DuckDBPyConnection, target: str, rows: str, where: str, params: list[object] | None = None) -> None:
    """Replace `target`'s rows that match `where` by the rows of the temp table `rows` (then dropped), in one
    transaction. The way to change rows of a large table: never UPDATE or INSERT OR REPLACE, since DuckDB's
    checkpoint rewrites every updated column whole (one row's INSERT OR REPLACE in a 1.1M-row table of
    512-byte payloads: 0.87 s at the next checkpoint; a narrow column 0.07 s; a delete and insert 0.006 s)."""
    with transaction(con):
        con.execute(f"DELETE FROM {target} WHERE {where}", params or [])
        con.execute(f"INSERT INTO {target} SELECT * FROM {rows}")
    con.execute(f"DROP TABLE {rows}")

class Derived:
    """A derived table set (a type's merge, a view's mapping) rebuilt only when what it reads changed.

    `inputs` is a digest of everything the build reads (its SQL, the rows of its input tables, the
    digests of the builds it depends on); when the last build had the same digest and its tables
    still exist, the build is skipped and its result reused. A quiet cycle then costs the reads
    of the digests, not a rebuild of every table over all the data.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str, inputs: list[str], tables: list[str]) -> None:
        self.con, self.name, self.tables = con, name, tables
        self.inputs = hashlib.md5("\x1f".join(inputs).encode()).hexdigest()

    def reusable(self) -> dict | None:
        """The last build's result if its inputs were the same and its tables are all there."""
        row = first(self.con, "SELECT result FROM derived_state WHERE name = ? AND inputs = ?", [self.name, self.inputs])
        if row is None:
            return None
        return json.loads(row[0]) if set(self.tables) <= table_names(self.con) else None

    def built(self, result: dict) -> None:
        self.con.execute("INSERT OR REPLACE INTO derived_state VALUES (?, ?, ?, now())",
                         [self.name, self.inputs, json.dumps(result)])


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables (not views) of the state file's own schema."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = current_schema()"
    ).fetchall()}


@functools.cache
def code_digest() -> str:
    """What derived state is built from besides the data: the declaration's content (views, conversions'
    SQL, flows, global rules; `declaration.content_digest`) and the engine's SQL-generating code (merge,
    mapping). A changed declaration or a new release rebuilds; moving a view between files does not."""
    here = Path(__file__).parent
    code = b"".join((here / f).read_bytes() for f in ("merge.py", "mapping.py"))
    return hashlib.md5(content_digest().encode() + code).hexdigest()


def digest_of(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The input digest of a derived build (empty before its first build)."""
    row = first(con, "SELECT inputs FROM derived_state WHERE name = ?", [name])
    return row[0] if row else ""


def rows_digest(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> str:
    """Count and order-independent checksum of `sql`'s single column `h` (a hash per row)."""
    row = first(con, f"SELECT count(*) || ':' || coalesce(sum(h)::HUGEINT, 0) FROM ({sql})", params)
    return row[0]


def first(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    """The first row of a query, or None; reads the whole result so the connection is free again
    (DuckDB 2 keeps a half-read result open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None
