"""The link table: global id <-> (system, entity, record), the sync's memory, kept with its history.

`links` holds the current rows: each merge step rewrites its type's rows (`refresh_links`) and each
push adds the records it created and the payloads it wrote. The `sync/links` step, last in a run,
records a new version when the content changed (`record_version`), so each version is exactly one
materialization of `sync/links` in Dagster (its Events tab is the table's history).
`links_history` holds every row with the versions it was valid in (`valid_from` <= v < `valid_to`),
and `link_versions` one row per version with its content hash, which is the asset's `DataVersion`.
`links_at()` answers "what was linked at version N / at time T".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from talk_assets.sync.declaration import DATAFLOWS, GLOBAL_TYPES, VIEWS_BY_KEY
from talk_assets.sync.merge import table
from talk_assets.sync.store import first, replace_rows, table_names

LINK_COLUMNS = ("gid", "global_type", "nsid", "view", "system", "entity", "record_id", "link_mode", "origin",
                "last_written_hash")


def link_mode(view_key: str) -> str:
    modes = [f.link_mode for f in DATAFLOWS if f.target.vkey == view_key or f.source.vkey == view_key]
    return modes[0] if modes else "merge-only"


@dataclass
class LinkVersion:
    version: int
    data_version: str
    rows: int
    added: int
    removed: int
    created: bool  # False when the content did not change (no new version)
    moved: int = 0  # records now linked to another global entity than in the version before
    written: int = 0  # records whose last written payload changed (the sync wrote to them)


def _view_modes() -> pd.DataFrame:
    return pd.DataFrame({"view": list(VIEWS_BY_KEY), "link_mode": [link_mode(k) for k in VIEWS_BY_KEY],
                         "system": [v.system for v in VIEWS_BY_KEY.values()],
                         "entity": [v.entity for v in VIEWS_BY_KEY.values()]})


def refresh_links(con: duckdb.DuckDBPyConnection, now: datetime, types: list[str] | None = None,
                  scope: str | None = None) -> int:
    """Rewrite the current `links` rows of `types` (default: every merged type) from the merge's members,
    keeping what the sync remembers of each (origin, first link, last written payload) and the records it
    created that were not collected back yet. Makes no version: `record_version` does, once per run.
    `scope`: a temp table of the nsids a merge redid (`merge.MergeResult.whole` False); only their rows."""
    tables = table_names(con)
    todo = [t for t in (types or list(GLOBAL_TYPES)) if f"members_{t}" in tables]
    if not todo:
        if types is None:
            raise RuntimeError("no merged entities yet: materialize the merge assets first")
        return 0
    con.register("view_modes", _view_modes())
    try:
        within = f"AND nsid IN (SELECT nsid FROM {scope})" if scope else ""
        for gtype in todo:
            members = f"SELECT gid, nsid, view, record_id FROM {table('members', gtype)} WHERE true {within}"
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE new_links AS
                SELECT m.gid, '{gtype}' AS global_type, m.nsid, m.view, vm.system, vm.entity, m.record_id,
                       vm.link_mode, coalesce(o.origin, 'collected') AS origin,
                       coalesce(o.first_linked_at, ?::TIMESTAMPTZ) AS first_linked_at,
                       o.last_written_hash, o.last_written_at
                FROM ({members}) m
                JOIN view_modes vm ON vm.view = m.view
                LEFT JOIN links o ON o.view = m.view AND o.nsid = m.nsid
                UNION ALL
                -- records the sync created that have not been collected back yet
                SELECT o.gid, o.global_type, o.nsid, o.view, o.system, o.entity, o.record_id, o.link_mode, o.origin,
                       o.first_linked_at, o.last_written_hash, o.last_written_at
                FROM links o WHERE o.global_type = '{gtype}' AND o.origin = 'created' {within.replace('nsid', 'o.nsid', 1)}
                  AND NOT EXISTS (SELECT 1 FROM ({members}) m WHERE m.nsid = o.nsid AND m.view = o.view)
                """,
                [now],
            )
            # only the rows that differ: a whole merge (orders, a full cycle) makes every link of its type
            # again, nearly all as they were; rewriting them all cost 3 s at 1M links and made the version
            # hash every one of them again (`record_version` reads the touched rows)
            current = f"SELECT * FROM links WHERE global_type = '{gtype}' {within}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE link_diff AS "
                        f"SELECT view, nsid FROM ({current} EXCEPT SELECT * FROM new_links) "
                        f"UNION SELECT view, nsid FROM (SELECT * FROM new_links EXCEPT {current})")
            con.execute("INSERT INTO links_touched SELECT view, nsid FROM link_diff")
            con.execute("DELETE FROM links USING link_diff d WHERE links.view = d.view AND links.nsid = d.nsid")
            con.execute("INSERT INTO links SELECT n.* FROM new_links n SEMI JOIN link_diff USING (view, nsid)")
        return len(todo)
    finally:
        con.unregister("view_modes")
        con.execute("DROP TABLE IF EXISTS new_links")
        con.execute("DROP TABLE IF EXISTS link_diff")


_KEY = "view, nsid, gid, coalesce(origin, ''), coalesce(last_written_hash, ''), coalesce(link_mode, '')"


def _data_version(content_sum: int | None, rows: int) -> str:
    """A version's content digest from its rows' hash sum and count (what `sync/links` reports as its
    DataVersion): the same string whether the sum was taken over every row or kept up by deltas."""
    text = "empty" if content_sum is None or rows == 0 else str(content_sum)
    return f"{hashlib.md5(text.encode()).hexdigest()[:24]}-{rows}"


_ROW_HASH = f"hash(md5(concat_ws('|', {', '.join(LINK_COLUMNS)})))"


def _content(con: duckdb.DuckDBPyConnection, rows_sql: str) -> tuple[int, int]:
    """(hash sum, count) of some link rows (`rows_sql` selects LINK_COLUMNS)."""
    total, n = first(con, f"SELECT coalesce(sum({_ROW_HASH})::HUGEINT, 0), count(*) FROM ({rows_sql})")
    return int(total), int(n)


def _whole_content(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(hash sum, count) of every row of `links`."""
    return _content(con, f"SELECT {', '.join(LINK_COLUMNS)} FROM links")


def whole_data_version(con: duckdb.DuckDBPyConnection) -> str:
    """The data version of `links` as it is, hashed row by row: what the last version must say when no
    row was written since (`links_touched` empty); the tests hold every cycle to it."""
    return _data_version(*_whole_content(con))


def record_version(con: duckdb.DuckDBPyConnection, now: datetime, run_id: str = "") -> LinkVersion:
    """Record the current `links` as a new version when its content differs from the last version's
    (a run that linked, unlinked, moved or wrote nothing makes none): the link table's history, which
    `links_at` reads and the `sync/links` asset reports as one materialization per version.

    The work is the rows written since the last version (`links_touched`), not the whole table: the
    version's checksum is the last one's minus the touched rows' old hashes plus their new ones (the
    whole-table path took 2.24 s at 1M links for 100 written, this one 0.16 s: `benchmarks/links.py`;
    reading the touched rows once made it 0.13 -> 0.07 s at 100k, and 0.26 -> 0.17 s at 1M on one thread).
    The whole table is hashed when there is
    no checksum to start from (the first version, a state file older than it) or when the row count
    says a row changed without being noted (a write outside refresh_links and the pushes)."""
    cols = ", ".join(LINK_COLUMNS)
    last = first(con, "SELECT version, data_version, content_sum, row_count FROM link_versions "
                      "ORDER BY version DESC LIMIT 1")
    con.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT view, nsid FROM links_touched")
    try:
        rows = int(first(con, "SELECT count(*) FROM links")[0])
        incremental = last is not None and last[2] is not None
        # the touched records' rows as they are and as the last version has them: read once into small tables
        # on the incremental path (a read of the whole table is ~45 ms at 1M links on one thread, and the
        # version took six), every row on the whole path
        now_rows, last_rows = "touched_now", "touched_last"
        if incremental:
            con.execute(f"CREATE OR REPLACE TEMP TABLE touched_now AS SELECT {cols} FROM links "
                        "SEMI JOIN touched USING (view, nsid)")
            con.execute(f"CREATE OR REPLACE TEMP TABLE touched_last AS SELECT {cols} FROM links_history "
                        "SEMI JOIN touched USING (view, nsid) WHERE valid_to IS NULL")
            new_sum, new_n = _content(con, f"SELECT * FROM {now_rows}")
            old_sum, old_n = _content(con, f"SELECT * FROM {last_rows}")
            content_sum = int(last[2]) - old_sum + new_sum
            incremental = int(last[3]) - old_n + new_n == rows
        if not incremental:  # every row is compared with the history below
            con.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT view, nsid FROM links UNION "
                        "SELECT view, nsid FROM links_history WHERE valid_to IS NULL")
            now_rows = f"(SELECT {cols} FROM links)"
            last_rows = f"(SELECT {cols} FROM links_history WHERE valid_to IS NULL)"
            content_sum, _ = _whole_content(con)
        data_version = _data_version(content_sum, rows)
        if last and last[1] == data_version:
            con.execute("DELETE FROM links_touched")
            return LinkVersion(last[0], data_version, rows, 0, 0, created=False)
        version = (last[0] + 1) if last else 1
        # what changed, per record (view, nsid): linked for the first time, gone, linked to another
        # entity, or written to (a new last written payload) since the version before
        added, removed, moved, written = first(con,
            f"""
            SELECT count(*) FILTER (WHERE old.nsid IS NULL), count(*) FILTER (WHERE cur.nsid IS NULL),
                   count(*) FILTER (WHERE cur.gid <> old.gid),
                   count(*) FILTER (WHERE cur.gid = old.gid AND cur.last_written_hash IS DISTINCT FROM old.last_written_hash)
            FROM {now_rows} cur FULL JOIN {last_rows} old ON cur.view = old.view AND cur.nsid = old.nsid
            """)
        # the rows this version ends get their `valid_to` (`replace_rows`: not an UPDATE of the history)
        closing = (f"valid_to IS NULL AND (view, nsid) IN (SELECT (view, nsid) FROM touched) "
                   f"AND ({_KEY}) NOT IN (SELECT ({_KEY}) FROM {now_rows})")
        con.execute(f"CREATE OR REPLACE TEMP TABLE history_closed AS SELECT * REPLACE (?::INTEGER AS valid_to) "
                    f"FROM links_history WHERE {closing}", [version])
        replace_rows(con, "links_history", "history_closed", closing)
        # a record whose row is unchanged keeps its current history row (not closed above: its key is in
        # both), so what is new is a row whose key the last version did not have
        con.execute(
            f"""
            INSERT INTO links_history
            SELECT {cols}, ? AS valid_from, NULL AS valid_to FROM {now_rows}
            WHERE ({_KEY}) NOT IN (SELECT ({_KEY}) FROM {last_rows})
            """,
            [version],
        )
        con.execute(
            "INSERT INTO link_versions (version, data_version, created_at, row_count, added, removed, run_id, "
            "content_sum) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [version, data_version, now, rows, added, removed, run_id, content_sum],
        )
        con.execute("DELETE FROM links_touched")
        return LinkVersion(version, data_version, rows, int(added), int(removed), created=True,
                           moved=int(moved), written=int(written))
    finally:
        for name in ("touched", "touched_now", "touched_last", "history_closed"):
            con.execute(f"DROP TABLE IF EXISTS {name}")


def update_links(con: duckdb.DuckDBPyConnection, now: datetime, run_id: str = "") -> LinkVersion:
    """Rebuild `links` from the merge's members and record a new version if anything changed."""
    refresh_links(con, now)
    return record_version(con, now, run_id)


def version_changes(con: duckdb.DuckDBPyConnection, version: int, limit: int = 20) -> pd.DataFrame:
    """The records whose link changed in `version`: added, removed, moved (to another global entity)
    or written (the sync wrote a new payload to the record), with the global id before and after."""
    return con.execute(
        f"""
        WITH new AS (SELECT * FROM links_history WHERE valid_from = ?),
             gone AS (SELECT * FROM links_history WHERE valid_to = ?)
        SELECT CASE WHEN g.nsid IS NULL THEN 'added' WHEN n.nsid IS NULL THEN 'removed'
                    WHEN n.gid <> g.gid THEN 'moved' ELSE 'written' END AS change,
               coalesce(n.view, g.view) AS view, coalesce(n.record_id, g.record_id) AS record_id,
               g.gid AS gid_before, n.gid AS gid_after
        FROM new n FULL JOIN gone g ON n.view = g.view AND n.nsid = g.nsid
        ORDER BY CASE change WHEN 'moved' THEN 0 WHEN 'added' THEN 1 WHEN 'removed' THEN 2 ELSE 3 END, view, record_id
        LIMIT {int(limit)}
        """,
        [version, version],
    ).df()


def resolve_version(con: duckdb.DuckDBPyConnection, at: str | None) -> int | None:
    """A version number from a version number, a data version (or its prefix), or a time."""
    if at is None:
        row = first(con, "SELECT max(version) FROM link_versions")
        return row[0]
    if at.isdigit():
        row = first(con, "SELECT version FROM link_versions WHERE version = ?", [int(at)])
        if row:
            return row[0]
    row = first(con,
        "SELECT version FROM link_versions WHERE data_version LIKE ? || '%' ORDER BY version DESC LIMIT 1", [at]
    )
    if row:
        return row[0]
    try:
        when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    row = first(con,
        "SELECT max(version) FROM link_versions WHERE created_at <= ?::TIMESTAMPTZ", [when]
    )
    return row[0]


def links_at(con: duckdb.DuckDBPyConnection, version: int) -> pd.DataFrame:
    return con.execute(
        f"""
        SELECT {', '.join(LINK_COLUMNS)} FROM links_history
        WHERE valid_from <= ? AND (valid_to IS NULL OR valid_to > ?) ORDER BY global_type, gid, view, nsid
        """,
        [version, version],
    ).df()
