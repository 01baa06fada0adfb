"""merge_map: the real merge + map of customers versus one hand-written DuckDB statement.

N customers per system for Shopify, PowerOffice GO and Custom CRM are generated straight into
`raw_versions` / `raw_current` (the shape `collect_records` stores: one row per version, payload
as the API's JSON, md5 content hash), with overlapping e-mails (Shopify i, PowerOffice i + N/2,
CRM i + N/4) and a second, older version for every tenth record. Each side then runs in a fresh
process so its peak resident memory is its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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


HAND_SQL = """
CREATE OR REPLACE TABLE hand_merged AS
WITH recs AS (
    SELECT lower(trim(payload->>'$.email')) AS email, changed_at AS ts,
           payload->>'$.first_name' AS first_name, payload->>'$.last_name' AS last_name,
           payload->>'$.default_address.phone' AS phone, payload->>'$.default_address.address1' AS address_line1,
           payload->>'$.default_address.address2' AS address_line2, payload->>'$.default_address.zip' AS zip_code,
           payload->>'$.default_address.city' AS city, upper(payload->>'$.default_address.country_code') AS country_code,
           NULL AS website
    FROM raw_current WHERE system = 'shopify' AND entity = 'customer'
    UNION ALL
    SELECT lower(trim(payload->>'$.EmailAddress')), changed_at, payload->>'$.FirstName', payload->>'$.LastName',
           payload->>'$.PhoneNumber', payload->>'$.MailAddress.AddressLine1', payload->>'$.MailAddress.AddressLine2',
           payload->>'$.MailAddress.ZipCode', payload->>'$.MailAddress.City', upper(payload->>'$.MailAddress.CountryCode'),
           NULL
    FROM raw_current WHERE system = 'poweroffice' AND entity = 'customers'
    UNION ALL
    SELECT lower(trim(payload->>'$.email')), changed_at, regexp_extract(payload->>'$.name', '^(.*\\S)\\s+\\S+$', 1),
           regexp_extract(payload->>'$.name', '(\\S+)$', 1), payload->>'$.phone', payload->>'$.street_address1',
           payload->>'$.street_address2', payload->>'$.zip_code', payload->>'$.city', upper(payload->>'$.country'),
           payload->>'$.website'
    FROM raw_current WHERE system = 'customcrm' AND entity = 'customers'
)
SELECT email, count(*) AS records,
       arg_max(first_name, ts) FILTER (WHERE nullif(first_name, '') IS NOT NULL) AS first_name,
       arg_max(last_name, ts) FILTER (WHERE nullif(last_name, '') IS NOT NULL) AS last_name,
       arg_max(phone, ts) FILTER (WHERE nullif(phone, '') IS NOT NULL) AS phone,
       arg_max(address_line1, ts) FILTER (WHERE nullif(address_line1, '') IS NOT NULL) AS address_line1,
       arg_max(address_line2, ts) FILTER (WHERE nullif(address_line2, '') IS NOT NULL) AS address_line2,
       arg_max(zip_code, ts) FILTER (WHERE nullif(zip_code, '') IS NOT NULL) AS zip_code,
       arg_max(city, ts) FILTER (WHERE nullif(city, '') IS NOT NULL) AS city,
       arg_max(country_code, ts) FILTER (WHERE nullif(country_code, '') IS NOT NULL) AS country_code,
       arg_max(website, ts) FILTER (WHERE nullif(website, '') IS NOT NULL) AS website
FROM recs WHERE email IS NOT NULL AND email <> '' GROUP BY email
"""


def worker(path: str, mode: str) -> dict[str, Any]:
    """Run one side on the state file and report seconds, peak RSS and output row counts."""
    import duckdb

    from talk_assets.sync.mapping import map_view, target_views
    from talk_assets.sync.merge import merge_type
    from talk_assets.sync.store import SCHEMA

    con = duckdb.connect(path)
    con.execute(SCHEMA)
    if mode == "real":
        # mapping customers reads the order tables (customers created when an order references
        # them); there are no orders here, so these merges are empty and stay outside the timing
        for other in ("user", "product", "order"):
            merge_type(con, other)
    out: dict[str, Any] = {}
    with PeakRss() as mem, timer() as t:
        if mode == "hand":
            con.execute(HAND_SQL)
            out["entities"] = con.execute("SELECT count(*) FROM hand_merged").fetchone()[0]
            out["merged_groups"] = con.execute("SELECT count(*) FROM hand_merged WHERE records > 1").fetchone()[0]
        else:
            with timer() as tm:
                res = merge_type(con, "customer")
            out["merge_s"] = tm["s"]
            out["entities"], out["merged_groups"], out["iterations"] = res.entities, res.merged_groups, res.iterations
            with timer() as tp:
                out["mapped"] = {v.vkey: map_view(con, v).rows for v in target_views() if v.global_type == "customer"}
            out["map_s"] = tp["s"]
    con.close()
    out.update(seconds=t["s"], peak_mb=mem.peak_mb)
    return out


def _in_child(path: Path, mode: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.merge_map", str(path), mode],
                          capture_output=True, text=True, timeout=3600,
                          cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode:
        raise RuntimeError(f"merge_map worker {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(rec: Recorder, profile: str) -> None:
    print("merge_map: real merge_type('customer') + map_view(customer views) vs one hand-written SQL statement")
    for n in SIZES[profile]:
        tmp = Path(tempfile.mkdtemp(prefix="bench-merge-"))
        try:
            path = tmp / "talk.duckdb"
            with timer() as tg:
                generate(path, n)
            print(f"  n={n:,} per system (3 systems, {n // 10:,} records with two versions): generated in {tg['s']:.1f}s")
            real = _in_child(path, "real")
            hand = _in_child(path, "hand")
            note = (f"merge {real['merge_s']:.2f}s + map {real['map_s']:.2f}s, {real['iterations']} label iterations; "
                    f"entities real {real['entities']:,} / hand {hand['entities']:,}, merged groups "
                    f"{real['merged_groups']:,} / {hand['merged_groups']:,}")
            rec.add(Result(f"merge_map.time n={n}", real["seconds"], "s", "hand-written SQL", hand["seconds"], n,
                           note=note))
            rec.add(Result(f"merge_map.peak_rss n={n}", real["peak_mb"], "MB", "hand-written SQL", hand["peak_mb"], n))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1], sys.argv[2])))
