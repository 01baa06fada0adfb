"""collect: Shopify customers from the sandbox into DuckDB: our client through a GraphQL bulk operation
(what a full read does), our client through GraphQL cursor paging (pages sized by query cost; what a read
of changes does), and dlt's rest_api source through REST paging (`customers.json`, limit 250, `Link`
header) as the baseline.

All read one Shopify sandbox with its limits on: the GraphQL cost bucket (Shopify's standard plan:
2,000 points restoring 100/s) and the REST leaky bucket (40 requests leaking 2/s), both sped up by
`SPEED` (the sandbox's `rate_limit_speed`). The sandbox reports the sped-up `restoreRate` in every
answer's `throttleStatus`, which is how our client learns the rate; dlt does not pace, it retries a
429 (its `Retry-After` parser takes whole seconds or a date only, so the sandbox's fractional
values fall back to its exponential backoff). At
the standard plan's own rate a page of 249 customers (~1,000 points requested) waits 10 s for the
bucket, so 100k customers by GraphQL paging would take ~70 minutes; the factor is in each result's note.
All end with the records in a DuckDB file: ours in `raw_versions` / `raw_current` (hash, versions),
dlt's in its normalised tables. THROTTLED answers (HTTP 200) are counted on the wire, 429s by the sandbox.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import PeakRss, Recorder, Result, Sandboxes, shopify_size_for, timer
from benchmarks.push import Wire

COUNTS = {"quick": 100_000, "full": 100_000}
SPEED = {"quick": 20.0, "full": 20.0}  # the sandbox's speed factor for its buckets (cost and REST)
TOKEN_ENV = "TALK_SHOPIFY_ACCESS_TOKEN"


def ours(url: str, db: Path, mode: str = "bulk") -> tuple[float, int, float, Wire, float]:
    """Seconds, records stored, peak RSS (MB), the answers seen on the wire and the seconds the pacer
    waited for the cost bucket, of the engine's collect of all customers, read by a bulk operation
    (`mode="bulk"`) or by cost-sized GraphQL pages (`mode="paged"`)."""
    from datetime import UTC, datetime

    from talk_assets.config import SHOPIFY
    from talk_assets.core.http import Pacer
    from talk_assets.sync.collect import collect_records
    from talk_assets.sync.declaration import SOURCES_BY_KEY
    from talk_assets.sync.store import connect
    from talk_assets.systems.shopify.client import Client

    # The sandbox builds a bulk operation's file under its app lock, so its answer to the next request
    # (even the bulkOperationRunQuery that started it) can wait for the whole file: on a loaded machine
    # longer than the client's default 30 s read timeout. Shopify answers that mutation at once.
    client = Client(url, SHOPIFY.value("access_token"), SHOPIFY.value("api_version"), pacer=Pacer(),
                    timeout=(5.0, 300.0))
    wire = Wire()
    client.session.hooks["response"].append(wire)
    src = SOURCES_BY_KEY["shopify.customer"]
    with PeakRss() as mem, timer() as t:
        it = client.iter_records("customer") if mode == "bulk" else client.read_changes("customer", None)
        records = list(it)
        with connect(db) as con:
            res = collect_records(con, src, records, since=None, now=datetime.now(UTC))
    client.close()
    if wire.throttled > client.throttled:
        raise RuntimeError(f"{wire.throttled - client.throttled} THROTTLED answers were not retried")
    return t["s"], res.new, mem.peak_mb, wire, client.cost_pacer.waited


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


def _limits_on(sb: Sandboxes, speed: float) -> None:
    """Both buckets on at `speed`, refilled (each reader starts with a full bucket)."""
    sb.faults({"rate_limit_enabled": True, "rate_limit_speed": speed}, ["shopify"])
    sb.control("shopify", "PUT", "graphql/cost", {})
    sb.reset_stats()


def run(rec: Recorder, profile: str) -> None:
    n = COUNTS[profile]
    speed = SPEED[profile]
    size = shopify_size_for(n)
    print(f"collect: Shopify customers (sandbox size {size:,}) -> DuckDB, limits on x{speed:g}: GraphQL bulk, "
          "GraphQL paging, dlt rest_api (REST paging)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    try:
        with Sandboxes(["shopify"], size) as sb:
            rest = int(sb.control("shopify", "GET", "graphql/cost")["restore_rate"])
            _limits_on(sb, speed)
            t_paged, stored_paged, mem_paged, w_paged, wait_paged = ours(sb.urls["shopify"], tmp / "paged.duckdb",
                                                                         "paged")
            reads_paged = sum(sb.stats("shopify")["requests"].values())
            _limits_on(sb, speed)
            t_ours, stored, mem_ours, w_bulk, wait_bulk = ours(sb.urls["shopify"], tmp / "talk.duckdb", "bulk")
            reads_ours = sum(sb.stats("shopify")["requests"].values())
            _limits_on(sb, speed)
            try:
                t_dlt, loaded, mem_dlt = dlt_run(sb.urls["shopify"], tmp)
            except Exception as exc:  # a baseline that cannot run is reported, not hidden
                print(f"  dlt failed: {type(exc).__name__}: {str(exc)[:500]}")
                t_dlt, loaded, mem_dlt = None, 0, None
            st_dlt = sb.stats("shopify")
        limits = (f"limits on, sped up x{speed:g}: cost bucket restoring {rest}x{speed:g} = {rest * speed:g} "
                  f"points/s, REST bucket leaking 2x{speed:g} = {2 * speed:g} requests/s")
        note = (f"{limits}; GraphQL bulk stored {stored:,} in {reads_ours} requests ({w_bulk.throttled} THROTTLED, "
                f"all retried; pacer waited {wait_bulk:.1f}s); GraphQL paging {stored_paged:,} in {reads_paged} "
                f"requests ({w_paged.points:,.0f} points, {w_paged.throttled} THROTTLED, all retried; pacer waited "
                f"{wait_paged:.1f}s); dlt (REST paging, customers.json) loaded {loaded:,} in {st_dlt['reads']} "
                f"requests ({st_dlt['statuses'].get('429', 0)} answered 429)")
        rec.add(Result("collect.time", t_ours, "s", "dlt rest_api", t_dlt, stored, note=note))
        rec.add(Result("collect.time_graphql_paged", t_paged, "s", "dlt rest_api", t_dlt, stored_paged,
                       note=f"{limits}; peak RSS {mem_paged:.0f} MB; {t_paged - wait_paged:.1f}s of it not waiting "
                            f"for the bucket; at the standard plan's rate the bucket alone would take "
                            f"{w_paged.points / rest:,.0f}s"))
        rec.add(Result("collect.records_per_s", stored / t_ours, "rec/s", "dlt rest_api",
                       (loaded / t_dlt) if t_dlt else None, stored, note=limits))
        rec.add(Result("collect.peak_rss", mem_ours, "MB", "dlt rest_api", mem_dlt, stored,
                       note="process RSS (both run in the benchmark process; dlt's after ours)"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
