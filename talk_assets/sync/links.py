"""The link table: global id <-> (system, entity, record), the sync's memory, kept with its history.

Every materialization writes a new version when the content changed: `links` holds the current
rows, `links_history` every row with the versions it was valid in (`valid_from` <= v < `valid_to`),
and `link_versions` one row per version with its content hash, which is the asset's `DataVersion`.
`links_at()` answers "what was linked at version N / at time T".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from talk_assets.sync.declaration import DATAFLOWS, GLOBAL_TYPES, VIEWS_BY_KEY
from talk_assets.sync.merge import table
from talk_assets.sync.store import first, table_names

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


def update_links(con: duckdb.DuckDBPyConnection, now: datetime, run_id: str = "") -> LinkVersion:
    """Rebuild `links` from the merge's members and record a new version if anything changed."""
    modes = pd.DataFrame({"view": list(VIEWS_BY_KEY), "link_mode": [link_mode(k) for k in VIEWS_BY_KEY],
                          "system": [v.system for v in VIEWS_BY_KEY.values()],
                          "entity": [v.entity for v in VIEWS_BY_KEY.values()]})
    con.register("view_modes", modes)
    try:
        parts = []
        tables = table_names(con)
        for gtype in GLOBAL_TYPES:
            if f"members_{gtype}" in tables:
                parts.append(f"SELECT gid, '{gtype}' AS global_type, nsid, view, record_id FROM {table('members', gtype)}")
        if not parts:
            raise RuntimeError("no merged entities yet: materialize the merge assets first")
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE new_links AS
            SELECT m.gid, m.global_type, m.nsid, m.view, vm.system, vm.entity, m.record_id, vm.link_mode,
                   coalesce(o.origin, 'collected') AS origin,
                   coalesce(o.first_linked_at, ?::TIMESTAMPTZ) AS first_linked_at,
                   o.last_written_hash, o.last_written_at
            FROM ({' UNION ALL '.join(parts)}) m
            JOIN view_modes vm ON vm.view = m.view
            LEFT JOIN links o ON o.view = m.view AND o.nsid = m.nsid
            UNION ALL
            -- records the sync created that have not been collected back yet
            SELECT o.gid, o.global_type, o.nsid, o.view, o.system, o.entity, o.record_id, o.link_mode, o.origin,
                   o.first_linked_at, o.last_written_hash, o.last_written_at
            FROM links o WHERE o.origin = 'created'
              AND NOT EXISTS (SELECT 1 FROM ({' UNION ALL '.join(parts)}) m WHERE m.nsid = o.nsid AND m.view = o.view)
            """,
            [now],
        )
    finally:
        con.unregister("view_modes")
    cols = ", ".join(LINK_COLUMNS)
    digest = f"md5(concat_ws('|', {cols}))"
    data_version = first(con,
        f"SELECT substr(md5(coalesce(sum(hash({digest})::HUGEINT)::VARCHAR, 'empty')), 1, 24) || '-' || count(*) "
        "FROM new_links"
    )[0]
    last = first(con, "SELECT version, data_version FROM link_versions ORDER BY version DESC LIMIT 1")
    rows = first(con, "SELECT count(*) FROM new_links")[0]
    if last and last[1] == data_version:
        con.execute("DELETE FROM links")
        con.execute("INSERT INTO links SELECT * FROM new_links")
        return LinkVersion(last[0], data_version, rows, 0, 0, created=False)
    version = (last[0] + 1) if last else 1
    key = "view, nsid, gid, coalesce(origin, ''), coalesce(last_written_hash, ''), coalesce(link_mode, '')"
    removed = first(con,
        f"""
        UPDATE links_history SET valid_to = ?
        WHERE valid_to IS NULL AND ({key}) NOT IN (SELECT ({key}) FROM new_links)
        """,
        [version],
    )[0]
    added = first(con,
        f"""
        INSERT INTO links_history
        SELECT {cols}, ? AS valid_from, NULL AS valid_to FROM new_links
        WHERE ({key}) NOT IN (SELECT ({key}) FROM links_history WHERE valid_to IS NULL)
        """,
        [version],
    )[0]
    con.execute("DELETE FROM links")
    con.execute("INSERT INTO links SELECT * FROM new_links")
    con.execute(
        "INSERT INTO link_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
        [version, data_version, now, rows, added, removed, run_id],
    )
    return LinkVersion(version, data_version, int(rows), int(added), int(removed), created=True)


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
