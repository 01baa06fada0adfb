"""The DuckDB file that holds the sync state, opened by short-lived connections.

DuckDB allows one writing process per file, and a second process cannot open it while the first
holds it. Run steps are the only openers (sensors and the webserver never open it), and each
connection is held only for one step's SQL; when another process holds the file anyway, `connect`
waits and retries instead of failing, so the lock never surfaces to a user as an error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
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
CREATE TABLE IF NOT EXISTS push_log (
    run_id VARCHAR, view VARCHAR, logged_at TIMESTAMPTZ, created INTEGER, updated INTEGER, conflicts INTEGER,
    failed INTEGER, skipped INTEGER, pending INTEGER
);
CREATE TABLE IF NOT EXISTS derived_state (
    name VARCHAR PRIMARY KEY, inputs VARCHAR NOT NULL, result VARCHAR, built_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS link_versions (
    version INTEGER PRIMARY KEY, data_version VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,
    row_count BIGINT, added BIGINT, removed BIGINT, run_id VARCHAR
);
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


@contextmanager
def connect(path: Path | str | None = None, *, read_only: bool = False, wait_s: float = 300.0) -> Iterator[
    duckdb.DuckDBPyConnection
]:
    """A short-lived connection to the state file, waiting (not failing) while another process holds it."""
    target = Path(path) if path else db_path()
    shared = _SHARED.get()
    if shared is not None and shared[0] == str(target.resolve()):
        yield shared[1]
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(target), read_only=read_only and target.exists())
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
            log.info("state file %s is held by another process; waiting %.2fs", target, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    # DuckDB's own default is 80 % of RAM; a sync that shares its machine gets a fixed budget and
    # spills to disk beyond it. Measured at 3M customers (benchmarks/README.md): merge and map take
    # 53 s within 2GB (2.1 GB peak) instead of 38 s with DuckDB's default (6.4 GB peak)
    con.execute("SET memory_limit = ?", [settings().duckdb_memory_limit])
    try:
        key = str(target.resolve())
        if not read_only and key not in _READY:
            con.execute(SCHEMA)
            _READY.add(key)
        yield con
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
