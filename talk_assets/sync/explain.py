"""Why: one global entity across all systems, read from the state file (`talk-assets explain`, the UI).

- `provenance_rows`: per entity and property the winning value, the system and record whose edit it is
  (the origin, never an echo of a value the sync wrote: merge.py `_echo_select`), that edit's time, and the
  candidates it beat with their times and why each lost. Set work in SQL over `nodes_<type>` and
  `merged_<type>`, for the entities asked for only: the merge itself pays nothing for it.
- `find_entities`: an e-mail, a SKU or `system:record-id` (or a namespaced id) -> (type, global id).
- `explain`: links, provenance, pending writes (old -> new per field), the views it is held from and
  why, the derived match key of its records (orders: customer, lines, day), dead letters and the
  entity's history across link versions; `render` prints it for a terminal.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from talk_assets.sync.declaration import GLOBAL_TYPES, MATCH_KEYS, REFERENCES, VIEWS
from talk_assets.sync.merge import ident, table
from talk_assets.sync.store import table_names

SYSTEM_OF_NAMESPACE = {v.namespace: v.system for v in VIEWS}


def system_of(nsid: str | None) -> str | None:
    """The system a namespaced record id (`shopify-customer:12`) belongs to."""
    if not nsid:
        return None
    ns = nsid.split(":", 1)[0]
    return SYSTEM_OF_NAMESPACE.get(ns, ns.split("-", 1)[0])


def record_of(nsid: str | None) -> str | None:
    return nsid.split(":", 1)[1] if nsid and ":" in nsid else nsid


def _why(cand_at: datetime | None, win_at: datetime | None) -> str:
    """Why a candidate with another value lost, in a few words."""
    if cand_at is None:
        return "no edit time known"
    if win_at is None:
        return "not counted (derived from a field the sync composes, not edited)"
    if cand_at < win_at:
        return "older edit"
    if cand_at == win_at:
        return "same time, decided by record id"
    return "not counted (derived from a field the sync composes, not edited)"


def provenance_rows(con: duckdb.DuckDBPyConnection, gtype: str, gids: list[str]) -> list[dict[str, Any]]:
    """Per entity in `gids` and property of `gtype`: {gid, property, value, system, record (namespaced id),
    record_id, edit_time, via (records holding the value only because the sync wrote it there), beaten
    (list of {value, system, record, record_id, edit_time, why})}. Properties without a value are left out.
    Empty when the type has not been merged yet."""
    tables = table_names(con)
    if not gids or f"merged_{gtype}" not in tables or f"nodes_{gtype}" not in tables:
        return []
    props = list(GLOBAL_TYPES[gtype])
    node_cols = {r[0] for r in con.execute(f"DESCRIBE {table('nodes', gtype)}").fetchall()}
    has_origin = all(f"{p}__origin" in node_cols for p in props)  # state from before the echo columns
    origin = (lambda p: f"coalesce(n.{ident(p + '__origin')}, n.nsid)") if has_origin else (lambda p: "n.nsid")
    cands = " UNION ALL ".join(
        f"SELECT m.gid, '{p}' AS prop, n.nsid AS carrier, n.{ident(p)}::VARCHAR AS value, {origin(p)} AS origin, "
        f"n.{ident(p + '__ts')} AS at FROM n JOIN ids m USING (nsid) "
        f"WHERE nullif(n.{ident(p)}::VARCHAR, '') IS NOT NULL"
        for p in props)
    wins = " UNION ALL ".join(
        f"SELECT gid, '{p}' AS prop, {ident(p)}::VARCHAR AS value, {ident(p + '__from')}.nsid AS origin, "
        f"{ident(p + '__from')}.at AS at, {i} AS ord FROM g WHERE {ident(p)} IS NOT NULL"
        for i, p in enumerate(props))
    rows = con.execute(
        f"""
        WITH ids AS MATERIALIZED (SELECT gid, nsid FROM {table('members', gtype)}
                                  WHERE gid IN (SELECT unnest(?::VARCHAR[]))),
        -- the entities' nodes and merged rows read once: each property's branch below scanned the whole
        -- tables (0.2-0.35 s per call at ~500k customers, two calls in every merge step)
        n AS MATERIALIZED (SELECT * FROM {table('nodes', gtype)} SEMI JOIN ids USING (nsid)),
        g AS MATERIALIZED (SELECT * FROM {table('merged', gtype)} SEMI JOIN ids USING (gid)),
        c AS ({cands}), w AS ({wins})
        SELECT w.gid, w.prop, w.value, w.origin, w.at,
               list(DISTINCT c.carrier) FILTER (WHERE c.carrier <> w.origin AND c.origin = w.origin
                                                AND c.value = w.value) AS via,
               list(DISTINCT {{'value': c.value, 'origin': c.origin, 'at': c.at}})
                   FILTER (WHERE c.value IS DISTINCT FROM w.value) AS beaten
        FROM w LEFT JOIN c ON c.gid = w.gid AND c.prop = w.prop
        GROUP BY w.gid, w.prop, w.value, w.origin, w.at, w.ord ORDER BY w.gid, w.ord
        """,
        [list(gids)],
    ).fetchall()
    out = []
    for gid, prop, value, org, at, via, beaten in rows:
        if prop in REFERENCES:  # the merge holds the referenced global id; the records their own ids
            beaten = [b for b in beaten or [] if b["value"] != org]
        lost = sorted(beaten or [], key=lambda b: (b["at"] is None, b["at"]), reverse=True)
        out.append({
            "gid": gid, "property": prop, "value": value, "system": system_of(org), "record": org,
            "record_id": record_of(org), "edit_time": at, "via": sorted(via or []),
            "beaten": [{"value": b["value"], "system": system_of(b["origin"]), "record": b["origin"],
                        "record_id": record_of(b["origin"]), "edit_time": b["at"], "why": _why(b["at"], at)}
                       for b in lost],
        })
    return out


def find_entities(con: duckdb.DuckDBPyConnection, key: str) -> list[tuple[str, str]]:
    """(global type, global id) of what `key` names: an e-mail (customers, users), a SKU or GTIN (products),
    `system:record-id` (any record the sync links, e.g. `shopify:1042`; every entity with such a record),
    `system:entity:record-id` (`customcrm:orders:12`), a namespaced record id
    (`shopify-customer:1042`) or a global id."""
    key = key.strip()
    tables = table_names(con)
    found: list[tuple[str, str]] = []

    def add(rows: list[tuple]) -> None:
        for t, g in rows:
            if (t, g) not in found:
                found.append((t, g))

    add(con.execute("SELECT DISTINCT global_type, gid FROM links WHERE gid = ? OR nsid = ?", [key, key]).fetchall())
    if key.count(":") >= 2 and not found:  # system:entity:record-id, where a record id alone is ambiguous
        system, entity, rid = key.split(":", 2)
        add(con.execute("SELECT DISTINCT global_type, gid FROM links WHERE system = ? AND entity = ? AND record_id = ? "
                        "ORDER BY 1, 2", [system.strip().lower(), entity.strip(), rid.strip()]).fetchall())
    if ":" in key and not found:  # system:record-id: every entity with such a record (customer 12, order 12...)
        system, rid = key.split(":", 1)
        add(con.execute("SELECT DISTINCT global_type, gid FROM links WHERE system = ? AND record_id = ? "
                        "ORDER BY 1, 2", [system.strip().lower(), rid.strip()]).fetchall())
    if "@" in key and not found:
        for t in ("customer", "user", "order"):
            if f"merged_{t}" in tables:
                add([(t, g) for (g,) in con.execute(f"SELECT gid FROM {table('merged', t)} WHERE lower(email) = lower(?) "
                                                     "ORDER BY gid", [key]).fetchall()])
    if not found and "merged_product" in tables:
        add([("product", g) for (g,) in con.execute(
            "SELECT gid FROM merged_product WHERE upper(sku) = upper(?) OR gtin = ? ORDER BY gid", [key, key]).fetchall()])
    return found


def _pending(con: duckdb.DuckDBPyConnection, gtype: str, gid: str) -> list[dict[str, Any]]:
    """Writes the next push would make for this entity: per target view the action and old -> new per field."""
    from talk_assets.sync.mapping import target_views
    from talk_assets.sync.push import written_since_mapped

    tables = table_names(con)
    out = []
    for v in target_views():
        name = f"mapped_{v.vkey.replace('.', '_')}"
        if v.global_type != gtype or name not in tables:
            continue
        # the mapped table is the last mapping's: a write the push made since is not pending any more
        for action, rid, changed, payload, current, parked in con.execute(
                f"""SELECT m.action, m.record_id, m.changed_fields, m.payload::VARCHAR, m.current::VARCHAR,
                           (SELECT min(d.id) FROM dead_letters d WHERE d.view = ? AND d.gid = m.gid
                            AND d.resolved_at IS NULL) AS parked
                    FROM {ident(name)} m WHERE m.gid = ? AND m.action IN ('create', 'update')
                    AND NOT {written_since_mapped(v)}""",
                [v.vkey, gid]).fetchall():
            new, old = json.loads(payload or "{}"), json.loads(current or "{}")
            fields = list(changed or []) if action == "update" else [f for f, x in new.items() if x not in (None, "")]
            out.append({"view": v.vkey, "system": v.system, "action": action, "record_id": rid, "dead_letter": parked,
                        "changes": [{"field": f, "old": old.get(f) if action == "update" else None, "new": new.get(f)}
                                    for f in fields]})
    return out


def _dead_letters(con: duckdb.DuckDBPyConnection, gid: str) -> list[dict[str, Any]]:
    rows = con.execute("SELECT id, view, action, record_id, status, error, attempts, last_failed_at, resolved_at, "
                       "resolution FROM dead_letters WHERE gid = ? ORDER BY id", [gid]).fetchall()
    return [{"id": i, "view": v, "action": a, "record_id": r, "status": s, "reason": reason_line(s, e),
             "attempts": n, "last_failed_at": t, "resolved_at": res, "resolution": how}
            for i, v, a, r, s, e, n, t, res, how in rows]


def _history(con: duckdb.DuckDBPyConnection, gid: str) -> list[dict[str, Any]]:
    """Every link row this entity (or one of its records) had, with the versions it was valid in, and when
    each version was made: joined, moved to or from another entity, re-written, created by the sync."""
    rows = con.execute(
        """
        WITH mine AS (SELECT DISTINCT nsid FROM links_history WHERE gid = ?)
        SELECT h.valid_from, h.valid_to, h.gid, h.view, h.nsid, h.origin, h.last_written_hash,
               f.created_at AS from_at, t.created_at AS to_at
        FROM links_history h LEFT JOIN link_versions f ON f.version = h.valid_from
        LEFT JOIN link_versions t ON t.version = h.valid_to
        WHERE h.gid = ? OR h.nsid IN (SELECT nsid FROM mine) ORDER BY h.valid_from, h.view, h.nsid
        """, [gid, gid]).fetchall()
    return [{"from_version": a, "to_version": b, "gid": g, "view": v, "record": n, "system": system_of(n),
             "origin": o, "written_hash": wh, "from_at": fa, "to_at": ta, "this_entity": g == gid}
            for a, b, g, v, n, o, wh, fa, ta in rows]


def _held(con: duckdb.DuckDBPyConnection, gtype: str, gid: str) -> list[dict[str, Any]]:
    """The views this entity is not created in, and why (the mapping's `held_reason`)."""
    from talk_assets.sync.mapping import target_views

    tables = table_names(con)
    out = []
    for v in target_views():
        name = f"mapped_{v.vkey.replace('.', '_')}"
        if v.global_type == gtype and name in tables:
            out += [{"view": v.vkey, "system": v.system, "reason": r} for (r,) in con.execute(
                f"SELECT held_reason FROM {ident(name)} WHERE gid = ? AND action = 'held'", [gid]).fetchall()]
    return out


def _matches(con: duckdb.DuckDBPyConnection, gtype: str, gid: str) -> list[dict[str, Any]]:
    """The derived key of each of the entity's records (`MATCH_KEYS`: an order's customer entity, lines and
    day), whether it was unambiguous, and the entity's records that share it (joined by it, or its copies)."""
    if gtype not in MATCH_KEYS or f"matches_{gtype}" not in table_names(con):
        return []
    rows = con.execute(
        f"""SELECT x.record_id, x.view, x.k, x.safe, x.open,
                   (SELECT list_sort(list(o.nsid)) FROM {table('matches', gtype)} o JOIN {table('members', gtype)} om
                    USING (nsid) WHERE o.k = x.k AND o.nsid <> x.nsid AND om.gid = m.gid) AS same
            FROM {table('matches', gtype)} x JOIN {table('members', gtype)} m USING (nsid) WHERE m.gid = ?
            ORDER BY x.view, x.record_id""", [gid]).fetchall()
    return [{"view": v, "system": v.split(".")[0], "record_id": r, "key": k, "unambiguous": bool(safe),
             "was_unlinked": bool(op), "same_key_in_entity": list(same or [])} for r, v, k, safe, op, same in rows]


def explain(con: duckdb.DuckDBPyConnection, gtype: str, gid: str) -> dict[str, Any]:
    """Everything the state knows about one entity."""
    links = [dict(zip(("view", "system", "entity", "record_id", "origin", "first_linked_at", "last_written_at"), r,
                      strict=True))
             for r in con.execute("SELECT view, system, entity, record_id, origin, first_linked_at, last_written_at "
                                  "FROM links WHERE gid = ? ORDER BY view, record_id", [gid]).fetchall()]
    return {"global_type": gtype, "gid": gid, "links": links, "properties": provenance_rows(con, gtype, [gid]),
            "pending_writes": _pending(con, gtype, gid), "held": _held(con, gtype, gid),
            "matched_by": _matches(con, gtype, gid), "dead_letters": _dead_letters(con, gid),
            "history": _history(con, gid)}


# -- dead letters ------------------------------------------------------------------------------------------
def reason_line(status: int | None, error: str | None, width: int = 160) -> str:
    """A dead letter's reason on one line: the status as an integer, whitespace collapsed, shortened at a
    word (never mid-word) with an ellipsis."""
    text = " ".join(str(error or "").split())
    head = f"HTTP {int(status)}" if status is not None else "not sent" if "not sent" in text else "no answer"
    if f"HTTP {status}: " in text:  # "<system> <method> <endpoint>: HTTP 422: <message>"
        text = text.split(f"HTTP {status}: ", 1)[1]
    line = f"{head}: {text}" if text else head
    if len(line) <= width:
        return line
    cut = line[:width - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(",;:") + "…"


def what_to_do(status: int | None, error: str | None, did: int, clash: str | None) -> str:
    """One sentence: what a person does about a dead letter."""
    text = (error or "").lower()
    replay = f"then `talk-assets dlq replay {did}`"
    if clash:
        return (f"the target already has this e-mail on {clash}: if it is the same party, give both the same e-mail "
                f"(they link); if not, change one of the e-mails, {replay}")
    if "required field" in text:
        return f"fill the named field in one of the linked records, {replay} (or wait: an edit retries it)"
    if status is None or status >= 500 or status == 429:
        return "a failure of the system, not the record: retried by the next cycle"
    if status == 404:
        return f"the target record is gone: {replay} creates it again"
    if status in (400, 409, 422):
        return f"correct the value the target refuses in the source record, {replay} (an edit retries it too)"
    return f"see the target's answer (`talk-assets explain <record>`), {replay}"


def dead_letter_rows(con: duckdb.DuckDBPyConnection, open_only: bool = True) -> list[dict[str, Any]]:
    """Dead letters with what a person needs: the target system and record, the human key (e-mail, SKU),
    the records the values came from, the reason on one line, the record already holding the key in
    the target (a clash) and what to do."""
    from talk_assets.sync.declaration import VIEWS_BY_KEY

    tables = table_names(con)
    rows = con.execute(
        "SELECT id, view, gid, action, record_id, status, error, attempts, last_failed_at FROM dead_letters "
        + ("WHERE resolved_at IS NULL " if open_only else "") + "ORDER BY id").fetchall()
    out = []
    for did, vkey, gid, action, rid, status, error, attempts, last in rows:
        view = VIEWS_BY_KEY.get(vkey)
        gtype = view.global_type if view else gid.split(":", 1)[0]
        key_prop = {"product": "sku", "user": "email", "customer": "email", "order": "origin"}.get(gtype)
        # without its key (a customer without e-mail) a record is named by what a person reads: its name
        name = {"customer": "coalesce(organization_name, nullif(concat_ws(' ', first_name, last_name), ''))",
                "user": "nullif(concat_ws(' ', first_name, last_name), '')", "product": "name"}.get(gtype, "NULL")
        key = None
        if key_prop and f"merged_{gtype}" in tables:
            got = con.execute(f"SELECT {ident(key_prop)}::VARCHAR, {name}::VARCHAR FROM {table('merged', gtype)} "
                              "WHERE gid = ?", [gid]).fetchall()
            key = (got[0][0] or (f"({got[0][1]}, no {key_prop})" if got[0][1] else None)) if got else None
        sources = [f"{s}:{r}" for s, r in con.execute(
            "SELECT system, record_id FROM links WHERE gid = ? AND view <> ? ORDER BY system, record_id",
            [gid, vkey]).fetchall()]
        clash = None
        if view and key and key_prop == "email" and f"nodes_{gtype}" in tables and "taken" in (error or "").lower():
            hit = con.execute(f"SELECT n.record_id FROM {table('nodes', gtype)} n WHERE n.view = ? AND "
                              "lower(n.email) = lower(?) LIMIT 1", [vkey, key]).fetchall()
            clash = f"{view.system} record {hit[0][0]}" if hit else None
        out.append({
            "id": did, "system": view.system if view else vkey.split(".", 1)[0], "view": vkey, "action": action,
            "record": rid or "(new)", "key": key or "", "from": ", ".join(sources), "status": status,
            "reason": reason_line(status, error), "clash": clash, "attempts": attempts, "last_failed_at": last,
            "what_to_do": what_to_do(status, error, did, clash), "gid": gid,
        })
    return out


# -- terminal output ---------------------------------------------------------------------------------------
def _t(at: Any) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if isinstance(at, datetime) else "time unknown"


def _v(value: Any, width: int = 60) -> str:
    """A value on one line: newlines shown as ⏎, long values shortened at a word with their length."""
    text = "∅" if value is None else str(value).replace("\r\n", "⏎").replace("\n", "⏎")
    if len(text) <= width:
        return text
    cut = text[:width].rsplit(" ", 1)[0] if " " in text[:width] else text[:width]
    return f"{cut}… ({len(text)} chars)"


def render(doc: dict[str, Any]) -> str:
    """`explain` for a terminal."""
    lines = [f"{doc['global_type']} {doc['gid']}", "", f"links ({len(doc['links'])}):"]
    for lk in doc["links"]:
        lines.append(f"  {lk['system']:<13} {lk['entity']:<22} {lk['record_id']:<14} {lk['origin']}"
                     + (f", last written {_t(lk['last_written_at'])}" if lk["last_written_at"] else ""))
    lines += ["", "properties (winner, whose edit, when; what it beat):"]
    for p in doc["properties"]:
        via = f" (also held by {', '.join(p['via'])} because the sync wrote it)" if p["via"] else ""
        lines.append(f"  {p['property']:<20} {_v(p['value'])}")
        lines.append(f"  {'':<20}   from {p['system']} {p['record_id']} edited {_t(p['edit_time'])}{via}")
        for b in p["beaten"]:
            lines.append(f"  {'':<20}   beat {_v(b['value'], 40)} from {b['system']} {b['record_id']} "
                         f"({_t(b['edit_time'])}: {b['why']})")
    lines += ["", f"pending writes ({len(doc['pending_writes'])}):"]
    for w in doc["pending_writes"]:
        parked = f" (waiting: dead letter #{w['dead_letter']})" if w["dead_letter"] else ""
        lines.append(f"  {w['action']} {w['view']} {w['record_id'] or '(new record)'}{parked}")
        for c in w["changes"]:
            lines.append(f"      {c['field']}: {_v(c['old'], 40)} -> {_v(c['new'], 40)}")
    if not doc["pending_writes"]:
        lines.append("  none: every linked record holds the merged values")
    if doc.get("held"):
        lines += ["", f"held, not created ({len(doc['held'])}):"]
        lines += [f"  {h['view']}: {h['reason']}" for h in doc["held"]]
    if doc.get("matched_by"):
        props = ", ".join(MATCH_KEYS[doc["global_type"]])
        lines += ["", f"same {props} (records without an origin reference of ours are one {doc['global_type']} "
                      "when these agree, unambiguously):"]
        for m in doc["matched_by"]:
            how = ("unambiguous" if m["unambiguous"] else "ambiguous: another record of one system has it too")
            with_ = f"; shared here with {', '.join(m['same_key_in_entity'])}" if m["same_key_in_entity"] else ""
            lines.append(f"  {m['system']:<13} {m['record_id']:<14} {_v(m['key'], 80)} ({how}{with_})")
    open_dl = [d for d in doc["dead_letters"] if d["resolved_at"] is None]
    lines += ["", f"dead letters ({len(open_dl)} open, {len(doc['dead_letters']) - len(open_dl)} resolved):"]
    for d in doc["dead_letters"]:
        state = "open" if d["resolved_at"] is None else f"resolved ({d['resolution']}) {_t(d['resolved_at'])}"
        lines.append(f"  #{d['id']} {d['view']} {d['action']} {d['record_id'] or '(new record)'}: {d['reason']} [{state}]")
    lines += ["", "history across link versions:"]
    before: dict[str, dict[str, Any]] = {}  # record -> its previous link row
    for h in doc["history"]:
        prev = before.get(h["record"])
        if prev is None:
            what = "linked" + (" (created by the sync)" if h["origin"] == "created" else "")
        elif prev["gid"] != h["gid"]:
            what = f"moved from {prev['gid']}" if h["this_entity"] else f"moved to {h['gid']}"
        elif prev["written_hash"] != h["written_hash"]:
            what = "written by the sync"
        else:
            what = "link changed"
        before[h["record"]] = h
        lines.append(f"  v{h['from_version']:<4} {_t(h['from_at'])}  {h['record']}: {what}")
        if h["to_version"] is not None and not any(
                o["record"] == h["record"] and o["from_version"] == h["to_version"] for o in doc["history"]):
            lines.append(f"  v{h['to_version']:<4} {_t(h['to_at'])}  {h['record']}: unlinked")
    if not doc["history"]:
        lines.append("  no link versions yet")
    return "\n".join(lines)


def to_json(docs: list[dict[str, Any]]) -> str:
    return json.dumps(docs, default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o),
                      ensure_ascii=False, indent=2)
