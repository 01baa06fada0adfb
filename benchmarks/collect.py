"""collect: Shopify customers from the sandbox into DuckDB: our client through a GraphQL bulk operation
(what a full read does), our client through GraphQL cursor paging (pages sized by query cost; what a read
of changes does), and dlt's rest_api source through REST paging (`customers.json`, limit 250, `Link`
header) as the baseline.

All read one Shopify sandbox with its rate limits off (the cost bucket too: the sandbox's standard-plan
bucket would make 100k paged customers a matter of the restore rate, not of the code), and all end with
the records in a DuckDB file: ours in `raw_versions` / `raw_current` (hash, versions), dlt's in its
normalised tables.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import PeakRss, Recorder, Result, Sandboxes, shopify_size_for, timer

COUNTS = {"quick": 100_000, "full": 100_000}
TOKEN_ENV = "TALK_SHOPIFY_ACCESS_TOKEN"


def ours(url: str, db: Path, mode: str = "bulk") -> tuple[float, int, float]:
    """Seconds, records stored and peak RSS (MB) of the engine's collect of all customers, read by a
    bulk operation (`mode="bulk"`) or by cost-sized GraphQL pages (`mode="paged"`)."""
    from datetime import UTC, datetime

    from talk_assets.config import SHOPIFY
    from talk_assets.core.http import Pacer
    from talk_assets.sync.collect import collect_records
    from talk_assets.sync.declaration import SOURCES_BY_KEY
    from talk_assets.sync.store import connect
    from talk_assets.systems.shopify.client import Client

    client = Client(url, SHOPIFY.value("access_token"), SHOPIFY.value("api_version"), pacer=Pacer())
    src = SOURCES_BY_KEY["shopify.customer"]
    with PeakRss() as mem, timer() as t:
        it = client.iter_records("customer") if mode == "bulk" else client.read_changes("customer", None)
        records = list(it)
        with connect(db) as con:
            res = collect_records(con, src, records, since=None, now=datetime.now(UTC))
    client.close()
    return t["s"], res.new, mem.peak_mb


def dlt_run(url: str, workdir: Path) -> tuple[float, int, float]:
    """Seconds, rows loaded and peak RSS (MB) of dlt's rest_api source into a duckdb destination."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from talk_assets.config import SHOPIFY

    config: dict[str, Any] = {
        "client": {
            "base_url": f"{url}/admin/api/{SHOPIFY.value('api_version')}/",
            "headers": {"X-Shopify-Access-Token": SHOPIFY.value("access_token")},
            "paginator": {"type": "header_link"},
        },
        "resources": [{
            "name": "customers",
            "primary_key": "id",
            "write_disposition": "replace",
            "endpoint": {"path": "customers.json", "params": {"limit": 250}, "data_selector": "customers"},
        }],
    }
    db = workdir / "dlt.duckdb"
    pipeline = dlt.pipeline(pipeline_name="bench_collect", destination=dlt.destinations.duckdb(str(db)),
                            dataset_name="shopify", pipelines_dir=str(workdir / "pipelines"))
    with PeakRss() as mem, timer() as t:
        pipeline.run(rest_api_source(config))
    with pipeline.sql_client() as sql:
        rows = sql.execute_sql("SELECT count(*) FROM customers")[0][0]
    return t["s"], int(rows), mem.peak_mb


def run(rec: Recorder, profile: str) -> None:
    n = COUNTS[profile]
    size = shopify_size_for(n)
    print(f"collect: Shopify customers (sandbox size {size:,}) -> DuckDB, ours vs dlt rest_api")
    tmp = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    try:
        with Sandboxes(["shopify"], size) as sb:
            sb.faults({"rate_limit_enabled": False})
            count = sb.stats("shopify")  # warm the connection
            del count
            sb.reset_stats()
            t_paged, stored_paged, mem_paged = ours(sb.urls["shopify"], tmp / "paged.duckdb", "paged")
            reads_paged = sum(sb.stats("shopify")["requests"].values())
            sb.reset_stats()
            t_ours, stored, mem_ours = ours(sb.urls["shopify"], tmp / "talk.duckdb", "bulk")
            reads_ours = sum(sb.stats("shopify")["requests"].values())
            sb.reset_stats()
            try:
                t_dlt, loaded, mem_dlt = dlt_run(sb.urls["shopify"], tmp)
            except Exception as exc:  # a baseline that cannot run is reported, not hidden
                print(f"  dlt failed: {type(exc).__name__}: {str(exc)[:500]}")
                t_dlt, loaded, mem_dlt = None, 0, None
            reads_dlt = sb.stats("shopify")["reads"]
        note = (f"GraphQL bulk stored {stored:,} in {reads_ours} requests; GraphQL paging {stored_paged:,} in "
                f"{reads_paged} requests; dlt (REST paging) loaded {loaded:,} in {reads_dlt} requests")
        rec.add(Result("collect.time", t_ours, "s", "dlt rest_api", t_dlt, stored, note=note))
        rec.add(Result("collect.time_graphql_paged", t_paged, "s", "dlt rest_api", t_dlt, stored_paged,
                       note=f"peak RSS {mem_paged:.0f} MB"))
        rec.add(Result("collect.records_per_s", stored / t_ours, "rec/s", "dlt rest_api",
                       (loaded / t_dlt) if t_dlt else None, stored))
        rec.add(Result("collect.peak_rss", mem_ours, "MB", "dlt rest_api", mem_dlt, stored,
                       note="process RSS (both run in the benchmark process; dlt's after ours)"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
