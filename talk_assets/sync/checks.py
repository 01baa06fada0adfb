"""Asset checks that stop bad data before it is pushed.

Blocking checks fail (ERROR) when the data shows a bug in merging or mapping rather than one bad
record: a record linked to two entities, unrelated records collapsed into one, or more than
`TALK_CHECK_MAX_BAD_SHARE` (default 5 %, and at least `TALK_CHECK_MIN_BAD_ROWS`, default 10) of a
target's rows missing required fields or references. A failed blocking check stops the pushes
downstream of its asset in the same run (Dagster skips them), in the UI and in `talk-assets sync`.
Below the threshold the check passes and its metadata lists the records that the push will reject
one by one (as dead letters or waiting rows); everything else goes through.

Each check runs in the step of the asset it checks (`check_specs`): one step less per check, and
a blocking check that fails fails that step after its materialization, so Dagster skips what
depends on it in the same run.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import duckdb
import pandas as pd

from talk_assets.settings import settings
from talk_assets.sync.declaration import GENERIC_MAILBOXES, REFERENCES, REQUIRED, View
from talk_assets.sync.mapping import payload_fields
from talk_assets.sync.merge import MERGE_BUILDS_KEPT, table
from talk_assets.sync.store import connect, first

PREVIEW_ROWS = 8


def md_table(df: pd.DataFrame, limit: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A small markdown preview (no extra dependency for `to_markdown`)."""
    df = df.head(limit)
    if df.empty:
        return dg.MetadataValue.md("_(no rows)_")
    cols = [str(c) for c in df.columns]

    def cell(v: object) -> str:
        text = "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")[:80]

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return dg.MetadataValue.md("\n".join(lines))


def max_bad_share() -> float:
    return settings().check_max_bad_share


def min_bad_rows() -> int:
    """Below this many bad rows a check passes, whatever the share (small datasets)."""
    return settings().check_min_bad_rows


# -- checks of the link table and the merges: what changed since the state last passed -----------------
# A violation of these checks is a group of rows (one record's links, one entity's records in one view,
# one entity's members): when the whole state passed at some point, a group that violates now holds a row
# that changed since. After a pass only those groups are read (~0.5 s per check at 1M rows otherwise);
# after a failure, without a stored result (a new or older state file) or when what changed since is
# not known any more, everything. cycle_state row "checked:<check>": "<version or build>:<violations>".
def _since_passed(con: duckdb.DuckDBPyConnection, check: str, current: int | None, oldest: int = 0) -> int | None:
    """The version (or build) at which `check` last found nothing, if the changes since it are known
    (it is at least `oldest` and not after `current`)."""
    row = first(con, "SELECT value FROM cycle_state WHERE name = ?", [f"checked:{check}"])
    if current is None or row is None:
        return None
    at, bad = (int(x) for x in row[0].split(":"))
    return at if bad == 0 and oldest <= at <= current else None


def _remember(con: duckdb.DuckDBPyConnection, check: str, current: int | None, violations: int) -> None:
    if current is not None:
        con.execute("INSERT OR REPLACE INTO cycle_state VALUES (?, ?, now())",
                    [f"checked:{check}", f"{current}:{violations}"])


def _checked(since: int | None, what: str) -> dict[str, str]:
    return {"checked": "everything" if since is None else what.format(since)}


def _link_scope(con: duckdb.DuckDBPyConnection, check: str) -> tuple[int | None, int | None]:
    """(the link table's version, the version since which only the rows changed need a look: a row that was
    not current then has `valid_from` after it in `links_history`; the check runs after `record_version`,
    so `links` is the last version)."""
    current = first(con, "SELECT max(version) FROM link_versions")[0]
    return current, _since_passed(con, check, current)


LINKS_SINCE = "the records linked, moved or written since link version {}"


def linked_once(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """No record is linked to two global entities."""
    current, since = _link_scope(con, "record_linked_once")
    within = "" if since is None else \
        "WHERE nsid IN (SELECT nsid FROM links_history WHERE valid_from > $since AND valid_to IS NULL)"
    bad = con.execute(f"SELECT nsid, list(DISTINCT gid ORDER BY gid) AS gids FROM links {within} GROUP BY nsid "
                      "HAVING count(DISTINCT gid) > 1 ORDER BY nsid LIMIT 20",
                      {"since": since} if within else {}).df()
    _remember(con, "record_linked_once", current, len(bad))
    return dg.AssetCheckResult(check_name="record_linked_once", passed=bad.empty,
                               metadata={"records_linked_twice": len(bad), "examples": md_table(bad),
                                         **_checked(since, LINKS_SINCE)})


def records_per_system(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Each global entity has at most one record per view."""
    current, since = _link_scope(con, "one_record_per_system")
    scope = "links" if since is None else \
        ("links JOIN (SELECT DISTINCT gid, view FROM links_history WHERE valid_from > $since AND valid_to IS NULL) "
         "USING (gid, view)")
    params = {"since": since} if since is not None else {}
    groups = f"SELECT gid, view, list(record_id ORDER BY record_id) AS records FROM {scope} GROUP BY gid, view " \
             "HAVING count(*) > 1"
    dupes = con.execute(f"{groups} ORDER BY gid, view LIMIT 20", params).df()
    n = int(first(con, f"SELECT count(*) FROM ({groups})", params)[0])
    _remember(con, "one_record_per_system", current, n)
    return dg.AssetCheckResult(check_name="one_record_per_system", passed=n == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"duplicates": n, "examples": md_table(dupes), **_checked(since, LINKS_SINCE)})


MERGE_SINCE = "the entities merged again since merge build {}"


def not_collapsed(con: duckdb.DuckDBPyConnection, gtype: str) -> dg.AssetCheckResult:
    """`customers_not_collapsed` or `products_not_collapsed` on the type's merge. What is read: the entities
    the merge builds since the last pass changed (`merge_changes`, before and after; a build that logged no
    entity was whole), every entity when one of them was whole or the log does not reach back."""
    check = f"{gtype}s_not_collapsed"
    current = int(first(con, "SELECT coalesce(max(build), 0) FROM merge_changes WHERE global_type = ?", [gtype])[0])
    since = _since_passed(con, check, current, oldest=current - MERGE_BUILDS_KEPT)
    if since is not None and first(con, "SELECT count(*) FROM merge_changes WHERE global_type = ? AND build > ? "
                                        "AND gid IS NULL", [gtype, since])[0]:
        since = None
    within = "" if since is None else \
        "AND gid IN (SELECT gid FROM merge_changes WHERE global_type = $gtype AND build > $since)"
    params = {"gtype": gtype, "since": since} if within else {}
    if gtype == "customer":
        generic = ", ".join(f"'{m}'" for m in GENERIC_MAILBOXES)
        sql = f"""
            SELECT gid, list(DISTINCT organization_number) FILTER (WHERE organization_number IS NOT NULL) AS org_numbers
            FROM nodes_customer JOIN members_customer USING (nsid) WHERE true {within} GROUP BY gid
            HAVING count(DISTINCT organization_number) > 1
                OR (count(*) FILTER (WHERE split_part(email, '@', 1) IN ({generic}) AND is_person = 'true') > 0
                    AND count(*) FILTER (WHERE is_person = 'true') > 1)
            ORDER BY gid LIMIT 20"""
    else:
        sql = (f"SELECT gid, list(DISTINCT sku ORDER BY sku) AS skus FROM nodes_product JOIN members_product USING (nsid) "
               f"WHERE sku IS NOT NULL {within} GROUP BY gid HAVING count(DISTINCT sku) > 1 "
               "ORDER BY gid LIMIT 20")
    bad = con.execute(sql, params).df()
    _remember(con, check, current, len(bad))
    return dg.AssetCheckResult(check_name=check, passed=bad.empty,
                               metadata={"collapsed_entities": len(bad), "examples": md_table(bad),
                                         **_checked(since, MERGE_SINCE)})


def _on_state(fn: Callable[..., dg.AssetCheckResult], *args: str) -> Callable[[], dg.AssetCheckResult]:
    """A check as its asset's step runs it: on the state file."""
    def run() -> dg.AssetCheckResult:
        with connect() as con:
            return fn(con, *args)
    return run


def _share_result(name: str, bad_rows: int, total: int, examples: object, what: str,
                  rejected: list[str] | None = None) -> dg.AssetCheckResult:
    """Fails (ERROR, blocking the push) above both thresholds; passes otherwise, naming the rows that
    will be rejected one by one."""
    share = bad_rows / total if total else 0.0
    limit, floor = max_bad_share(), min_bad_rows()
    blocked = share > limit and bad_rows >= floor
    verdict = (f"{bad_rows} of {total} rows ({share:.1%}) is more than {limit:.0%} (TALK_CHECK_MAX_BAD_SHARE) and "
               f"at least {floor} rows (TALK_CHECK_MIN_BAD_ROWS): the push is held") if blocked else \
        f"{bad_rows} row(s) will be rejected one by one at push time; the rest goes through"
    return dg.AssetCheckResult(
        check_name=name,
        passed=not blocked,
        severity=dg.AssetCheckSeverity.ERROR,
        description=verdict,
        metadata={what: bad_rows, "rows": total, "share": round(share, 4), "max_share": limit,
                  "min_bad_rows": floor, "verdict": verdict, "examples": examples,
                  "rejected": dg.MetadataValue.md("\n".join(f"- {r}" for r in rejected or []) or "none")},
    )


def _required_fields(view: View) -> list[str]:
    return [f for f, p, _ in payload_fields(view) if p in REQUIRED[view.global_type]]


def build_required_check(view: View) -> Callable[[], dg.AssetCheckResult]:
    """Counts the rows the push would write with a required field empty: creates (the mapping holds
    those, so normally none) and updates that would clear one. Rows the mapping holds (`held`) are not
    written at all and are not counted: persons without an e-mail stay held for good, and counting
    them failed this check in every cycle once ten existed, holding every push of the type."""
    fields = _required_fields(view)

    def _check() -> dg.AssetCheckResult:
        mapped = table('mapped', view.vkey)
        empty = {f: f"(nullif(payload->>'$.\"{f}\"', '') IS NULL OR payload->>'$.\"{f}\"' = '[]')" for f in fields}
        cond = " OR ".join(f"({e} AND (action = 'create' OR list_contains(changed_fields, '{f}')))"
                           for f, e in empty.items()) or "false"
        writes = "action IN ('create', 'update')"
        with connect() as con:
            # the rows to write and the held ones only: the JSON reads of `cond` over every mapped row
            # cost 0.1-0.16 s per view at ~130k rows, in every run that maps the view
            total, n, held = first(con, f"SELECT count(*) FILTER (WHERE {writes}), count(*) FILTER (WHERE {writes} AND ({cond})), "
                                   f"count(*) FILTER (WHERE action = 'held') FROM {mapped} "
                                   f"WHERE {writes} OR action = 'held'")
            bad = con.execute(f"SELECT gid, action, payload FROM {mapped} WHERE {writes} AND ({cond}) ORDER BY gid LIMIT 100").df()
        rejected = [f"{gid}: {', '.join(fields)} empty" for gid in bad["gid"]]
        res = _share_result("required_fields", int(n), int(total), md_table(bad), "missing_required", rejected)
        return dg.AssetCheckResult(check_name=res.check_name, passed=res.passed, severity=res.severity,
                                   description=res.description, metadata={**res.metadata, "held": int(held)})

    return _check


def build_reference_check(view: View) -> Callable[[], dg.AssetCheckResult]:
    refs = [(f, p) for f, p, _ in payload_fields(view) if p in REFERENCES]

    def _check() -> dg.AssetCheckResult:
        parts = []
        for _f, p in refs:
            merged = table("merged", view.global_type)
            parts.append(
                f"SELECT m.gid, '{p}' AS reference, g.{p} AS target FROM {table('mapped', view.vkey)} m "
                f"JOIN {merged} g USING (gid) WHERE m.action <> 'unchanged' AND g.{p} LIKE 'unresolved:%'"
            )
        with connect() as con:
            # the rows to write, and of those the ones whose reference is made when its target is created
            no_ref = " OR ".join(f"(payload->>'$.\"{f}\"') IS NULL" for f, _ in refs)
            total, pending = first(con, f"SELECT count(*), count(*) FILTER (WHERE {no_ref}) "
                                        f"FROM {table('mapped', view.vkey)} WHERE action <> 'unchanged'")
            bad = con.execute(" UNION ALL ".join(parts)).df()
        rejected = [f"{r.gid}: {r.reference} {r.target}" for r in bad.head(100).itertuples()]
        res = _share_result("references_resolvable", len(bad), int(total), md_table(bad), "unresolved", rejected)
        return dg.AssetCheckResult(check_name="references_resolvable", passed=res.passed, severity=res.severity, description=res.description,
                                   metadata={**res.metadata, "create_if_referenced": int(pending)})

    return _check


# -- which checks run in which asset's step ----------------------------------------------------------
Checks = list[tuple[dg.AssetCheckSpec, Callable[[], dg.AssetCheckResult]]]


def links_checks(key: dg.AssetKey) -> Checks:
    return [
        (dg.AssetCheckSpec("record_linked_once", asset=key, blocking=True,
                           description="No record is linked to two global entities."), _on_state(linked_once)),
        (dg.AssetCheckSpec("one_record_per_system", asset=key,
                           description="Each global entity has at most one record per system view (duplicates "
                                       "inside one system are reported, the first record is the one kept in sync)."),
         _on_state(records_per_system)),
    ]


def merge_checks(gtype: str, key: dg.AssetKey) -> Checks:
    if gtype == "customer":
        return [(dg.AssetCheckSpec(
            "customers_not_collapsed", asset=key, blocking=True,
            description="The merge did not collapse unrelated customers: no global customer has two different "
                        "organisation numbers, and no generic mailbox (post@, info@...) joins persons."),
            _on_state(not_collapsed, gtype))]
    if gtype == "product":
        return [(dg.AssetCheckSpec(
            "products_not_collapsed", asset=key, blocking=True,
            description="The merge did not collapse different products: one SKU per global product."),
            _on_state(not_collapsed, gtype))]
    return []


def mapped_checks(view: View, key: dg.AssetKey) -> Checks:
    out: Checks = []
    fields = _required_fields(view)
    if fields:
        out.append((dg.AssetCheckSpec(
            "required_fields", asset=key, blocking=True,
            description=f"The {view.name} rows the push would write keep the fields {view.system} requires "
                        f"({', '.join(fields)}). New records without them are held by the mapping (not counted); "
                        "a few bad writes pass and are listed (the push refuses them one by one); a large share "
                        "fails and holds the pushes that depend on this mapping."), build_required_check(view)))
    refs = [p for _, p, _ in payload_fields(view) if p in REFERENCES]
    if refs:
        out.append((dg.AssetCheckSpec(
            "references_resolvable", asset=key, blocking=True,
            description=f"Every {view.name}'s {', '.join(refs)} resolves: to a record {view.system} has, or to an "
                        "entity that will be created there when referenced."), build_reference_check(view)))
    return out


def specs(checks: Checks) -> list[dg.AssetCheckSpec]:
    return [spec for spec, _ in checks]


def evaluate(checks: Checks) -> list[dg.AssetCheckResult]:
    return [run() for _, run in checks]
