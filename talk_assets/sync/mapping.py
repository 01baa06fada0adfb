"""Transform: what each target view should hold, computed in SQL from the merged entities.

For a view V, the rows are the global entities that a dataflow brings to V:
- entities with a record in a view that flows *into* V with a creating link mode (create when V
  has no record yet, update when it has), and
- entities with records in both V and any view V exchanges data with (two-way once linked).
Each row holds the global value of every property a dataflow carries to V, V's current value
(both in canonical form, so a difference of format only is no change), the action (create,
update, unchanged), the properties that differ, and the payload: V's own field names and value
formats, made by the declaration's `write` conversions. An empty global value never overwrites.

A new record the target would refuse for a reason known before the call is `held`, not created,
with its reason in `held_reason` (README, "How the sync decides"): a required property (a
customer's e-mail) empty in every linked record, or a value that must be unique in the target
(`UNIQUE_IN_TARGET`) already held by another of its records, e.g. a company's `firmapost@` mailbox
that a person in Shopify uses. It is shown on the mapped asset, costs no call and is no dead letter;
once the data changes (an e-mail filled in, the mailbox freed) the row is a create again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import duckdb

from talk_assets.config import SYSTEMS
from talk_assets.sync.declaration import (
    GLOBAL_TYPES,
    REFERENCE_FALLBACK,
    REFERENCES,
    REQUIRED,
    View,
    counterparts,
    source_of,
    synced_props,
    views_of_type,
)
from talk_assets.sync.merge import canonical_whole, composed_fields, ident, match_held_sql, table
from talk_assets.sync.model import fill_write
from talk_assets.sync.store import (
    Derived,
    code_digest,
    digest_of,
    first,
    rebuilding,
    table_names,
    transaction,
)

CREATING_MODES = ("merge-or-create", "always-insert")

# Global properties whose value one record of the target may hold at most: a create under a value
# another record already holds is refused. Shopify: a customer's e-mail (and phone) is a unique key
# ("upsert a customer by a unique key (email or phone)",
# https://shopify.dev/docs/api/admin-graphql/latest/mutations/customerSet; REST answers 422
# "email has already been taken"). Only the e-mail is written by a customer create here.
UNIQUE_IN_TARGET: dict[str, tuple[str, ...]] = {"shopify.customer": ("email",)}


def writable_props(view: View) -> list[str]:
    """Global properties a dataflow carries to `view` and that `view` can be written."""
    synced = synced_props(view)
    return [p for p in GLOBAL_TYPES[view.global_type] if p in synced and any(
        pr.write is not None for pr in view.props_for(p))]


def _write_expr(template: str, prop: str, side: str) -> str:
    """A write conversion over one side's values: the columns `<side>__<prop>` (w: wanted, h: held)."""
    return "(" + fill_write(template, prop, lambda name: ident(f"{side}__{name}")) + ")"


def ref_namespace(view: View, prop: str) -> str | None:
    """The namespace a reference field of `view` points into (e.g. 'shopify-customer')."""
    reader = view.reader(prop)
    return reader.namespace if reader is not None else None  # declared by the conversion (`ref(view)`)


def payload_fields(view: View) -> list[tuple[str, str, str]]:
    """(field, global prop, write template) for every field written to `view`."""
    return [(pr.field, pr.prop, pr.write) for pr in _writers(view)]


def update_fields(view: View) -> set[str]:
    """Fields that may change after the record was created."""
    return {pr.field for pr in _writers(view) if pr.on_update}


def _writers(view: View) -> list:
    props = writable_props(view)
    out = []
    for pr in view.props:
        if pr.write is not None and pr.prop in props and pr.field not in {p.field for p in out}:
            out.append(pr)
    return out


def referencing_views(view: View) -> list[tuple[View, str]]:
    """(order view of the same system, reference property) whose records reference `view`'s type."""
    from talk_assets.sync.declaration import VIEWS

    out = []
    for v in VIEWS:
        if v.system != view.system or v is view:
            continue
        for p, t in REFERENCES.items():
            if t == view.global_type and p in writable_props(v) and ref_namespace(v, p) == view.namespace:
                out.append((v, p))
    return out


def mapped_sql(view: View, tables: set[str] | None = None, only: str | None = None) -> str:
    """SQL creating `mapped_<view>`: wanted payload, current payload, changed fields and action.

    `tables`: the tables that exist (None: assume all do); entities referenced by orders are only
    looked up once the order merge has made its tables, so a customer view maps before it.
    `only`: a temp table of global ids whose rows are made and added to the table (`map_view`)."""
    gtype = view.global_type
    props = list(GLOBAL_TYPES[gtype])
    creators = [o.vkey for f, o, is_target in counterparts(view) if is_target and f.link_mode in CREATING_MODES]
    # records linked to a record of this view (the same entity) receive its values, with or without
    # a dataflow between the two views: what is linked is one thing (README, "Same thing in two systems")
    partners = [o.vkey for o in views_of_type(gtype) if o is not view]
    # create-if-referenced: entities that orders synced into this system point at
    referenced = []
    for ov, p in referencing_views(view):
        ocreators = [o.vkey for f, o, t in counterparts(ov) if t and f.link_mode in CREATING_MODES]
        needed = {f"merged_{ov.global_type}", f"members_{ov.global_type}"}
        if ocreators and (tables is None or needed <= tables):
            referenced.append(
                f"SELECT g.{ident(p)} AS gid FROM {table('merged', ov.global_type)} g "
                f"JOIN {table('members', ov.global_type)} m USING (gid) "
                f"WHERE m.view IN ({', '.join(repr(k) for k in ocreators)}) AND g.{ident(p)} IS NOT NULL"
            )

    def in_list(keys: list[str]) -> str:
        return ", ".join(f"'{k}'" for k in keys) or "NULL"

    members = table("members", gtype)
    if only is not None:
        members = f"(SELECT * FROM {members} WHERE gid IN (SELECT gid FROM {only}))"
    merged = table("merged", gtype)
    norm = table("norm", view.vkey)
    # wanted values (global, references as the target's own record ids) and current values
    # (the target record's, in the same form), so both go through the same write conversions
    want_cols, have_cols, joins = [], [], []
    for p in props:
        if p in REFERENCES:
            ns = ref_namespace(view, p)
            rm = table("members", REFERENCES[p])
            joins.append(
                f"LEFT JOIN (SELECT gid, arg_min(record_id, nsid) AS record_id FROM {rm} WHERE nsid LIKE '{ns}:%' "
                f"GROUP BY gid) r_{p} ON r_{p}.gid = g.{ident(p)}"
            )
            fallback = REFERENCE_FALLBACK.get(REFERENCES[p])
            alt = (f"(SELECT x.{ident(fallback)} FROM {table('merged', REFERENCES[p])} x WHERE x.gid = g.{ident(p)})"
                   if fallback and ns and ns.endswith(f"-{REFERENCES[p]}") else "NULL")
            want_cols.append(f"coalesce(r_{p}.record_id, {alt}) AS {ident('w__' + p)}")
            have = f"split_part(n.{ident(p)}, ':', 2)" if p in view.read_props else "NULL::VARCHAR"
            have_cols.append(f"{have} AS {ident('h__' + p)}")
        else:
            want_cols.append(f"g.{ident(p)} AS {ident('w__' + p)}")
            have_cols.append(f"{'n.' + ident(p) if p in view.read_props else 'NULL::VARCHAR'} AS {ident('h__' + p)}")
    have_cols.append(f"n.wholes AS {ident('h__wholes')}")
    fields = payload_fields(view)
    want = {f: _write_expr(t, p, "w") for f, p, t in fields}
    have = {f: _write_expr(t, p, "h") for f, p, t in fields}
    # a field written from other properties (a person's CRM `name`, PowerOffice's `Name`) is compared as
    # the target holds it, not as its own parts would write it: a whole that does not split back into
    # the same parts (a newline, one word) is no difference, a wrong or emptied whole is one
    for c in composed_fields(view):
        if c.field in want:
            want[c.field] = canonical_whole(want[c.field])
            have[c.field] = canonical_whole(f"json_extract_string({ident('h__wholes')}, '$.\"{c.field}\"')")
    updatable = update_fields(view)
    differs = ", ".join(
        f"CASE WHEN nullif({want[f]}::VARCHAR, '') IS NOT NULL AND {want[f]}::VARCHAR IS DISTINCT FROM {have[f]}::VARCHAR "
        f"AND (r.nsid IS NULL OR {'true' if f in updatable else 'false'}) THEN '{f}' END"
        for f, _, _ in fields
    )
    # one row per entity with both sides' values (one join of the merged table and one of the
    # target's records): a reference's global id rides along as `g__<prop>` beside the record id
    want_cols += [f"g.{ident(p)} AS {ident('g__' + p)}" for p in props if p in REFERENCES]
    refs = "json_object(" + ", ".join(f"'{f}', {ident('g__' + p)}" for f, p, _ in fields if p in REFERENCES) + ")"
    glob = "json_object(" + ", ".join(f"'{p}', {ident('w__' + p)}" for p in props if p not in REFERENCES) + ")"
    changed = f"list_filter([{differs}], lambda x: x IS NOT NULL)" if fields else "[]::VARCHAR[]"
    # a record the API refuses to change (`View.locked`, read from the record as last collected): its
    # differences are `locked`, never pending, so nothing is attempted and nothing parks as a dead letter
    locked_col, locked_join = "false AS locked", ""
    if view.locked:
        src = source_of(view)
        locked_col = f"coalesce(({view.locked.replace('{r}', 'lk.payload')}), false) AS locked"
        locked_join = (f"LEFT JOIN raw_current lk ON lk.system = '{src.system}' AND lk.entity = '{src.entity}' "
                       "AND lk.record_id = r.parent_id AND NOT lk.deleted")
    held = _held_sql(view, fields, want, norm)
    payload = "json_object(" + ", ".join(f"'{f}', {want[f]}" for f, _, _ in fields) + ")"
    current = "json_object(" + ", ".join(f"'{f}', {have[f]}" for f, _, _ in fields) + ")"
    head = (f"INSERT INTO {table('mapped', view.vkey)} BY NAME" if only is not None
            else f"CREATE OR REPLACE TABLE {table('mapped', view.vkey)} AS")
    return f"""
    {head}
    WITH target AS (
        SELECT gid, min(nsid) AS nsid, arg_min(record_id, nsid) AS record_id, arg_min(parent_id, nsid) AS parent_id
        FROM {members} WHERE view = '{view.vkey}' GROUP BY gid
    ),
    wanted AS (
        SELECT gid FROM {members} WHERE view IN ({in_list(creators)})
        UNION
        SELECT gid FROM {members} WHERE view IN ({in_list(partners)}) AND gid IN (SELECT gid FROM target)
        {''.join(' UNION ' + q for q in referenced)}
    ),
    rows AS (SELECT wanted.gid, t.nsid, t.record_id, t.parent_id FROM wanted LEFT JOIN target t USING (gid)
             {f"WHERE wanted.gid IN (SELECT gid FROM {only})" if only is not None else ""}),
    sides AS (
        SELECT r.gid, r.nsid, r.record_id, r.parent_id, {locked_col}, {', '.join(want_cols + have_cols)}
        FROM rows r JOIN {merged} g USING (gid) LEFT JOIN {norm} n ON n.nsid = r.nsid {' '.join(joins)} {locked_join}
    ),
    calc AS (
        SELECT gid, nsid, record_id, parent_id, locked, {changed} AS changed_fields,
               {payload} AS payload, {current} AS current, {refs} AS refs, {glob} AS global, {held} AS held_reason
        FROM sides r
    )
    SELECT gid, nsid, record_id, parent_id,
           CASE WHEN held_reason IS NOT NULL THEN 'held' WHEN nsid IS NULL THEN 'create'
                WHEN len(changed_fields) > 0 AND locked THEN 'locked'
                WHEN len(changed_fields) > 0 THEN 'update' ELSE 'unchanged' END AS action,
           changed_fields, payload, current, refs, global, md5(payload::VARCHAR) AS payload_hash, held_reason
    FROM calc
    """


def _held_sql(view: View, fields: list[tuple[str, str, str]], want: dict[str, str], norm: str) -> str:
    """SQL for why a new record is held (NULL: not held); see the module doc."""
    title = f"{SYSTEMS[view.system].title} {view.name}"
    cases = []
    for f, p, _ in fields:
        if p in REQUIRED[view.global_type]:
            cases.append(f"WHEN nullif(nullif({want[f]}::VARCHAR, ''), '[]') IS NULL THEN "
                         f"'no {p.replace('_', ' ')} in any linked record, and a new {title} needs one: "
                         f"created once a linked record has it'")
    for p in UNIQUE_IN_TARGET.get(view.vkey, ()):
        if p not in view.read_props:
            continue
        taken = (f"(SELECT min(x.record_id) FROM {norm} x WHERE lower(x.{ident(p)}) = lower(r.{ident('w__' + p)}))")
        cases.append(f"WHEN {taken} IS NOT NULL THEN printf('{title} %s already has the {p.replace('_', ' ')} %s "
                     f"(one customer per {p.replace('_', ' ')} there): not created under another customer''s mailbox', "
                     f"{taken}, r.{ident('w__' + p)})")
    if (match := match_held_sql(view, title)) is not None:  # an ambiguous match (merge.py, MATCH_KEYS)
        cases.append(match)
    if not cases:
        return "NULL::VARCHAR"
    return f"CASE WHEN r.nsid IS NOT NULL THEN NULL {' '.join(cases)} END"


@dataclass
class MapResult:
    view: str
    rows: int
    create: int
    update: int
    unchanged: int
    locked: int = 0  # differences held back: the record is locked against edits in the target (`View.locked`)
    held: int = 0  # new records not created, each with its reason (`held_reason`)
    reused: bool = False  # the merges it reads did not change: the last mapping was kept
    mapped_again: int = -1  # entities mapped again (`_changed_gids`); -1: the whole view


def map_view(con: duckdb.DuckDBPyConnection, view: View) -> MapResult:
    """Build `mapped_<view>`; skipped (the last result kept) when the merges it reads did not change."""
    sql = mapped_sql(view, table_names(con))
    merges = {t: digest_of(con, f"merge:{t}") for t in read_types(view)}
    build = Derived(con, f"map:{view.vkey}", [code_digest(), sql, *merges.values()],
                    [f"mapped_{view.vkey.replace('.', '_')}"])
    if (kept := build.reusable()) is not None:
        return MapResult(**{**kept, "reused": True})
    own = view.global_type
    refs = referenced_types(view)
    followed = [own, *refs, *referencing_types(view)]
    # what it reads besides the merges it follows by their logs: its SQL, the engine, any other merge
    others = hashlib.md5("\x1f".join([code_digest(), sql] + [d for t, d in merges.items()
                                                             if t not in followed]).encode()).hexdigest()
    builds = {t: first(con, "SELECT max(build) FROM merge_changes WHERE global_type = ?", [t])[0] for t in followed}
    mapped = table("mapped", view.vkey)
    with rebuilding(con), transaction(con):  # a failed statement is rolled back before the setting is reset
        again = _changed_gids(con, view, others, builds)
        if again is None:
            con.execute(sql)
        else:
            con.execute(f"DELETE FROM {mapped} WHERE gid IN (SELECT gid FROM map_again)")
            con.execute(mapped_sql(view, table_names(con), only="map_again"))
            con.execute("DROP TABLE map_again")
        con.execute("INSERT OR REPLACE INTO map_state VALUES (?, ?, ?, ?)",
                    [view.vkey, builds[own], others, json.dumps({t: builds[t] for t in followed[1:]}, sort_keys=True)])
    rows, c, u, n, lk, h = first(con,
        f"SELECT count(*), count(*) FILTER (WHERE action = 'create'), count(*) FILTER (WHERE action = 'update'), "
        f"count(*) FILTER (WHERE action = 'unchanged'), count(*) FILTER (WHERE action = 'locked'), "
        f"count(*) FILTER (WHERE action = 'held') FROM {mapped}"
    )
    res = MapResult(view.vkey, int(rows), int(c), int(u), int(n), locked=int(lk), held=int(h),
                    mapped_again=-1 if again is None else again)
    build.built({k: v for k, v in asdict(res).items() if k != "reused"})
    return res


def _changed_gids(con: duckdb.DuckDBPyConnection, view: View, others: str,
                  builds: dict[str, int | None]) -> int | None:
    """Temp table `map_again` (gid): the entities whose mapped rows may differ from the last mapping's, and
    how many; None when the mapping must be made whole.

    A mapped row depends on its entity's merged row and records (members, the target record's values and
    lock), which the merges of its own type log per build (`merge_changes`), on the entities its references
    point at (an order's customer: the target's record id for it, or its fallback value), which their
    types' merges log the same way, on whether an order synced into the target names the entity (a
    customer is wanted there then), which the order merge logs as the entities its changed orders named
    before or name now (`merge_ref_changes`), and on the rest of the target view only through a create's
    held reason (another target record with the e-mail it would take): rows without a target record are
    always made again. Whole when anything else it reads changed (`others`: the SQL, the engine), when a
    merge since was whole, or when the log no longer reaches back to the last mapping. `builds`: the
    newest build of each type it follows (its own, the referenced, the referencing)."""
    mapped = table("mapped", view.vkey)
    own = view.global_type
    referenced = referenced_types(view)
    last = first(con, "SELECT build, others, ref_builds FROM map_state WHERE view = ?", [view.vkey])
    if last is None or last[1] != others or mapped[1:-1] not in table_names(con):
        return None
    since = {own: last[0], **json.loads(last[2] or "{}")}
    logged = []
    for t, now in builds.items():
        before = since.get(t)
        if before is None or now is None:
            if before != now or t == own:
                return None
            continue
        oldest, whole = first(con, "SELECT min(build), count(*) FILTER (WHERE gid IS NULL AND build > ?) "
                                   "FROM merge_changes WHERE global_type = ?", [before, t])
        if whole or (now > before and (oldest is None or oldest > before + 1)):
            return None
        builds_since = f"global_type = '{t}' AND build > {int(before)} AND build <= {int(now)}"
        changed = f"SELECT gid FROM merge_changes WHERE {builds_since}"
        if t == own:
            logged.append(changed)
        elif t not in referenced:  # a type whose entities reference this view's (orders naming a customer)
            logged += [f"SELECT gid FROM merge_ref_changes WHERE {builds_since} AND prop = '{p}'"
                       for ov, p in referencing_views(view) if ov.global_type == t]
        else:  # the entities whose references point at a changed entity of `t` (today a reference reads
            # the target's record id of its members, whose change also merges the orders whole: this
            # part then carries a fallback value, `REFERENCE_FALLBACK`, and keeps the rule one place)
            logged += [f"SELECT gid FROM {table('merged', own)} WHERE {ident(p)} IN ({changed})"
                       for p in GLOBAL_TYPES[own] if REFERENCES.get(p) == t]
    con.execute(f"CREATE OR REPLACE TEMP TABLE map_again AS "
                f"{' UNION '.join([*logged, f'SELECT gid FROM {mapped} WHERE nsid IS NULL'])}")
    return int(first(con, "SELECT count(*) FROM map_again")[0])


def referenced_types(view: View) -> list[str]:
    """The types the view's own type references (an order's customer and user), whose merges log the
    entities they change: a mapping follows them entity by entity (`_changed_gids`)."""
    return sorted({REFERENCES[p] for p in GLOBAL_TYPES[view.global_type] if p in REFERENCES} - {view.global_type})


def referencing_types(view: View) -> list[str]:
    """The types whose entities, synced into the view's system, make an entity of the view's type wanted
    there (`referencing_views`: the orders that name a customer); a mapping follows their merges' logs of
    the entities their changed records named (`_changed_gids`)."""
    return sorted({ov.global_type for ov, _p in referencing_views(view)} - {view.global_type, *referenced_types(view)})


def read_types(view: View) -> list[str]:
    """The global types whose merged tables `mapped_sql(view)` reads."""
    types = {view.global_type, *referenced_types(view)}
    types |= {ov.global_type for ov, _p in referencing_views(view)}
    return sorted(types)


def target_views() -> list[View]:
    """Views that some dataflow writes to (in either direction) and that have writable properties."""
    from talk_assets.sync.declaration import VIEWS

    return [v for v in VIEWS if counterparts(v) and writable_props(v)]
