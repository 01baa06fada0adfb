"""merge_map: the real merge + map of customers versus one hand-written DuckDB statement.

N customers per system for Shopify, PowerOffice GO and Custom CRM are generated straight into
`raw_versions` / `raw_current` (the shape `collect_records` stores: one row per version, payload
as the API's JSON, md5 content hash), with overlapping e-mails (Shopify i, PowerOffice i + N/2,
CRM i + N/4) and a second, older version for every tenth record. Each side then runs in a fresh
process so its peak resident memory is its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import PeakRss, Recorder, Result, timer

SIZES = {"quick": [10_000, 100_000], "full": [10_000, 100_000, 1_000_000]}

_NAMES = "['Ola','Kari','Nora','Emma','Jakob','Lukas','Ingrid','Sofie','Henrik','Magnus','Ida','Thea','Åse']"
_LAST = "['Hansen','Johansen','Olsen','Larsen','Berg','Haugen','Dahl','Lie','Strand','Moen','Nilsen']"
_CITIES = "['Oslo','Bergen','Trondheim','Stavanger','Tromsø','Bodø']"

# one CTE per system: (record_id, changed_at, payload) for version v (0 = current, 1 = an older one)
_GEN = {
    ("shopify", "customer"): """
        SELECT i::VARCHAR AS record_id, ts, json_object(
            'id', i, 'email', 'user' || (i) || '@example.com',
            'first_name', {names}[1 + (i + v) % 13], 'last_name', {last}[1 + i % 11],
            'updated_at', strftime(ts, '%Y-%m-%dT%H:%M:%S+00:00'), 'state', 'enabled',
            'default_address', json_object('company', NULL, 'phone', '9' || lpad((i % 9999999)::VARCHAR, 7, '0'),
                'address1', 'Storgata ' || (i % 200), 'address2', NULL, 'zip', lpad((i % 9000)::VARCHAR, 4, '0'),
                'city', {cities}[1 + i % 6], 'country_code', 'NO')) AS payload
        FROM gen""",
    ("poweroffice", "customers"): """
        SELECT i::VARCHAR AS record_id, ts, json_object(
            'Id', i, 'Number', 10000 + i, 'EmailAddress', 'User' || (i + {half}) || '@example.com',
            'FirstName', {names}[1 + (i + v + 3) % 13], 'LastName', {last}[1 + (i + 1) % 11],
            'Name', {names}[1 + (i + v + 3) % 13] || ' ' || {last}[1 + (i + 1) % 11], 'IsPerson', true,
            'PhoneNumber', '+47 9' || lpad((i % 9999999)::VARCHAR, 7, '0'), 'OrganizationNumber', NULL,
            'MailAddress', json_object('AddressLine1', 'Kirkegata ' || (i % 150), 'AddressLine2', NULL,
                'ZipCode', lpad((i % 9000)::VARCHAR, 4, '0'), 'City', {cities}[1 + (i + 2) % 6], 'CountryCode', 'NO'),
            'LastChangedDateTimeOffset', strftime(ts, '%Y-%m-%dT%H:%M:%S+00:00')) AS payload
        FROM gen""",
    ("customcrm", "customers"): """
        SELECT i::VARCHAR AS record_id, ts, json_object(
            'id', i, 'email', 'user' || (i + {quarter}) || '@example.com', 'customer_type', 'person',
            'name', {names}[1 + (i + v + 7) % 13] || ' ' || {last}[1 + (i + 4) % 11], 'organization_number', NULL,
            'phone', '9' || lpad((i % 9999999)::VARCHAR, 7, '0'), 'website', CASE WHEN i % 5 = 0 THEN 'https://x' || i || '.no' END,
            'street_address1', 'Parkveien ' || (i % 90), 'street_address2', NULL, 'zip_code', lpad((i % 9000)::VARCHAR, 4, '0'),
            'city', {cities}[1 + (i + 4) % 6], 'country', 'no', 'updated_at', strftime(ts, '%Y-%m-%dT%H:%M:%S+00:00'),
            'version', 1 + v) AS payload
        FROM gen""",
}


def generate(path: Path, n: int) -> None:
    """Fill `raw_versions` / `raw_current` with n customers per system (bulk SQL, collect's row shape)."""
    from talk_assets.sync.store import connect

    with connect(path) as con:
        for k, (system, entity) in enumerate(_GEN):
            body = _GEN[(system, entity)].format(names=_NAMES, last=_LAST, cities=_CITIES, half=n // 2, quarter=n // 4)
            # v = 0: current version; v = 1: an older version of every tenth record
            gen = (f"WITH gen AS (SELECT i, v, TIMESTAMPTZ '2026-10-01 00:00:00+00' - to_seconds(((i * 7919 + {k} * 104729) "
                   f"% 20000000) + v * 86400) AS ts FROM range({n}) r(i), range(2) w(v) WHERE v = 0 OR i % 10 = 0)")
            con.execute(
                f"INSERT INTO raw_versions {gen} SELECT '{system}', '{entity}', record_id, md5(payload::VARCHAR), ts, "
                f"TIMESTAMPTZ '2026-10-02 00:00:00+00' - to_seconds(0), payload FROM ({body})"
            )
        con.execute(
            "INSERT INTO raw_current SELECT DISTINCT ON (system, entity, record_id) system, entity, record_id, hash, "
            "changed_at, collected_at, payload, false FROM raw_versions ORDER BY system, entity, record_id, changed_at DESC"
        )
        con.execute("CHECKPOINT")


# The same work as the engine's merge_type('customer') + map_view(customer views), written by hand
# for this data: every stored version in canonical form, the time each property's value appeared
# (a window over each record's versions), entities by e-mail (the only merge key these records
# carry), the latest non-empty value per property (ties to the larger record id), and what
# Shopify and PowerOffice GO should hold: payload, current values, changed fields and action.
# The other customer views (Custom CRM, Custom Webshop, PowerOffice organisations) have no rows
# to map here. The engine is general (transitive keys, unsafe mailboxes, links, provenance);
# this statement knows the data, so it is the cheapest correct version of the same result.
_PHONE = ("nullif(CASE WHEN regexp_full_match(regexp_replace({v}, '[ \\-]', '', 'g'), '[0-9]{{8}}') "
          "THEN '+47' || regexp_replace({v}, '[ \\-]', '', 'g') ELSE regexp_replace({v}, '[ \\-]', '', 'g') END, '')")
_PROPS = ("email", "first_name", "last_name", "organization_name", "is_person", "phone", "address_line1",
          "address_line2", "zip_code", "city", "country_code", "website")


def _hand_sql() -> str:
    t = "nullif(trim({}), '')"
    company = "coalesce(payload->>'$.customer_type', 'company') = 'company'"
    ver = {
        "shopify-customer": ("system = 'shopify' AND entity = 'customer'", {
            "email": "nullif(lower(trim(payload->>'$.email')), '')",
            "first_name": t.format("payload->>'$.first_name'"), "last_name": t.format("payload->>'$.last_name'"),
            "organization_name": t.format("payload->>'$.default_address.company'"),
            "is_person": "CASE WHEN nullif(trim(payload->>'$.default_address.company'), '') IS NULL THEN 'true' ELSE 'false' END",
            "phone": _PHONE.format(v="payload->>'$.default_address.phone'"),
            "address_line1": t.format("payload->>'$.default_address.address1'"),
            "address_line2": t.format("payload->>'$.default_address.address2'"),
            "zip_code": t.format("payload->>'$.default_address.zip'"), "city": t.format("payload->>'$.default_address.city'"),
            "country_code": "nullif(upper(trim(payload->>'$.default_address.country_code')), '')", "website": "NULL"}),
        "poweroffice-customers": ("system = 'poweroffice' AND entity = 'customers' AND payload->>'$.IsPerson' = 'true'", {
            "email": "nullif(lower(trim(payload->>'$.EmailAddress')), '')",
            "first_name": t.format("payload->>'$.FirstName'"), "last_name": t.format("payload->>'$.LastName'"),
            "organization_name": "NULL", "is_person": "lower(payload->>'$.IsPerson')",
            "phone": _PHONE.format(v="payload->>'$.PhoneNumber'"),
            "address_line1": t.format("payload->>'$.MailAddress.AddressLine1'"),
            "address_line2": t.format("payload->>'$.MailAddress.AddressLine2'"),
            "zip_code": t.format("payload->>'$.MailAddress.ZipCode'"), "city": t.format("payload->>'$.MailAddress.City'"),
            "country_code": "nullif(upper(trim(payload->>'$.MailAddress.CountryCode')), '')", "website": "NULL"}),
        "customcrm-customers": ("system = 'customcrm' AND entity = 'customers'", {
            "email": "nullif(lower(trim(payload->>'$.email')), '')",
            "first_name": f"CASE WHEN NOT {company} THEN nullif(regexp_extract(trim(payload->>'$.name'), '^(.*\\S)\\s+\\S+$', 1), '') END",
            "last_name": f"CASE WHEN NOT {company} THEN nullif(regexp_extract(trim(payload->>'$.name'), '(\\S+)$', 1), '') END",
            "organization_name": f"CASE WHEN {company} THEN nullif(trim(payload->>'$.name'), '') END",
            "is_person": "CASE WHEN payload->>'$.customer_type' = 'person' THEN 'true' "
                         "WHEN payload->>'$.customer_type' = 'company' THEN 'false' END",
            "phone": _PHONE.format(v="payload->>'$.phone'"),
            "address_line1": t.format("payload->>'$.street_address1'"),
            "address_line2": t.format("payload->>'$.street_address2'"),
            "zip_code": t.format("payload->>'$.zip_code'"), "city": t.format("payload->>'$.city'"),
            "country_code": "nullif(upper(trim(payload->>'$.country')), '')", "website": t.format("payload->>'$.website'")}),
    }
    versions = " UNION ALL ".join(
        f"SELECT '{ns}:' || record_id AS nsid, '{ns}' AS ns, changed_at AS ts, collected_at, "
        + ", ".join(f"{expr} AS {p}" for p, expr in cols.items()) + f" FROM raw_versions WHERE {cond}"
        for ns, (cond, cols) in ver.items()
    )
    marks = ", ".join(f"{p}, CASE WHEN {p} IS DISTINCT FROM lag({p}) OVER w THEN ts END AS {p}_ts" for p in _PROPS)
    latest = ", ".join(f"arg_max({p}, (ts, collected_at)) AS {p}, max({p}_ts) AS {p}_ts" for p in _PROPS)
    wins = ", ".join(f"arg_max({p}, (coalesce({p}_ts, TIMESTAMPTZ 'infinity'), nsid)) FILTER (WHERE {p} <> '') AS {p}"
                     for p in _PROPS)

    def mapped(view: str, ns: str, fields: dict[str, str], creates: bool) -> str:
        want = {f: e.format(x="g") for f, e in fields.items()}
        have = {f: e.format(x="h") for f, e in fields.items()}
        changed = ", ".join(f"CASE WHEN nullif({want[f]}, '') IS NOT NULL AND {want[f]} IS DISTINCT FROM {have[f]} "
                            f"THEN '{f}' END" for f in fields)
        payload = ", ".join(f"'{f}', {want[f]}" for f in fields)
        current = ", ".join(f"'{f}', {have[f]}" for f in fields)
        # linked: the view's record shares its entity with any other record (with or without a dataflow)
        linked = f"(SELECT email FROM cur WHERE ns = '{ns}' INTERSECT SELECT email FROM cur WHERE ns <> '{ns}')"
        rows = f"(SELECT email FROM cur WHERE ns = 'poweroffice-customers' UNION {linked})" if creates else linked
        return f"""SELECT '{view}' AS view, g.email, h.record_id,
                   list_filter([{changed}], lambda c: c IS NOT NULL) AS changed_fields,
                   json_object({payload}) AS payload, json_object({current}) AS current
            FROM merged g SEMI JOIN {rows} r USING (email)
            LEFT JOIN (SELECT DISTINCT ON (email) split_part(nsid, ':', 2) AS record_id, * FROM cur WHERE ns = '{ns}'
                       ORDER BY email, nsid) h USING (email)"""

    same = {"email": "{x}.email", "first_name": "{x}.first_name", "last_name": "{x}.last_name"}
    address = ("address_line1", "address_line2", "zip_code", "city", "country_code")
    shopify = {**same, "default_address.company": "{x}.organization_name", "default_address.phone": "{x}.phone",
               **dict(zip(("default_address.address1", "default_address.address2", "default_address.zip",
                           "default_address.city", "default_address.country_code"), (f"{{x}}.{a}" for a in address), strict=True))}
    poweroffice = {"EmailAddress": "{x}.email", "FirstName": "{x}.first_name", "LastName": "{x}.last_name",
                   "Name": "trim(concat_ws(' ', {x}.first_name, {x}.last_name))", "PhoneNumber": "{x}.phone",
                   **dict(zip(("MailAddress.AddressLine1", "MailAddress.AddressLine2", "MailAddress.ZipCode",
                               "MailAddress.City", "MailAddress.CountryCode"), (f"{{x}}.{a}" for a in address), strict=True))}
    return f"""
CREATE OR REPLACE TABLE hand_mapped AS
WITH versions AS ({versions}),
marked AS (SELECT nsid, ns, ts, collected_at, {marks} FROM versions WINDOW w AS (PARTITION BY nsid ORDER BY ts, collected_at)),
cur AS (SELECT nsid, any_value(ns) AS ns, {latest} FROM marked GROUP BY nsid),
merged AS (SELECT email, count(*) AS records, {wins} FROM cur WHERE email IS NOT NULL GROUP BY email),
rows AS ({mapped('shopify.customer', 'shopify-customer', shopify, True)}
         UNION ALL {mapped('poweroffice.customers_person', 'poweroffice-customers', poweroffice, False)})
SELECT view, email, record_id, CASE WHEN record_id IS NULL THEN 'create' WHEN len(changed_fields) > 0 THEN 'update'
       ELSE 'unchanged' END AS action, changed_fields, payload, current, md5(payload::VARCHAR) AS payload_hash
FROM rows
"""


HAND_SQL = _hand_sql()
# what both sides must agree on: per mapped view and action, the rows and their payloads
_AGREE = ("SELECT view, action, count(*), bit_xor(hash(payload_hash)) FROM {t} "
          "WHERE view IN ('shopify.customer', 'poweroffice.customers_person') GROUP BY ALL ORDER BY ALL")


def worker(path: str, mode: str) -> dict[str, Any]:
    """Run one side on the state file and report seconds, peak RSS and output row counts."""
    with ExitStack() as stack:
        return _work(stack, path, mode)


def _work(stack: ExitStack, path: str, mode: str) -> dict[str, Any]:
    from talk_assets.sync.mapping import map_view, target_views
    from talk_assets.sync.merge import merge_type
    from talk_assets.sync.store import connect, rebuilding

    # the engine's own connection (its settings, e.g. TALK_DUCKDB_MEMORY_LIMIT), for both sides
    con = stack.enter_context(connect(path))
    con.execute("SET enable_progress_bar = false")
    if mode == "real":
        con.execute("DELETE FROM derived_state")  # a first build each time: nothing earlier to keep
        # mapping customers reads the order tables (customers created when an order references
        # them); there are no orders here, so these merges are empty and stay outside the timing
        for other in ("user", "product", "order"):
            merge_type(con, other)
    out: dict[str, Any] = {}
    with PeakRss() as mem, timer() as t:
        if mode == "hand":
            with rebuilding(con):  # the engine's setting for derived tables, so only the SQL differs
                con.execute(HAND_SQL)
        else:
            with timer() as tm:
                res = merge_type(con, "customer")
            out["merge_s"] = tm["s"]
            out["entities"], out["merged_groups"], out["iterations"] = res.entities, res.merged_groups, res.iterations
            with timer() as tp:
                out["mapped"] = {v.vkey: map_view(con, v).rows for v in target_views() if v.global_type == "customer"}
            out["map_s"] = tp["s"]
    mapped = ("(SELECT 'shopify.customer' AS view, action, payload_hash FROM mapped_shopify_customer UNION ALL "
              "SELECT 'poweroffice.customers_person', action, payload_hash FROM mapped_poweroffice_customers_person)")
    out["agree"] = [list(r) for r in con.execute(_AGREE.format(t="hand_mapped" if mode == "hand" else mapped)).fetchall()]
    out.update(seconds=t["s"], peak_mb=mem.peak_mb)
    return out


def _in_child(path: Path, mode: str, memory_limit: str | None = None) -> dict[str, Any]:
    env = dict(os.environ, **({"TALK_DUCKDB_MEMORY_LIMIT": memory_limit} if memory_limit else {}))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.merge_map", str(path), mode],
                          capture_output=True, text=True, timeout=3600, env=env,
                          cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode:
        raise RuntimeError(f"merge_map worker {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# DuckDB's own default memory budget (80 % of RAM), against the engine's default (store.DEFAULT_MEMORY_LIMIT)
UNBOUNDED = f"{int(psutil.virtual_memory().total * 0.8 / 2**30)}GB"


def _compare(rec: Recorder, path: Path, n: int, budget: str | None) -> None:
    """Both sides on the same data with the same memory budget (None: the engine's default)."""
    from talk_assets.sync.store import DEFAULT_MEMORY_LIMIT

    real = _in_child(path, "real", budget)
    hand = _in_child(path, "hand", budget)
    rows = {f"{v} {a}": c for v, a, c, _h in real["agree"]}
    same = real["agree"] == hand["agree"]
    label = f"memory budget {budget or DEFAULT_MEMORY_LIMIT}" + (" (DuckDB's default)" if budget else " (the default)")
    print(f"  {label}: mapped rows {rows}; hand-written SQL {'agrees (rows and payload checksums)' if same else 'DISAGREES'}")
    note = (f"{label}; merge {real['merge_s']:.2f}s + map {real['map_s']:.2f}s, {real['iterations']} label iterations; "
            f"{real['entities']:,} entities, {real['merged_groups']:,} merged; mapped rows and payloads "
            + ("identical to the hand-written SQL's" if same else f"DIFFER: real {real['agree']} hand {hand['agree']}"))
    suffix = f" budget={budget}" if budget else ""
    rec.add(Result(f"merge_map.time n={n}{suffix}", real["seconds"], "s", "hand-written SQL", hand["seconds"], n,
                   note=note))
    rec.add(Result(f"merge_map.peak_rss n={n}{suffix}", real["peak_mb"], "MB", "hand-written SQL", hand["peak_mb"], n))


def run(rec: Recorder, profile: str) -> None:
    print("merge_map: real merge_type('customer') + map_view(customer views) vs one hand-written SQL statement")
    for n in SIZES[profile]:
        tmp = Path(tempfile.mkdtemp(prefix="bench-merge-"))
        try:
            path = tmp / "talk.duckdb"
            with timer() as tg:
                generate(path, n)
            print(f"  n={n:,} per system (3 systems, {n // 10:,} records with two versions): generated in {tg['s']:.1f}s")
            budgets: list[str | None] = [None]
            if n == SIZES[profile][-1] and profile == "full":
                budgets.append(UNBOUNDED)  # the largest size also with DuckDB's own default budget
            for budget in budgets:
                _compare(rec, path, n, budget)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1], sys.argv[2])))
