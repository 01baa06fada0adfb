"""Connect: normalise every view into global properties and merge records into global entities.

All set work is SQL generated from the declaration:

1. `nodes_<type>`: one row per record of every view of the type (flattened variants become
   rows), its global properties in canonical text, and per property the time its current value
   appeared (found by walking the record's stored versions), so "latest change wins" is decided
   per property, not per record. `norm_<view>` is a view over it with that view's columns. One
   table is written, not one per view plus their union: writing a table costs more than reading it.
   The same reads check each batch at collect first (`unconvertible_sql`): a value they would turn
   into an empty one (a price of "tolv kroner") rejects its record by name.
2. Components: records sharing a merge-key value (e-mail, organisation number, SKU, GTIN...) or
   an existing link are one entity, transitively (label propagation until nothing changes).
   Unsafe keys never connect anything: an e-mail carried by two records of one view (a shared
   mailbox), a generic mailbox (post@, info@...) on a person, an empty SKU. A derived key
   (`MATCH_KEYS`, `matches_<type>`: an order's customer entity, lines and day) then joins the
   components found so far that are not linked yet, only when no view has records in two of them;
   an ambiguous one holds the create instead (`match_candidates_<type>`).
3. `merged_<type>`: per global entity and property, the latest non-empty value wins; its
   provenance (record, system, time) is kept beside it. An empty value never overwrites. A value a
   view derives from a field it writes from other properties (the CRM's first and last name, split
   from the `name` it is written as) takes part only when that field was really edited (`Composed`).
4. `members_<type>`: global id <-> record, the rows the link table is made of. References (an
   order's customer) stay namespaced record ids in `nodes_<type>` and become global ids in
   `merged_<type>`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import duckdb

from talk_assets.sync.declaration import (
    GENERIC_MAILBOXES,
    GLOBAL_TYPES,
    MATCH_KEYS,
    MERGE_KEYS,
    REFERENCES,
    View,
    source_of,
    views_of_type,
)
from talk_assets.sync.model import fill_write, record_field, write_uses
from talk_assets.sync.store import (
    Derived,
    code_digest,
    first,
    rebuilding,
    rows_digest,
    table_names,
    transaction,
)

MAX_ITERATIONS = 50
_EPOCH_SHIFT = 62135596800000000  # microseconds from 0001-01-01 to 1970: keys stay non-negative


def ident(name: str) -> str:
    """A table or column name from the declaration, quoted."""
    return '"' + name.replace('"', '""') + '"'


def table(prefix: str, key: str) -> str:
    return ident(f"{prefix}_{key.replace('.', '_')}")


def json_path(field: str) -> str:
    return "$." + field


@dataclass(frozen=True)
class Composed:
    """A field the view writes from other properties (the CRM's one `name` from first and last name).

    Its value is a "whole"; the properties the view reads from the same field are "derived" parts (the
    CRM's first and last name, split from `name`). A derived value never beats the parts it was made
    from: while the whole still equals what the view's write would make of the global values, the
    parts come from the other records; only a real edit of the whole lets its split take part in the
    merge (latest change wins, as any value)."""

    field: str
    prop: str  # the global property whose write makes the field
    write: str  # that write template ({g}, {g.<prop>})
    parts: tuple[str, ...]  # global properties the view reads from this field (derived), maybe none


def composed_fields(view: View) -> list[Composed]:
    """The view's fields written from other global properties than their own (see `Composed`)."""
    out: list[Composed] = []
    for w in view.props:
        if w.write is None or any(c.field == w.field for c in out):
            continue
        if not set(write_uses(w.write)) - {w.prop}:
            continue
        # the parts: what the view reads from the field besides the written property, and the written
        # property itself when its conversion says the read cannot undo the write (`Conversion.composed`)
        parts = tuple(p.prop for p in view.props
                      if p.field == w.field and (p.prop != w.prop or p.conversion.composed) and p.read is not None
                      and view.reader(p.prop) is p)
        out.append(Composed(w.field, w.prop, w.write, parts))
    return out


def canonical_whole(expr: str) -> str:
    """A whole compared with what the write would make of it: leading and trailing whitespace of any
    kind (spaces, tabs, newlines) is no difference, everything inside is."""
    return f"nullif(regexp_replace(({expr})::VARCHAR, '^\\s+|\\s+$', '', 'g'), '')"


@dataclass
class _Plan:
    paths: list[str]  # every path the reads need, extracted at once into the list `x`
    reads: dict[str, str]  # global property -> its read, an expression over `x` (and `r`)
    values: dict[str, str]  # global property -> the field's value as read (`x[i]`), for reads of `{v}`
    where: str  # the view's `where` condition over `x`, or ""
    needs_r: bool  # whether a conversion still needs the whole record `r`


def _extract_plan(view: View, props: list[str] | None = None) -> _Plan:
    """The view's reads (of `props`, default all) over one parse of each record.

    `r->>'$.a'` parses the JSON document again for every property; instead every path the view
    reads (its fields and the record fields its conversions and `where` declare) is extracted
    at once into the list `x` with `json_extract_string(r, [paths])`.
    """
    paths: list[str] = []

    def at(field: str) -> str:
        if field not in paths:
            paths.append(field)
        return f"x[{paths.index(field) + 1}]"

    def over_x(template: str, fields: tuple[str, ...]) -> str:
        for f in fields:  # the record fields it looks up, as declared (in order of appearance)
            template = template.replace(record_field(f), at(f))
        return template

    at(view.id_field)
    reads: dict[str, str] = {}
    values: dict[str, str] = {}
    needs_r = False
    for p in view.read_props if props is None else props:
        reader = view.reader(p)
        assert reader is not None and reader.read is not None
        template = over_x(reader.read, reader.conversion.record_fields)
        if "{v}" in template:
            values[p] = at(reader.field)
            template = template.replace("{v}", values[p])
        needs_r = needs_r or "{r}" in template
        reads[p] = "(" + template.replace("{r}", "r") + ")"
    where = ""
    if view.where:
        where = over_x(view.where, view.where_fields)
        needs_r = needs_r or "{r}" in where
        where = where.replace("{r}", "r")
    return _Plan(paths, reads, values, where, needs_r)


def _record_rows(view: View, src: str, payload: str) -> str:
    """`r AS ... FROM src`: one row `r` per record of the view, from the JSON column `payload` of
    `src`; a flattened view's array items become rows (the item merged into its record)."""
    if view.flatten:
        return (f"json_merge_patch({payload}, json_object('{view.flatten}', u.item)) AS r "
                f"FROM {src}, unnest(json_extract({payload}, '$.{view.flatten}[*]')) AS u(item)")
    return f"{payload} AS r FROM {src}"


def _extract_sql(plan: _Plan, cols: str, rows: str, within: str = "") -> str:
    """`x` for every row of `rows`; `within`: `r` is one item of that array (the paths are the item's)."""
    path_list = "[" + ", ".join(f"'{json_path(f.removeprefix(within))}'" for f in plan.paths) + "]"
    return f"SELECT {cols}, {'r, ' if plan.needs_r else ''}json_extract_string(r, {path_list}) AS x FROM {rows}"


def unconvertible_sql(view: View, batch: str) -> str | None:
    """SQL listing the bad values of a batch of records (`batch`: a table of `record_id`, `payload`
    JSON) for `view`: (record_id, field, value, problem) for every non-empty value of a field whose
    read converts it (`Prop.converts_to`: numbers, dates) but gets nothing, the value `norm_<view>`
    would otherwise read as empty. The reads are the very ones `norm_select` uses. In a flattened view
    the record is the parent (a product, for a variant's price). None when the view converts nothing.
    """
    props = [p for p in view.read_props if (r := view.reader(p)) is not None and r.converts_to and "{v}" in (r.read or "")]
    if not props:
        return None
    plan = _extract_plan(view, props)
    item = f"{view.flatten}." if view.flatten else ""
    if item and not plan.needs_r and all(f.startswith(item) for f in plan.paths):
        # only the items' own fields are read: the items alone, without merging each into its record
        rows = f"SELECT record_id, u.item AS r FROM {batch}, unnest(json_extract(payload, '$.{view.flatten}[*]')) AS u(item)"
    else:
        rows, item = "SELECT record_id, " + _record_rows(view, batch, "payload"), ""
    extracted = _extract_sql(plan, "record_id", f"({rows})", item) + (f" WHERE ({plan.where})" if plan.where else "")
    checks = []
    for p in props:
        reader = view.reader(p)
        assert reader is not None and reader.converts_to
        value = plan.values[p]
        loose = "DOUBLE" if reader.expects == "a number" else reader.converts_to  # a number, if not in range
        checks.append(
            f"SELECT record_id, '{reader.field}' AS field, {value} AS value, "
            f"CASE WHEN TRY_CAST({value} AS {loose}) IS NULL THEN 'is not {reader.expects}' "
            f"ELSE 'is out of range' END AS problem FROM checked "
            # a read may also be empty on purpose (a price in another currency: `price_incl_vat`);
            # only a value that does not convert to the declared type is bad input
            f"WHERE nullif(trim({value}), '') IS NOT NULL AND {plan.reads[p]} IS NULL "
            f"AND TRY_CAST({value} AS {reader.converts_to}) IS NULL"
        )
    return f"WITH checked AS MATERIALIZED ({extracted}) " + " UNION ALL ".join(checks)


def norm_select(view: View, only: str | None = None) -> str:
    """SQL selecting the view's `nodes_<type>` rows from the stored versions of its API entity
    (`only`: a table whose `parent_id` column lists the records to select, all when None).

    Most records have one stored version: their values are that version's and each property
    appeared when the version did (if not empty). Only records with several versions take the
    window walk (`lag` per property, ordered by change and collect time) that finds when each
    current value appeared; the results are the same, the window is just not paid for everyone.
    """
    src = source_of(view)
    props = view.read_props
    rows = ("SELECT rv.record_id AS parent_id, rv.changed_at AS ts, rv.collected_at, "
            + _record_rows(view, "raw_versions rv", "rv.payload"))
    rows += (
        f" SEMI JOIN raw_current cur ON cur.system = rv.system AND cur.entity = rv.entity AND cur.record_id = rv.record_id "
        f"AND NOT cur.deleted WHERE rv.system = '{src.system}' AND rv.entity = '{src.entity}'"
        + (f" AND rv.record_id IN (SELECT parent_id FROM {only})" if only else "")
    )
    plan = _extract_plan(view)
    # the composed fields' own values (`wholes`, JSON text), compared with what the write would make
    wholes = "NULL::VARCHAR"
    if composed := composed_fields(view):
        for c in composed:
            if c.field not in plan.paths:
                plan.paths.append(c.field)
        wholes = ("json_object(" + ", ".join(f"'{c.field}', x[{plan.paths.index(c.field) + 1}]" for c in composed)
                  + ")::VARCHAR")
    cols = ", ".join(ident(p) for p in props) + ", wholes"
    extracted = _extract_sql(plan, "parent_id, ts, collected_at", "rows")
    vals = (
        f"SELECT '{view.namespace}:' || x[1] AS nsid, parent_id, ts, collected_at, "
        + ", ".join(f"{plan.reads[p]} AS {ident(p)}" for p in props)
        + f", {wholes} AS wholes FROM ({extracted}) {'WHERE (' + plan.where + ')' if plan.where else ''}"
    )
    single = ", ".join(f"{ident(p)}, CASE WHEN {ident(p)} IS NOT NULL THEN ts END AS {ident(p + '__ts')}" for p in props)
    single += ", wholes"
    marks = ", ".join(
        f"CASE WHEN {ident(p)} IS DISTINCT FROM lag({ident(p)}) OVER w THEN ts END AS {ident(p + '__ts')}" for p in props
    )
    # the current version's value, also when it is empty (`arg_max` would skip it and keep an older
    # value: a field emptied in one system would look filled there and never be re-filled)
    finals = ", ".join(
        f"arg_max_null({ident(p)}, struct_pack(t := ts, c := collected_at)) AS {ident(p)}, "
        f"max({ident(p + '__ts')}) AS {ident(p + '__ts')}"
        for p in props
    ) + ", arg_max_null(wholes, struct_pack(t := ts, c := collected_at)) AS wholes"
    return f"""
    WITH rows AS ({rows}),
    vals AS MATERIALIZED ({vals}),
    multi AS (SELECT nsid FROM vals WHERE nsid IS NOT NULL GROUP BY nsid HAVING count(*) > 1),
    marked AS (
        SELECT nsid, parent_id, ts, collected_at, {cols}, {marks}
        FROM vals SEMI JOIN multi USING (nsid) WINDOW w AS (PARTITION BY nsid ORDER BY ts, collected_at)
    )
    SELECT nsid, '{view.vkey}' AS view, parent_id, split_part(nsid, ':', 2) AS record_id, ts AS changed_at, {single}
    FROM vals ANTI JOIN multi USING (nsid) WHERE nsid IS NOT NULL
    UNION ALL
    SELECT nsid, '{view.vkey}' AS view, any_value(parent_id) AS parent_id,
           split_part(nsid, ':', 2) AS record_id, max(ts) AS changed_at, {finals}
    FROM marked GROUP BY nsid
    """


def _key_value(key: str) -> str:
    return f"upper({ident(key)})" if key == "sku" else ident(key)


def _key_edges_sql(gtype: str, views: list[View], only: str | None = None) -> str:
    """(nsid, key) pairs: every safe merge-key value of every record of this type; `only`: a table (nsid)
    of the records whose pairs are wanted. A record's pairs depend on its own values, its links and, for
    an e-mail, on whether another record of its view has the same one (counted over the whole view)."""
    parts = []
    generic = ", ".join(f"'{m}'" for m in GENERIC_MAILBOXES)
    mine = f" AND nsid IN (SELECT nsid FROM {only})" if only else ""
    for v in views:
        for key in MERGE_KEYS[gtype]:
            if key not in v.read_props:
                continue
            t = table("norm", v.vkey)
            cond = f"{ident(key)} IS NOT NULL AND trim({ident(key)}) <> ''"
            if key == "email":
                person = "coalesce(is_person, 'true') = 'true'" if "is_person" in v.read_props else (
                    "organization_name IS NULL" if "organization_name" in v.read_props else "true")
                counted = (f" AND email IN (SELECT email FROM {t} WHERE email IS NOT NULL AND nsid IN (SELECT nsid FROM {only}))"
                           if only else "")
                cond += (
                    f" AND NOT (split_part(email, '@', 1) IN ({generic}) AND {person})"
                    f" AND email NOT IN (SELECT email FROM {t} WHERE email IS NOT NULL{counted} GROUP BY email HAVING count(*) > 1)"
                )
            parts.append(f"SELECT nsid, '{key}=' || {_key_value(key)} AS k FROM {t} WHERE {cond}{mine}")
    parts.append(f"SELECT nsid, 'link=' || gid AS k FROM links WHERE global_type = '{gtype}'{mine}")
    if fingerprinted := _fingerprinted(gtype, views):
        # a create whose answer was lost, in a view we write no merge key to: the new record is
        # recognised by its fingerprint (orders by their lines)
        in_views = ", ".join(f"'{v.vkey}'" for v in fingerprinted)
        parts.append(
            f"""SELECT n.nsid, 'link=' || i.gid AS k FROM push_intents i JOIN {table('nodes', gtype)} n ON n.view = i.view
                WHERE n.view IN ({in_views}) AND i.status IN ('unknown', 'sending')
                  AND n.changed_at >= i.started_at - INTERVAL 1 MINUTE
                  AND n.lines = (i.fingerprint::JSON->>'$.lines')
                  AND n.nsid NOT IN (SELECT nsid FROM links){f" AND n.nsid IN (SELECT nsid FROM {only})" if only else ""}"""
        )
    return " UNION ".join(parts)


def _key_holders_sql(gtype: str, views: list[View], keys: str) -> str:
    """The records of this type holding a value of `keys` (a table of `k` as `_key_edges_sql` writes them),
    safe there or not; a superset of the records with such an edge."""
    parts = []
    for v in views:
        for key in MERGE_KEYS[gtype]:
            if key in v.read_props:
                parts.append(f"SELECT nsid FROM {table('norm', v.vkey)} WHERE {_key_value(key)} IN "
                             f"(SELECT substr(k, {len(key) + 2}) FROM {keys} WHERE starts_with(k, '{key}='))")
    parts.append(f"SELECT nsid FROM links WHERE global_type = '{gtype}' AND gid IN "
                 f"(SELECT substr(k, 6) FROM {keys} WHERE starts_with(k, 'link='))")
    return " UNION ".join(parts)


def _fingerprinted(gtype: str, views: list[View]) -> list[View]:
    """Views of a type with lines that the sync writes no merge key to (an order target without a field for
    the origin's reference): a create of theirs whose answer was lost is recognised by its lines."""
    if "lines" not in GLOBAL_TYPES[gtype]:
        return []
    return [v for v in views if not any(p.prop in MERGE_KEYS[gtype] and p.write is not None for p in v.props)]


@dataclass
class MergeResult:
    global_type: str
    records: int
    entities: int
    merged_groups: int
    iterations: int
    reused: bool = False  # nothing it reads changed since the last merge: its tables were kept
    # records whose entity was merged again: all of them (`whole`), or those of the entities the changed
    # records were or are now part of (`_merge_delta`; their ids in the temp tables `merge_scope`/`merge_gids`)
    rebuilt: int = 0
    whole: bool = True
    # a whole merge that found which entities differ from the last build's (`_whole_changes`; their ids
    # in `merge_gids`): logged entity by entity, so the mappings after it stay incremental
    logged: bool = False
    # what the merge read (`merge_inputs`), for `links_refreshed`; not part of the stored result
    inputs: list[str] = field(default_factory=list)

    @property
    def gids(self) -> str | None:
        """The temp table (`merge_gids`) of the entities this merge redid or found changed, before and
        after; None when it could not tell (a first build, changed code: every entity may differ)."""
        return None if self.whole and not self.logged else "merge_gids"


def _drop_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop `name` if it is a table (state files from before `norm_<view>` became a view)."""
    if name in table_names(con):
        con.execute(f"DROP TABLE {ident(name)}")


def _nodes(con: duckdb.DuckDBPyConnection, gtype: str, views: list[View]) -> bool:
    """Bring `nodes_<type>` (every view's records, view by view) up to date, and a `norm_<view>` view per view;
    True when it was built whole. The nsids of the rows it removed or wrote are left in the temp table
    `merge_touched` (what the incremental merge starts from).

    A record's rows depend only on its own stored versions and on what the sync last wrote to it
    (`_echo_select`), so only the records whose input changed since the last build are derived again
    (`_node_inputs`); the rest are kept as they are. The table equals a full rebuild (the merge's
    equivalence test); a changed declaration or engine (`code_digest`), or a state file without the
    table, rebuilds all of it. One table is written, not one per view plus their union."""
    props = list(GLOBAL_TYPES[gtype])
    nodes, seen = table("nodes", gtype), table("nodes_seen", gtype)
    built = first(con, "SELECT value FROM cycle_state WHERE name = ?", [f"nodes:{gtype}"])
    full = built is None or built[0] != code_digest() or not {nodes[1:-1], seen[1:-1]} <= table_names(con)
    if full:
        cols = ", ".join(f"{ident(p)} VARCHAR, {ident(p + '__ts')} TIMESTAMPTZ, {ident(p + '__origin')} VARCHAR"
                         for p in props)
        con.execute(f"CREATE OR REPLACE TABLE {nodes} (nsid VARCHAR, view VARCHAR, record_id VARCHAR, parent_id VARCHAR, "
                    f"changed_at TIMESTAMPTZ, {cols}, wholes VARCHAR)")
        con.execute(f"CREATE OR REPLACE TABLE {seen} (view VARCHAR, parent_id VARCHAR, h UBIGINT)")
    con.execute("CREATE OR REPLACE TEMP TABLE merge_touched (nsid VARCHAR)")
    # the e-mails the rows derived again held before (`_merge_delta`: whether two records of a view share one)
    con.execute("CREATE OR REPLACE TEMP TABLE merge_touched_emails (view VARCHAR, email VARCHAR)")
    emails = "email" in MERGE_KEYS[gtype]
    writes = "push_writes" in table_names(con)  # once: the catalog lookup costs a few ms per call
    for v in views:
        _node_inputs(con, gtype, v, writes)
        con.execute(f"CREATE OR REPLACE TEMP TABLE node_dirty AS SELECT parent_id FROM node_inputs i "
                    f"ANTI JOIN {seen} s ON s.view = '{v.vkey}' AND s.parent_id = i.parent_id AND s.h = i.h "
                    f"UNION SELECT parent_id FROM {seen} s WHERE s.view = '{v.vkey}' "
                    f"AND parent_id NOT IN (SELECT parent_id FROM node_inputs)")
        if first(con, "SELECT count(*) FROM node_dirty")[0]:  # the query costs even when it selects nothing
            dirty_rows = f"SELECT nsid FROM {nodes} WHERE view = '{v.vkey}' AND parent_id IN (SELECT parent_id FROM node_dirty)"
            if not full:
                con.execute(f"INSERT INTO merge_touched {dirty_rows}")
                if emails:
                    con.execute(f"INSERT INTO merge_touched_emails SELECT view, email FROM {nodes} WHERE view = '{v.vkey}' "
                                "AND email IS NOT NULL AND parent_id IN (SELECT parent_id FROM node_dirty)")
                con.execute(f"DELETE FROM {nodes} WHERE view = '{v.vkey}' AND parent_id IN (SELECT parent_id FROM node_dirty)")
                con.execute(f"DELETE FROM {seen} WHERE view = '{v.vkey}' AND parent_id IN (SELECT parent_id FROM node_dirty)")
            con.execute(f"INSERT INTO {nodes} BY NAME {_echo_select(con, v, 'node_dirty')}")
            if not full:
                con.execute(f"INSERT INTO merge_touched {dirty_rows}")
            _node_inputs(con, gtype, v, writes)  # again: the writes to a new record's rows are found by its rows' nsids
            con.execute(f"INSERT INTO {seen} SELECT '{v.vkey}', parent_id, h FROM node_inputs "
                        f"WHERE parent_id IN (SELECT parent_id FROM node_dirty)")
        norm = f"norm_{v.vkey.replace('.', '_')}"
        _drop_table(con, norm)
        own = ", ".join(f"{ident(p)}, {ident(p + '__ts')}" for p in v.read_props)
        con.execute(f"CREATE OR REPLACE VIEW {ident(norm)} AS SELECT nsid, view, parent_id, record_id, changed_at, {own}, wholes "
                    f"FROM {nodes} WHERE view = '{v.vkey}'")
    con.execute("DROP TABLE IF EXISTS node_inputs")
    con.execute("DROP TABLE IF EXISTS node_dirty")
    con.execute("INSERT OR REPLACE INTO cycle_state VALUES (?, ?, now())", [f"nodes:{gtype}", code_digest()])
    return full


def _node_inputs(con: duckdb.DuckDBPyConnection, gtype: str, view: View, with_writes: bool) -> None:
    """Temp table `node_inputs` (parent_id, h): per stored record of the view's entity, a hash of what its
    `nodes_<type>` rows are derived from: its current version (a new version also moves `collected_at`,
    so a value that changes and changes back is seen) and what the sync last wrote to the rows it made
    (`push_writes`, by the nsids of those rows, so taken again once a new record's rows exist;
    `with_writes`: the state file has that table)."""
    src = source_of(view)
    writes = ""
    if with_writes:
        writes = (f"LEFT JOIN (SELECT n.parent_id, sum(hash(w.nsid, w.prop, w.value, w.origin_nsid, w.origin_at))::HUGEINT AS w "
                  f"FROM push_writes w JOIN {table('nodes', gtype)} n ON n.nsid = w.nsid AND n.view = w.view "
                  f"WHERE w.view = '{view.vkey}' GROUP BY n.parent_id) pw ON pw.parent_id = c.record_id")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE node_inputs AS SELECT c.record_id AS parent_id, "
        f"hash(c.hash, c.deleted, c.changed_at, c.collected_at, {'pw.w' if writes else 'NULL'}) AS h FROM raw_current c {writes} "
        f"WHERE c.system = '{src.system}' AND c.entity = '{src.entity}'")


def _echo_select(con: duckdb.DuckDBPyConnection, view: View, only: str | None = None) -> str:
    """`norm_select(view)` with echoes credited to the edit they carry, not to the write.

    A value collected from a record that equals what the sync last wrote there (`push_writes`, kept by
    push.py) is an echo: its change time becomes the origin's edit time and `<prop>__origin` names the
    origin's record. So latest-wins compares edits, not writes: an edit made in a third system while the
    sync was writing an older value elsewhere beats that older value's echo (whose target clock says
    later). A value that differs from what was written is the record's own edit. (Known limit: a person
    who types the very value the sync wrote is read as the echo; the value is the same either way.)
    One join with the view's written records, in the same statement that writes its nodes (an UPDATE of
    `nodes_<type>` afterwards cost more than the merge itself); nothing to do before the first push."""
    props = [p for p in view.read_props if p not in REFERENCES]
    if not props or "push_writes" not in table_names(con) or not first(
            con, "SELECT count(*) FROM push_writes WHERE view = ?", [view.vkey])[0]:
        return norm_select(view, only)
    pivot = ", ".join(
        f"max(value) FILTER (WHERE prop = '{p}') AS {ident(p + '__v')}, "
        f"max(origin_nsid) FILTER (WHERE prop = '{p}') AS {ident(p + '__o')}, "
        f"max(origin_at) FILTER (WHERE prop = '{p}') AS {ident(p + '__a')}"
        for p in props
    )
    times = ", ".join(f"CASE WHEN s.{ident(p)} = w.{ident(p + '__v')} THEN w.{ident(p + '__a')} "
                      f"ELSE s.{ident(p + '__ts')} END AS {ident(p + '__ts')}" for p in props)
    origins = ", ".join(f"CASE WHEN s.{ident(p)} = w.{ident(p + '__v')} THEN w.{ident(p + '__o')} END "
                        f"AS {ident(p + '__origin')}" for p in props)
    return (f"SELECT s.* REPLACE ({times}), {origins} FROM ({norm_select(view, only)}) s LEFT JOIN "
            f"(SELECT nsid, {pivot} FROM push_writes WHERE view = '{view.vkey}' GROUP BY nsid) w ON w.nsid = s.nsid")

def _components(con: duckdb.DuckDBPyConnection, gtype: str, views: list[View]) -> int:
    """Temp table `labels` (nsid, label): records sharing a key are one component, transitively.

    Label propagation over the record <-> key graph: each key takes the smallest label of its
    records, each record the smallest label of its keys. When every record's keys already agree
    on one label, the labels are final (every key's records then share it), so the pass that
    finds no change is not needed: data whose records have one key each settle in one pass.
    """
    nodes = table("nodes", gtype)
    con.execute(f"CREATE OR REPLACE TEMP TABLE edges AS SELECT DISTINCT nsid, k FROM ({_key_edges_sql(gtype, views)}) "
                f"WHERE nsid IN (SELECT nsid FROM {nodes})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE labels AS SELECT nsid, nsid AS label FROM {nodes}")
    iterations = _propagate(con, 0)
    if gtype in MATCH_KEYS and _match_edges(con, gtype):
        # the components so far are the entities the merge keys and links make; the derived key's edges
        # (between whole entities) join some of them, from where the labels are
        iterations = _propagate(con, iterations)
    return iterations


def _propagate(con: duckdb.DuckDBPyConnection, done: int) -> int:
    """Label propagation over `edges` until settled, from the labels in `labels`; `done`: passes so far
    (the first pass starts from every record as its own label)."""
    iterations = done
    while iterations < done + MAX_ITERATIONS:
        iterations += 1
        # every record starts as its own label, so the first pass needs no join for it
        con.execute(
            "CREATE OR REPLACE TEMP TABLE klabels AS " + (
                "SELECT k, min(nsid) AS label FROM edges GROUP BY k" if iterations == 1 else
                "SELECT e.k, min(l.label) AS label FROM edges e JOIN labels l USING (nsid) GROUP BY e.k")
        )
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE labels2 AS
            SELECT l.nsid, least(l.label, coalesce(x.lo, l.label)) AS label, coalesce(x.lo <> x.hi, false) AS unsettled
            FROM labels l LEFT JOIN (
                SELECT e.nsid, min(kl.label) AS lo, max(kl.label) AS hi FROM edges e JOIN klabels kl USING (k) GROUP BY e.nsid
            ) x USING (nsid)
            """
        )
        unsettled = first(con, "SELECT count(*) FILTER (WHERE unsettled) FROM labels2")[0]
        con.execute("CREATE OR REPLACE TEMP TABLE labels AS SELECT nsid, label FROM labels2")
        if unsettled == 0:
            break
    return iterations


# A per-property "latest wins" key: the time the value appeared (microseconds, shifted so it is
# never negative; no time at all sorts last) in the high bits, the record's rank by nsid within its
# entity in the low 32, so ties go to the larger nsid and the winner is `records[rank]`.
_NO_TIME = 1 << 62


def _merged(con: duckdb.DuckDBPyConnection, gtype: str, only: str | None = None) -> None:
    """Write `merged_<type>`: per entity and property the latest non-empty value, and its provenance.
    `only`: a temp table of nsids whose entities (whole ones) are merged and added to the table instead."""
    props = list(GLOBAL_TYPES[gtype])
    nodes, members = table("nodes", gtype), table("members", gtype)
    if only is not None:
        nodes = f"(SELECT * FROM {nodes} SEMI JOIN {only} USING (nsid))"
        members = f"(SELECT * FROM {members} SEMI JOIN {only} USING (nsid))"
    # references point at namespaced ids; the merged entity holds the referenced global id
    tables = table_names(con)
    refs = [(p, table("members", REFERENCES[p])) for p in props
            if p in REFERENCES and f"members_{REFERENCES[p]}" in tables]
    src = nodes
    if refs:
        replace = ", ".join(f"coalesce(r_{p}.gid, 'unresolved:' || n.{ident(p)}) AS {ident(p)}" for p, _ in refs)
        joins = " ".join(f"LEFT JOIN {m} r_{p} ON r_{p}.nsid = n.{ident(p)}" for p, m in refs)
        src = f"(SELECT n.* REPLACE ({replace}) FROM {nodes} n {joins})"
    con.execute(f"CREATE OR REPLACE TEMP TABLE multi AS SELECT gid FROM {members} GROUP BY gid HAVING count(*) > 1")
    derived = [(v, c) for v in views_of_type(gtype) for c in composed_fields(v) if c.parts]
    append = only is not None
    if not derived:
        _latest_wins(con, gtype, src, table("merged", gtype), append=append)
        return
    # Derived parts (see `Composed`): first the merge without them, then each whole is compared with
    # what its write makes of that result; a whole that still equals it adds nothing (the parts it was
    # joined from stay as they are), a whole that differs was really edited and its split takes part.
    by_part: dict[str, list[str]] = {}
    for v, c in derived:
        whole = canonical_whole(f"json_extract_string(n.wholes, '$.\"{c.field}\"')")
        made = fill_write(c.write, c.prop, lambda name: f"pre.{ident(name)}")
        for p in c.parts:
            by_part.setdefault(p, []).append(f"(n.view = '{v.vkey}' AND {whole} IS NOT DISTINCT FROM {canonical_whole(made)})")
    without = ", ".join(
        f"CASE WHEN n.view IN ({', '.join(sorted({repr(v.vkey) for v, c in derived if p in c.parts}))}) "
        f"THEN NULL ELSE n.{ident(p)} END AS {ident(p)}" for p in by_part)
    _latest_wins(con, gtype, f"(SELECT n.* REPLACE ({without}) FROM {src} n)", "merged_pre", temp=True)
    unchanged = ", ".join(f"CASE WHEN {' OR '.join(conds)} THEN NULL ELSE n.{ident(p)} END AS {ident(p)}"
                          for p, conds in by_part.items())
    _latest_wins(con, gtype, f"(SELECT n.* REPLACE ({unchanged}) FROM {src} n LEFT JOIN {members} m USING (nsid) "
                             f"LEFT JOIN merged_pre pre ON pre.gid = m.gid)", table("merged", gtype), append=append)
    con.execute("DROP TABLE IF EXISTS merged_pre")


def _latest_wins(con: duckdb.DuckDBPyConnection, gtype: str, src: str, out: str, temp: bool = False,
                 append: bool = False) -> None:
    """Write `out` (`append`: add to it): per entity of `members_<type>` and property the latest non-empty
    value of the records in `src` (rows of `nodes_<type>`), and its provenance. Needs the temp table `multi`."""
    props = list(GLOBAL_TYPES[gtype])
    members = table("members", gtype)
    # an entity of one record needs no aggregate at all: its non-empty values win
    one = ", ".join(
        f"CASE WHEN n.{ident(p)} <> '' THEN n.{ident(p)} END AS {ident(p)}, CASE WHEN n.{ident(p)} <> '' "
        f"THEN struct_pack(nsid := coalesce(n.{ident(p + '__origin')}, n.nsid), at := n.{ident(p + '__ts')}) END "
        f"AS {ident(p + '__from')}"
        for p in props
    )
    keys = ", ".join(
        f"{ident(p)}, CASE WHEN {ident(p)} <> '' THEN (coalesce(epoch_us({ident(p + '__ts')}) + {_EPOCH_SHIFT}, "
        f"{_NO_TIME})::HUGEINT << 32) + rk END AS {ident(p + '__k')}, {ident(p + '__origin')}"
        for p in props
    )
    # the origin of an echo (see `_echo_select`) rides along: only the winners that are echoes need it
    aggs = ", ".join(f"arg_max({ident(p)}, {ident(p + '__k')}) AS {ident(p)}, max({ident(p + '__k')}) AS {ident(p + '__k')}, "
                     f"arg_max_null({ident(p + '__origin')}, {ident(p + '__k')}) AS {ident(p + '__origin')}"
                     for p in props)
    outs = ", ".join(
        f"{ident(p)}, CASE WHEN {ident(p + '__k')} IS NOT NULL THEN struct_pack("
        f"nsid := coalesce({ident(p + '__origin')}, records[({ident(p + '__k')} & 4294967295)::BIGINT]), "
        f"at := CASE WHEN ({ident(p + '__k')} >> 32) <> {_NO_TIME} THEN to_timestamp(0) + to_microseconds("
        f"({ident(p + '__k')} >> 32)::BIGINT - {_EPOCH_SHIFT}) END) END AS {ident(p + '__from')}"
        for p in props
    )
    ranked = (f"SELECT m.gid, n.*, row_number() OVER (PARTITION BY m.gid ORDER BY n.nsid) AS rk "
              f"FROM {src} n JOIN {members} m USING (nsid) SEMI JOIN multi USING (gid)")
    head = f"INSERT INTO {out} BY NAME" if append else f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {out} AS"
    con.execute(
        f"""
        {head}
        SELECT m.gid, 1::BIGINT AS record_count, [n.nsid] AS records, n.changed_at, {one}
        FROM {src} n JOIN {members} m USING (nsid) ANTI JOIN multi USING (gid)
        UNION ALL
        SELECT gid, record_count, records, changed_at, {outs} FROM (
            SELECT gid, count(*) AS record_count, list_sort(list(nsid)) AS records, max(changed_at) AS changed_at, {aggs}
            FROM (SELECT gid, nsid, changed_at, {keys} FROM ({ranked})) GROUP BY gid
        )
        """
    )


def merge_type(con: duckdb.DuckDBPyConnection, gtype: str) -> MergeResult:
    """Normalise the views of `gtype` and merge them into `merged_<gtype>` / `members_<gtype>`.
    Skipped (the last result kept) when nothing the merge reads has changed since. One transaction: a merge
    stopped half-way leaves the tables as the last one made them (the next one finds the same changes)."""
    views = views_of_type(gtype)
    inputs = merge_inputs(con, gtype, views)
    build = Derived(con, f"merge:{gtype}", inputs,
                    [f"nodes_{gtype}", f"members_{gtype}", f"merged_{gtype}"]
                    + ([f"matches_{gtype}", f"match_candidates_{gtype}"] if gtype in MATCH_KEYS else []))
    if (kept := build.reusable()) is not None:
        return MergeResult(**{**kept, "reused": True})
    with rebuilding(con), transaction(con):  # a failed statement is rolled back before the setting is reset
        res = _merge_type(con, gtype, inputs[1])
        # the links are this merge's members only once `links_refreshed` has written them and says so
        con.execute("DELETE FROM cycle_state WHERE name = ?", [f"merge_links:{gtype}"])
        _log_changes(con, gtype, res)
        build.built({k: v for k, v in asdict(res).items() if k not in ("reused", "inputs")})
    res.inputs = inputs
    return res


MERGE_BUILDS_KEPT = 500  # builds of a type's `merge_changes` kept; a mapping further behind is made whole


def _log_changes(con: duckdb.DuckDBPyConnection, gtype: str, res: MergeResult) -> None:
    """Log this build's changed entities in `merge_changes` (before and after: `merge_gids`; a whole build
    that could not compare with a last one logs one row without a gid), and for a type with references the
    entities its changed entities named (`merge_ref_changes`), for the mappings (`mapping.map_view`)."""
    build = int(first(con, "SELECT coalesce(max(build), 0) + 1 FROM merge_changes WHERE global_type = ?", [gtype])[0])
    if res.gids is None:
        con.execute("INSERT INTO merge_changes VALUES (?, ?, NULL)", [gtype, build])
    else:
        con.execute(f"INSERT INTO merge_changes SELECT ?, ?, gid FROM {res.gids}", [gtype, build])
    if res.logged and _reference_props(gtype):
        con.execute("INSERT INTO merge_ref_changes SELECT ?, ?, prop, gid FROM merge_ref_gids", [gtype, build])
    for log in ("merge_changes", "merge_ref_changes"):
        con.execute(f"DELETE FROM {log} WHERE global_type = ? AND build <= ?", [gtype, build - MERGE_BUILDS_KEPT])


def _reference_props(gtype: str) -> list[str]:
    """The properties of `gtype` that reference another type's entities (an order's customer and user)."""
    return [p for p in GLOBAL_TYPES[gtype] if p in REFERENCES]


def links_refreshed(con: duckdb.DuckDBPyConnection, gtype: str, res: MergeResult) -> None:
    """Call after the links of `gtype` were rewritten from a merge's members (`links.refresh_links`): the
    merge's recorded inputs become those of now, links included. Else a later change that puts the links back
    as they were before that merge (a link removed again) would find the merge's inputs unchanged and keep
    the links without it. Only the links are read again: nothing else the merge reads (`res.inputs`) has
    changed since it read it (each source's rows were ~0.1 s a digest at 1M records)."""
    inputs = [res.inputs[0], _links_digest(con, gtype), *res.inputs[2:]]
    con.execute("UPDATE derived_state SET inputs = ? WHERE name = ?",
                [Derived(con, f"merge:{gtype}", inputs, []).inputs, f"merge:{gtype}"])
    # the links are the merge's members now: the next merge compares them only if this digest moved
    con.execute("INSERT OR REPLACE INTO cycle_state VALUES (?, ?, now())", [f"merge_links:{gtype}", inputs[1]])


def _local(gtype: str, views: list[View]) -> bool:
    """Whether an entity of `gtype` depends only on its own records (their keys, links and values), so a
    merge can redo just the entities changed records were or are part of: not for a type whose records
    reference another type's entities or are joined by a derived key or a fingerprint (orders)."""
    return (gtype not in MATCH_KEYS and not _reference_props(gtype)
            and not _fingerprinted(gtype, views))


def merge_inputs(con: duckdb.DuckDBPyConnection, gtype: str, views: list[View]) -> list[str]:
    """What the merge of `gtype` reads: its sources' current records, the type's links, the create
    intents (orders are recognised by them) and the merges of the types it references."""
    sources = sorted({(source_of(v).system, source_of(v).entity) for v in views})
    out = [code_digest(), _links_digest(con, gtype)]  # the links second: `links_refreshed` replaces them
    for system, entity in sources:
        out.append(rows_digest(con, "SELECT hash(record_id, hash, deleted) AS h FROM raw_current "
                                    "WHERE system = ? AND entity = ?", [system, entity]))
    if fingerprinted := _fingerprinted(gtype, views):
        out.append(rows_digest(con, "SELECT hash(view, gid, status, started_at, fingerprint) AS h FROM push_intents "
                                    "WHERE view IN (SELECT unnest(?::VARCHAR[]))", [[v.vkey for v in fingerprinted]]))
    if "push_writes" in table_names(con):  # what the sync wrote decides which values are echoes
        out.append(rows_digest(con, "SELECT hash(view, nsid, prop, value, origin_nsid, origin_at) AS h FROM push_writes "
                                    "WHERE view IN (SELECT unnest(?::VARCHAR[]))", [[v.vkey for v in views]]))
    out += [_referenced(con, gtype, ref) for ref in sorted({REFERENCES[p] for p in GLOBAL_TYPES[gtype] if p in REFERENCES})]
    return out


def _links_digest(con: duckdb.DuckDBPyConnection, gtype: str) -> str:
    return rows_digest(con, "SELECT hash(gid, nsid) AS h FROM links WHERE global_type = ?", [gtype])


def _referenced(con: duckdb.DuckDBPyConnection, gtype: str, ref: str) -> str:
    """What the merge of `gtype` reads of a type it references: which entity each record is (its
    references become global ids) and, for the derived match key, the records' e-mails. Not the
    referenced merge's whole input: a customer's new phone number does not rebuild the orders."""
    if f"members_{ref}" not in table_names(con):
        return ""
    out = rows_digest(con, f"SELECT hash(gid, nsid) AS h FROM {table('members', ref)}")
    if gtype in MATCH_KEYS and "email" in GLOBAL_TYPES[gtype] and "email" in GLOBAL_TYPES[ref]:
        out += rows_digest(con, f"SELECT hash(nsid, email) AS h FROM {table('nodes', ref)} WHERE email IS NOT NULL")
    return out


def _merge_type(con: duckdb.DuckDBPyConnection, gtype: str, links_now: str) -> MergeResult:
    """`links_now`: the type's links' digest as the merge read them (`merge_inputs`)."""
    views = views_of_type(gtype)
    whole = _nodes(con, gtype, views)
    local = _local(gtype, views)
    if local and not whole and {f"{t}_{gtype}" for t in ("members", "merged", "edges")} <= table_names(con):
        return _merge_delta(con, gtype, views, links_now)
    before = not whole and {f"{t}_{gtype}" for t in ("members", "merged")} <= table_names(con)
    if before:
        _entities_before(con, gtype)
    if gtype in MATCH_KEYS:
        _match_keys(con, gtype, views)
    iterations = _components(con, gtype, views)
    _entity_ids(con, gtype)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {table('members', gtype)} AS
        SELECT c.gid, n.nsid, n.view, n.record_id, n.parent_id, n.changed_at
        FROM {table('nodes', gtype)} n JOIN labels l USING (nsid) JOIN comp c USING (label)
        """
    )
    if gtype in MATCH_KEYS:
        _match_candidates(con, gtype)
    _merged(con, gtype)
    if local:  # the merge-key edges the next merge compares its own with (`_merge_delta`)
        con.execute(f"CREATE OR REPLACE TABLE {table('edges', gtype)} AS SELECT nsid, k FROM edges "
                    "WHERE NOT starts_with(k, 'link=')")
    res = _result(con, gtype, iterations, None)
    if before:
        _whole_changes(con, gtype)
        res.logged = True
    return res


def _entities_before(con: duckdb.DuckDBPyConnection, gtype: str) -> None:
    """Before a whole merge over nodes kept from the last build: each entity's merged row as a hash, and
    the entities the re-derived records (`merge_touched`) belonged to (`_whole_changes` compares)."""
    refs = "".join(f", {ident(p)} AS {ident('r__' + p)}" for p in _reference_props(gtype))
    con.execute(f"CREATE OR REPLACE TEMP TABLE merged_before AS SELECT gid, hash(m) AS h{refs} FROM {table('merged', gtype)} m")
    con.execute(f"CREATE OR REPLACE TEMP TABLE touched_before AS SELECT DISTINCT gid FROM {table('members', gtype)} "
                "WHERE nsid IN (SELECT nsid FROM merge_touched)")


def _whole_changes(con: duckdb.DuckDBPyConnection, gtype: str) -> None:
    """Temp table `merge_gids`: the entities a whole merge changed, before and after, as `_merge_delta`
    leaves them. Orders merge whole (their references and fingerprints are not local), and logging such
    a build as "everything" made every order mapping, and the customer mappings that read the orders,
    rebuild whole after any order or customer edit (5 s of a 1-edit cycle at 1M records).

    A mapped row reads its entity's merged row (its values, references and `records`, so a record that
    moved shows in both entities' rows) and its records' nodes and current versions, which change only
    for re-derived records (`merge_touched`, before and after). So the entities whose merged row differs
    or that hold a re-derived record are all that can map differently. Temp table `merge_ref_gids` (prop,
    gid): the entities those entities referenced before or reference now, for the mappings of the
    referenced types (a customer is created in a target when an order there names it)."""
    merged, members = table("merged", gtype), table("members", gtype)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE merge_gids AS
        WITH after AS (SELECT gid, hash(m) AS h FROM {merged} m)
        SELECT gid FROM (SELECT gid, h FROM merged_before EXCEPT SELECT gid, h FROM after)
        UNION SELECT gid FROM (SELECT gid, h FROM after EXCEPT SELECT gid, h FROM merged_before)
        UNION SELECT gid FROM touched_before
        UNION SELECT gid FROM {members} WHERE nsid IN (SELECT nsid FROM merge_touched)
        """)
    refs = [f"SELECT '{p}' AS prop, {ident('r__' + p)} AS gid FROM merged_before SEMI JOIN merge_gids USING (gid) "
            f"UNION SELECT '{p}', {ident(p)} FROM {merged} SEMI JOIN merge_gids USING (gid)" for p in _reference_props(gtype)]
    con.execute(f"CREATE OR REPLACE TEMP TABLE merge_ref_gids AS SELECT * FROM ({' UNION '.join(refs)}) WHERE gid IS NOT NULL"
                if refs else "CREATE OR REPLACE TEMP TABLE merge_ref_gids (prop VARCHAR, gid VARCHAR)")
    con.execute("DROP TABLE merged_before")
    con.execute("DROP TABLE touched_before")


def _entity_ids(con: duckdb.DuckDBPyConnection, gtype: str) -> None:
    """Temp table `comp` (label, gid): each component's global id, an existing one (the smallest, when two
    entities merged) or one derived from its label (its smallest record)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE comp AS
        SELECT l.label, coalesce(min(k.gid), '{gtype}:' || substr(md5(l.label), 1, 16)) AS gid
        FROM labels l LEFT JOIN links k ON k.nsid = l.nsid AND k.global_type = '{gtype}'
        GROUP BY l.label
        """
    )


def _result(con: duckdb.DuckDBPyConnection, gtype: str, iterations: int, rebuilt: int | None) -> MergeResult:
    records, entities, groups = first(con,
        f"SELECT sum(record_count), count(*), count(*) FILTER (WHERE record_count > 1) FROM {table('merged', gtype)}"
    )
    return MergeResult(gtype, int(records or 0), int(entities or 0), int(groups or 0), iterations,
                       rebuilt=int(records or 0) if rebuilt is None else rebuilt, whole=rebuilt is None)


def _merge_delta(con: duckdb.DuckDBPyConnection, gtype: str, views: list[View], links_now: str) -> MergeResult:
    """Merge again only the entities that records changed since the last merge were or are now part of (a
    `_local` type; the result equals a full rebuild's: `test_merge_incremental.py`).

    The seeds are the records whose nodes were derived again (`merge_touched`), those whose merge-key edges
    differ from the last merge's (`edges_<type>`: a key can become unsafe for a record that did not change,
    when another record of its view takes the same e-mail), and those whose link differs from their entity
    (after each merge the links are its members: a link made or removed since; compared only when the links'
    digest moved since the last merge's links were written, `links_refreshed`: else the only records whose
    link and entity can differ are those derived again). The scope is every record of
    the seeds' old entities and of the entities holding a key a seed has now. No record outside it shares a
    key with one inside: a seed's keys are all in, and two other records that share a merge key or a link's
    id were in one entity before.
    So the components of the scope's own edges are whole components, labelled and given ids as a full
    rebuild would (an existing link's id, else the smallest record's), and only their rows are replaced.
    Leaves the temp tables `merge_scope` (nsid: the records re-merged and the seeds no longer there) and
    `merge_gids` (gid: the entities before and after) for the links and the changed entities."""
    nodes, members, merged, kept = (table(t, gtype) for t in ("nodes", "members", "merged", "edges"))

    def edges_of(name: str, only: str) -> None:  # the merge-key edges of the records in `only`, as a full rebuild has them
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT DISTINCT nsid, k FROM "
                    f"({_key_edges_sql(gtype, views, only)}) WHERE nsid IN (SELECT nsid FROM {nodes})")

    # The records whose edges can differ from the last merge's: those derived again, and those holding, in
    # their view, an e-mail one of them holds now or held before (an e-mail is a key only while no other
    # record of its view has it); every other record's edges are its own values' and links', unchanged.
    cand = "SELECT nsid FROM merge_touched"
    if "email" in MERGE_KEYS[gtype]:
        cand += (f" UNION SELECT n.nsid FROM {nodes} n SEMI JOIN (SELECT view, email FROM merge_touched_emails "
                 f"UNION SELECT view, email FROM {nodes} WHERE email IS NOT NULL AND nsid IN (SELECT nsid FROM merge_touched)) t "
                 "ON n.view = t.view AND n.email = t.email")
    con.execute(f"CREATE OR REPLACE TEMP TABLE merge_cand AS {cand}")
    edges_of("cand_edges", "merge_cand")
    keys = "SELECT nsid, k FROM cand_edges WHERE NOT starts_with(k, 'link=')"
    was = f"SELECT nsid, k FROM {kept} WHERE nsid IN (SELECT nsid FROM merge_cand)"
    links = f"SELECT nsid, gid FROM links WHERE global_type = '{gtype}' AND nsid IN (SELECT nsid FROM {nodes})"
    moved = first(con, "SELECT value FROM cycle_state WHERE name = ?", [f"merge_links:{gtype}"]) != (links_now,)
    linked = (f"""UNION SELECT nsid FROM ({links} EXCEPT SELECT nsid, gid FROM {members})
        UNION SELECT nsid FROM (SELECT nsid, gid FROM {members} EXCEPT {links})""" if moved else "")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE merge_seeds AS
        SELECT nsid FROM merge_touched
        UNION SELECT nsid FROM ({keys} EXCEPT {was})
        UNION SELECT nsid FROM ({was} EXCEPT {keys})
        {linked}
        """
    )
    # the seeds' edges, and those of the records holding one of their keys: the entities to merge again
    edges_of("seed_edges", "merge_seeds")
    con.execute("CREATE OR REPLACE TEMP TABLE seed_keys AS SELECT DISTINCT k FROM seed_edges")
    con.execute(f"CREATE OR REPLACE TEMP TABLE merge_near AS {_key_holders_sql(gtype, views, 'seed_keys')}")
    edges_of("near_edges", "merge_near")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE merge_old_gids AS
        SELECT DISTINCT m.gid FROM {members} m
        WHERE m.nsid IN (SELECT nsid FROM merge_seeds)
           OR m.nsid IN (SELECT nsid FROM near_edges SEMI JOIN seed_keys USING (k))
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE merge_scope AS
        SELECT nsid FROM {members} WHERE gid IN (SELECT gid FROM merge_old_gids)
        UNION SELECT nsid FROM merge_seeds
        """
    )
    edges_of("edges", "merge_scope")
    con.execute(f"CREATE OR REPLACE TEMP TABLE labels AS SELECT nsid, nsid AS label FROM {nodes} SEMI JOIN merge_scope USING (nsid)")
    iterations = _propagate(con, 0)
    _entity_ids(con, gtype)
    con.execute(f"DELETE FROM {members} WHERE gid IN (SELECT gid FROM merge_old_gids)")
    con.execute(
        f"""
        INSERT INTO {members}
        SELECT c.gid, n.nsid, n.view, n.record_id, n.parent_id, n.changed_at
        FROM {nodes} n JOIN labels l USING (nsid) JOIN comp c USING (label)
        """
    )
    con.execute("CREATE OR REPLACE TEMP TABLE merge_gids AS SELECT gid FROM merge_old_gids UNION SELECT gid FROM comp")
    con.execute(f"DELETE FROM {merged} WHERE gid IN (SELECT gid FROM merge_gids)")
    _merged(con, gtype, only="merge_scope")
    con.execute(f"DELETE FROM {kept} WHERE nsid IN (SELECT nsid FROM merge_seeds)")
    con.execute(f"INSERT INTO {kept} SELECT nsid, k FROM seed_edges WHERE NOT starts_with(k, 'link=')")
    rebuilt = first(con, "SELECT count(*) FROM labels")[0]
    for t in ("merge_cand", "cand_edges", "merge_seeds", "seed_edges", "seed_keys", "merge_near", "near_edges",
              "merge_old_gids", "edges", "labels", "comp", "merge_touched_emails"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return _result(con, gtype, iterations, int(rebuilt))


# -- the derived match key (`MATCH_KEYS`: orders without our origin reference) ----------------------------
def _match_keys(con: duckdb.DuckDBPyConnection, gtype: str, views: list[View]) -> None:
    """Write `matches_<type>` (nsid, view, record_id, k): every record's derived key, from its own values
    in `nodes_<type>` (`open` and `safe` are filled by `_match_edges`).

    A reference is the referenced entity's global id (the referenced type is merged first); a record
    without one (Squarespace's orders name no customer) takes the one entity whose records carry its
    e-mail, none when the e-mail is on two entities. Lines are their SKUs (upper case, trimmed) with
    the quantity summed per SKU, sorted: prices, line order and line splitting make no difference, a
    line without SKU or quantity makes no key. Every part must be there, or the record has no key."""
    nodes = table("nodes", gtype)
    parts, joins = [], []
    for p in MATCH_KEYS[gtype]:
        if p in REFERENCES:
            ref = REFERENCES[p]
            joins.append(f"LEFT JOIN {table('members', ref)} r_{p} ON r_{p}.nsid = n.{ident(p)}")
            value = f"r_{p}.gid"
            if "email" in GLOBAL_TYPES[gtype] and "email" in GLOBAL_TYPES[ref]:
                joins.append(
                    f"LEFT JOIN (SELECT x.email, min(m.gid) AS gid FROM {table('nodes', ref)} x "
                    f"JOIN {table('members', ref)} m USING (nsid) WHERE x.email IS NOT NULL GROUP BY x.email "
                    f"HAVING count(DISTINCT m.gid) = 1) e_{p} ON n.{ident(p)} IS NULL AND e_{p}.email = n.email")
                value = f"coalesce({value}, e_{p}.gid)"
            parts.append(value)
        elif p == "lines":
            joins.append(
                f"""LEFT JOIN (
                    SELECT nsid, string_agg(sku || '*' || q, ',' ORDER BY sku) AS lines,
                           bool_and(coalesce(sku <> '' AND counted, false)) AS complete
                    FROM (SELECT nsid, upper(trim(l.sku)) AS sku, sum(l.quantity) AS q,
                                 bool_and(coalesce(l.quantity > 0, false)) AS counted
                          FROM (SELECT nsid, unnest(from_json(lines, '[{{"sku":"VARCHAR","quantity":"INTEGER"}}]')) AS l
                                FROM {nodes} WHERE lines IS NOT NULL)
                          GROUP BY nsid, sku)
                    GROUP BY nsid) li ON li.nsid = n.nsid AND li.complete""")
            parts.append("li.lines")
        else:
            parts.append(f"nullif(trim(n.{ident(p)}), '')")
    key = " || '|' || ".join(f"({x})" for x in parts)  # NULL when any part is
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {table('matches', gtype)} AS
        SELECT nsid, view, record_id, k, false AS open, false AS safe
        FROM (SELECT n.nsid, n.view, n.record_id, {key} AS k FROM {nodes} n {' '.join(joins)}) WHERE k IS NOT NULL
        """
    )


def _match_edges(con: duckdb.DuckDBPyConnection, gtype: str) -> int:
    """Add the derived key's edges to `edges`, given the entities the merge keys and links made (`labels`);
    returns how many were added.

    Entities are joined by the key, not single records: a copy the sync made carries its origin's values, so
    after a lost state file an order and the copy made of it are one entity by the origin reference, and
    the key joins that entity to the order it was matched with. Only *open* entities take part: none of
    their records is linked to another record yet (after a lost state file, every entity), so an order
    already linked never joins another one later. A key joins its open entities only when no view has
    records in two of them: two records of one system with the same customer, lines and day (entered
    twice, or a copy of each) make it ambiguous, and nothing merges by it (`match_candidates_<type>`)."""
    matches = table("matches", gtype)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE match_open AS
        SELECT DISTINCT label FROM labels ANTI JOIN (
            SELECT l.label FROM links k JOIN labels l USING (nsid) WHERE k.global_type = '{gtype}'
            GROUP BY l.label, k.gid HAVING count(*) > 1) USING (label)
        """
    )
    con.execute(f"UPDATE {matches} m SET open = l.label IN (SELECT label FROM match_open) FROM labels l WHERE l.nsid = m.nsid")
    nodes = table("nodes", gtype)
    con.execute(
        f"""
        UPDATE {matches} SET safe = k NOT IN (
            SELECT g.k FROM (SELECT DISTINCT m.k, l.label FROM {matches} m JOIN labels l USING (nsid) WHERE m.open) g
            JOIN labels l USING (label) JOIN {nodes} n USING (nsid)
            GROUP BY g.k, n.view HAVING count(DISTINCT g.label) > 1)
        """
    )
    before = first(con, "SELECT count(*) FROM edges")[0]
    con.execute(f"INSERT INTO edges SELECT DISTINCT nsid, 'match=' || k FROM {matches} WHERE open AND safe")
    return int(first(con, "SELECT count(*) FROM edges")[0]) - int(before)


def _match_candidates(con: duckdb.DuckDBPyConnection, gtype: str) -> None:
    """Write `match_candidates_<type>` (gid, view, n, record_ids): per entity and view, the records of that
    view with a derived key of the entity's records that belong to another entity, one still open (see
    `_match_edges`): the match was ambiguous, or the entity was linked before. A create of the entity in
    that view is held (`match_held_sql`): it may well be one of them, and another copy is what the key is
    there to prevent."""
    matches, members = table("matches", gtype), table("members", gtype)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {table('match_candidates', gtype)} AS
        SELECT mm.gid, c.view, count(DISTINCT c.nsid) AS n, list_sort(list(DISTINCT c.record_id)) AS record_ids
        FROM {matches} m JOIN {members} mm USING (nsid)
        JOIN {matches} c ON c.k = m.k AND c.open
        JOIN {members} cm ON cm.nsid = c.nsid AND cm.gid <> mm.gid
        GROUP BY mm.gid, c.view
        """
    )


def match_held_sql(view: View, title: str) -> str | None:
    """A `WHEN ... THEN reason` case of the mapping's held rule (`r`: the mapped row, its `gid`) for a new
    record of `view` whose derived key matches records already in `view` that could not be linked to it;
    None when the type has no derived key."""
    if view.global_type not in MATCH_KEYS:
        return None
    cands = table("match_candidates", view.global_type)
    props = ", ".join(p.replace("_", " ") for p in MATCH_KEYS[view.global_type])
    found = f"(SELECT c FROM {cands} c WHERE c.gid = r.gid AND c.view = '{view.vkey}')"
    return (f"WHEN {found} IS NOT NULL THEN printf('%d {title} record(s) (%s) have the same {props} (lines by SKU "
            f"and quantity) but cannot be linked to it for sure (another order has them too, or it was linked "
            f"before): not created, since it may already be one of them; created or linked by itself once that "
            f"is clear', {found}.n, array_to_string({found}.record_ids, ', '))")
