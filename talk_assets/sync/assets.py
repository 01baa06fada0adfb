"""The asset factory: every asset of the graph, generated from the declaration.

Lineage, left to right:
    <system>/<entity>             source asset, observed by a cheap API probe (DataVersion)
    <system>/collected/<entity>   the entity's records and their versions in DuckDB
    merge/<type>                  global entities (customer, product, order, user)
    sync/links                    the link table, a versioned asset
    <system>/mapped/<view>        what the system should hold, and what differs from what it holds
"""



from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from talk_assets.config import SYSTEMS
from talk_assets.sync.collect import bad_lines, collect_records, collect_since, read_changes
from talk_assets.sync.declaration import (
    GLOBAL_TYPES,
    MERGE_KEYS,
    REFERENCES,
    SOURCES,
    Source,
    View,
    counterparts,
    source_of,
    views_of_type,
)
from talk_assets.sync.links import update_links
from talk_assets.sync.mapping import map_view, referencing_views, target_views
from talk_assets.sync.merge import merge_type, table
from talk_assets.sync.push import CircuitBreakerOpen, PushSettings, push_view
from talk_assets.sync.store import connect, first

OWNERS = ["team:integration"]
POOL = "duckdb"
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


def source_key(src: Source) -> dg.AssetKey:
    return dg.AssetKey([src.system, src.entity])


def collected_key(src: Source) -> dg.AssetKey:
    return dg.AssetKey([src.system, "collected", src.entity])


def merge_key(gtype: str) -> dg.AssetKey:
    return dg.AssetKey(["merge", gtype])


LINKS_KEY = dg.AssetKey(["sync", "links"])


def view_slug(view: View) -> str:
    return view.vkey.split(".", 1)[1]


def mapped_key(view: View) -> dg.AssetKey:
    return dg.AssetKey([view.system, "mapped", view_slug(view)])


def _flows_text(view: View) -> str:
    rows = []
    for f, other, is_target in counterparts(view):
        arrow = f"{SYSTEMS[other.system].title} {other.name} → {SYSTEMS[view.system].title} {view.name}" if is_target \
            else f"{SYSTEMS[view.system].title} {view.name} → {SYSTEMS[other.system].title} {other.name}"
        rows.append(f"- seed {f.seed}: {arrow} ({f.link_mode})")
    return "\n".join(rows)


# -- source and collect --------------------------------------------------------------------------
def build_source_asset(src: Source) -> dg.SourceAsset:
    views = ", ".join(f"{v.name}" for v in src.views)

    @dg.observable_source_asset(
        key=source_key(src),
        group_name=src.system,
        description=f"{SYSTEMS[src.system].title} {src.title}, where the records live (read as: {views}). "
                    "Observed by a cheap API probe whose result changes exactly when the data changes.",
        required_resource_keys={src.system},
        tags={"stage": "source"},
    )
    def _observe(context: AssetExecutionContext) -> dg.DataVersion:
        client = getattr(context.resources, src.system).client()
        try:
            return dg.DataVersion(client.probe(src.entity))
        finally:
            client.close()

    return _observe


class CollectConfig(dg.Config):
    full_sync: bool = False
    """Re-read every record instead of what changed since the cursor (Sesam's "Full Sync")."""


def build_collect_asset(src: Source) -> dg.AssetsDefinition:
    @dg.asset(
        key=collected_key(src),
        deps=[source_key(src)],
        group_name=src.system,
        kinds={src.system, "duckdb"},
        owners=OWNERS,
        pool=POOL,
        tags={"stage": "collect"},
        required_resource_keys={src.system},
        automation_condition=dg.AutomationCondition.eager(),
        description=f"{SYSTEMS[src.system].title} {src.title} as collected: every version of every record in "
                    f"DuckDB (`raw_versions`, `raw_current`) with a content hash. Reads only what changed since "
                    f"the cursor, minus a lookback window for late commits.",
    )
    def _collect(context: AssetExecutionContext, config: CollectConfig) -> dg.MaterializeResult:
        with connect() as con:
            since = collect_since(con, src, full=config.full_sync)
        client = getattr(context.resources, src.system).client()
        try:
            records, read_from = read_changes(client, src, since)
        finally:
            client.close()
        with connect() as con:
            res = collect_records(con, src, records, since=since, now=datetime.now(UTC), read_from=read_from)
            total = first(con, "SELECT count(*) FROM raw_current WHERE system = ? AND entity = ?",
                          [src.system, src.entity])[0]
            preview = con.execute(
                "SELECT record_id, changed_at, hash FROM raw_current WHERE system = ? AND entity = ? "
                "ORDER BY changed_at DESC NULLS LAST LIMIT ?", [src.system, src.entity, PREVIEW_ROWS]
            ).df()
        rejected = bad_lines(res.bad)
        for line in rejected:
            context.log.warning(f"rejected: {line}")
        return dg.MaterializeResult(
            metadata={**res.as_metadata(), "records": int(total), "latest": md_table(preview),
                      "rejected_records": dg.MetadataValue.md("\n".join(f"- {b}" for b in rejected) or "none")},
        )

    return _collect


# -- merge -------------------------------------------------------------------------------------------
def merge_deps(gtype: str) -> list[dg.AssetKey]:
    deps = list(dict.fromkeys(collected_key(source_of(v)) for v in views_of_type(gtype)))
    deps += [merge_key(REFERENCES[p]) for p in GLOBAL_TYPES[gtype] if p in REFERENCES]
    return deps


def build_merge_asset(gtype: str) -> dg.AssetsDefinition:
    views = views_of_type(gtype)
    keys = ", ".join(MERGE_KEYS[gtype]) or "none (linked only by the sync itself)"

    @dg.asset(
        key=merge_key(gtype),
        deps=merge_deps(gtype),
        group_name="merge",
        kinds={"duckdb"},
        owners=OWNERS,
        pool=POOL,
        tags={"stage": "merge"},
        automation_condition=dg.AutomationCondition.eager(),
        description=f"Global {gtype}s: records of {', '.join(sorted({v.vkey for v in views}))} recognised as the "
                    f"same {gtype} (merge keys: {keys}; transitive; existing links kept). Per property the latest "
                    "non-empty value wins, with its provenance. Tables `merged_" + gtype + "`, `members_" + gtype + "`.",
    )
    def _merge(context: AssetExecutionContext) -> dg.MaterializeResult:
        with connect() as con:
            res = merge_type(con, gtype)
            props = [p for p in GLOBAL_TYPES[gtype] if p != "lines"][:6]
            preview = con.execute(
                f"SELECT gid, record_count, {', '.join(props)} FROM {table('merged', gtype)} "
                "ORDER BY record_count DESC, gid LIMIT ?", [PREVIEW_ROWS]
            ).df()
        return dg.MaterializeResult(metadata={
            "records": res.records, "entities": res.entities, "merged_groups": res.merged_groups,
            "iterations": res.iterations, "rebuilt": not res.reused, "preview": md_table(preview),
        })

    return _merge


# -- links -------------------------------------------------------------------------------------------
@dg.asset(
    key=LINKS_KEY,
    deps=[merge_key(t) for t in GLOBAL_TYPES],
    group_name="sync",
    kinds={"duckdb"},
    owners=OWNERS,
    pool=POOL,
    tags={"stage": "links"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The link table: global id <-> (system, entity, record), link mode, origin and last written hash. "
                "A versioned asset: each change is a new version (its DataVersion is the content hash) and every "
                "earlier version stays queryable (`talk-assets links --at VERSION|TIME`).",
)
def links_asset(context: AssetExecutionContext) -> dg.MaterializeResult:
    with connect() as con:
        v = update_links(con, datetime.now(UTC), context.run.run_id)
        per_system = con.execute(
            "SELECT system, global_type, count(*) AS records, count(DISTINCT gid) AS entities FROM links "
            "GROUP BY ALL ORDER BY ALL"
        ).df()
        preview = con.execute(
            "SELECT gid, view, record_id, origin, link_mode FROM links ORDER BY gid, view LIMIT ?", [PREVIEW_ROWS]
        ).df()
    return dg.MaterializeResult(
        data_version=dg.DataVersion(v.data_version),
        metadata={"version": v.version, "rows": v.rows, "added": v.added, "removed": v.removed,
                  "new_version": v.created, "per_system": md_table(per_system, 50), "preview": md_table(preview)},
    )


# -- mapped ------------------------------------------------------------------------------------------
def build_mapped_asset(view: View) -> dg.AssetsDefinition:
    deps = [merge_key(view.global_type), LINKS_KEY]
    deps += [merge_key(REFERENCES[p]) for p in GLOBAL_TYPES[view.global_type] if p in REFERENCES]

    @dg.asset(
        key=mapped_key(view),
        deps=list(dict.fromkeys(deps)),
        group_name=view.system,
        kinds={view.system, "duckdb"},
        owners=OWNERS,
        pool=POOL,
        tags={"stage": "mapped"},
        automation_condition=dg.AutomationCondition.eager(),
        description=f"What {SYSTEMS[view.system].title} {view.name} should hold, in its own fields and formats, "
                    f"and what differs from what it holds now (table `{table('mapped', view.vkey)[1:-1]}`). "
                    f"Dataflows:\n{_flows_text(view)}",
    )
    def _mapped(context: AssetExecutionContext) -> dg.MaterializeResult:
        with connect() as con:
            res = map_view(con, view)
            preview = con.execute(
                f"SELECT gid, record_id, action, changed_fields, payload FROM {table('mapped', view.vkey)} "
                "WHERE action <> 'unchanged' ORDER BY action, gid LIMIT ?", [PREVIEW_ROWS]
            ).df()
        return dg.MaterializeResult(metadata={
            "rows": res.rows, "create": res.create, "update": res.update, "unchanged": res.unchanged,
            "rebuilt": not res.reused,
            "pending": res.create + res.update, "pending_preview": md_table(preview),
        })

    return _mapped


# -- pushed ------------------------------------------------------------------------------------------
def pushed_key(view: View) -> dg.AssetKey:
    return dg.AssetKey([view.system, "pushed", view_slug(view)])


class PushConfig(dg.Config):
    confirm_large_change: bool = False
    """Let a run through that the circuit breaker stopped (after checking its pending changes)."""
    dry_run: bool = False
    """Log the calls instead of making them."""


def push_deps(view: View) -> list[dg.AssetKey]:
    """The mapped view, and the pushes of what its records reference (customers before orders)."""
    deps = [mapped_key(view)]
    for other in target_views():
        if other.system == view.system and (view, "customer") in [(v, p) for v, p in referencing_views(other)]:
            deps.append(pushed_key(other))
    return deps


def build_push_asset(view: View) -> dg.AssetsDefinition:
    @dg.asset(
        key=pushed_key(view),
        deps=push_deps(view),
        group_name=view.system,
        kinds={view.system},
        owners=OWNERS,
        pool=f"{view.system}_api",
        tags={"stage": "push"},
        required_resource_keys={view.system},
        automation_condition=dg.AutomationCondition.eager(),
        description=f"Writes the pending changes of {SYSTEMS[view.system].title} {view.name} to its API: creates, "
                    "updates of the properties that differ (optimistic locking), failures to the dead-letter table. "
                    f"Dataflows:\n{_flows_text(view)}",
    )
    def _push(context: AssetExecutionContext, config: PushConfig) -> dg.MaterializeResult:
        settings = PushSettings(confirm_large=config.confirm_large_change, dry_run=config.dry_run)
        client = getattr(context.resources, view.system).client()
        try:
            res = push_view(view, client, connect, settings, run_id=context.run.run_id,
                            progress=lambda i, n: context.log.info(f"{view.vkey}: {i}/{n} records written"))
        except CircuitBreakerOpen as exc:
            raise dg.Failure(description=str(exc)) from None
        finally:
            client.close()
        for call in res.calls:
            context.log.info(f"dry run: {call}")
        for f in res.failures[:50]:
            context.log.warning(f"{view.vkey} {f['action']} {f['record']}: {f['error']}")
        with connect() as con:
            # only a write changes the link table (a new link, a new last-written hash): a push that wrote
            # nothing leaves it as the links asset made it earlier in this run, so no rebuild is needed
            if res.created or res.updated:
                links_version = update_links(con, datetime.now(UTC), context.run.run_id).version
            else:
                links_version = first(con, "SELECT max(version) FROM link_versions")[0]
            dead = first(con, "SELECT count(*) FROM dead_letters WHERE view = ? AND resolved_at IS NULL", [view.vkey])[0]
        failures = pd.DataFrame(res.failures, columns=["record", "gid", "action", "status", "error"])
        return dg.MaterializeResult(metadata={
            **res.as_metadata(), "dead_letters": int(dead), "links_version": links_version,
            "failures": md_table(failures, 20),
        })

    return _push


def system_assets(system: str) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    """One system's assets: its entities (source, collected) and its targets (mapped, pushed)."""
    out: list[dg.AssetsDefinition | dg.SourceAsset] = []
    for src in SOURCES:
        if src.system == system:
            out += [build_source_asset(src), build_collect_asset(src)]
    views = [v for v in target_views() if v.system == system]
    return out + [build_mapped_asset(v) for v in views] + [build_push_asset(v) for v in views]


def sync_assets() -> list[dg.AssetsDefinition]:
    """The assets shared by all systems: the merge per global type and the link table."""
    return [*(build_merge_asset(t) for t in GLOBAL_TYPES), links_asset]


def all_assets() -> Sequence[dg.AssetsDefinition | dg.SourceAsset]:
    return [a for s in SYSTEMS for a in system_assets(s)] + sync_assets()
