"""The asset factory: every asset of the graph, generated from the declaration.

Lineage, left to right, and the groups that hold it:
    <system>_in   <system>/<entity>             source asset, observed by the change sensor (DataVersion)
    <system>_in   <system>/collected/<entity>   the entity's records and their versions in DuckDB
    merge         merge/<type>                  global entities (customer, product, order, user)
    sync          sync/links                    the link table, a versioned asset
    <system>_out  <system>/mapped/<view>        what the system should hold, and what differs from what it holds
    <system>_out  <system>/pushed/<view>        the writes, conflicts and dead letters

No asset has an automation condition: a materialization on demand runs what the user selected,
and the sensors request runs of what a change reaches (sync/sensors.py).
"""

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from talk_assets.config import SYSTEMS
from talk_assets.sync import checks, display
from talk_assets.sync.checks import PREVIEW_ROWS
from talk_assets.sync.collect import (
    bad_lines,
    collect_records,
    collect_since,
    content_hash,
    read_changes,
    stored_probes,
)
from talk_assets.sync.declaration import (
    GLOBAL_TYPES,
    MERGE_KEYS,
    REFERENCES,
    SOURCES,
    Source,
    View,
    counterparts,
    referenced_types,
    source_of,
    views_of_type,
)
from talk_assets.sync.links import record_version, refresh_links, version_changes
from talk_assets.sync.mapping import map_view, read_types, target_views
from talk_assets.sync.merge import links_refreshed, merge_type, table
from talk_assets.sync.push import CircuitBreakerOpen, PushSettings, push_view
from talk_assets.sync.store import connect, first

OWNERS = ["team:integration"]
POOL = "duckdb"


def stage_tags(stage: str, gtype: str | None = None) -> dict[str, str]:
    """A step's op tags: its run order among the steps ready at once (Dagster's `dagster/priority`, higher
    first). A push starts as soon as what it reads is made, before mappings and merges that only other
    pushes need, so the edit a run carries reaches its target early in the run (issue #16), not after
    every mapping of every type it reaches. Within a stage, a type goes before the types that reference
    it (customers before the orders naming them): their pushes wait for it anyway, and a customer edit's
    run otherwise mapped every order between the order merge and the customer's push. Only order among
    ready steps changes; dependencies stay."""
    base = {"push": 30, "mapped": 20, "merge": 10}.get(stage, 0)
    return {"dagster/priority": str(base - (_reference_depth(gtype) if gtype and base else 0))}


def _reference_depth(gtype: str) -> int:
    """How many levels of references a type stands on: 0 for a type naming no other (customer), 1 for
    one naming those (order)."""
    refs = referenced_types(gtype)
    return 1 + max(_reference_depth(t) for t in refs) if refs else 0


def source_key(src: Source) -> dg.AssetKey:
    return dg.AssetKey([src.system, src.entity])


def collected_key(src: Source) -> dg.AssetKey:
    return dg.AssetKey([src.system, "collected", src.entity])


def merge_key(gtype: str) -> dg.AssetKey:
    return dg.AssetKey(["merge", gtype])


LINKS_KEY = dg.AssetKey(["sync", "links"])

# cycle_state rows "read_back:<type>": a push's read-back stored records of the type after its merge ran
# (`_read_back`); the type's next merge clears it. The plan merges, maps and pushes such a type again without
# a collect (`CyclePlan.settle`): the state ends as a full rebuild ends, and a write that merge finds is made.
READ_BACK = "read_back:"


def read_back_notes(con: Any) -> list[tuple[str, datetime]]:
    """(global type, when noted) of the types with records a push read back that no merge has seen yet."""
    return [(n.removeprefix(READ_BACK), at) for n, at in con.execute(
        "SELECT name, recorded_at FROM cycle_state WHERE starts_with(name, ?) ORDER BY name", [READ_BACK]).fetchall()]


def view_slug(view: View) -> str:
    return view.vkey.split(".", 1)[1]


def mapped_key(view: View) -> dg.AssetKey:
    return dg.AssetKey([view.system, "mapped", view_slug(view)])


def pushed_key(view: View) -> dg.AssetKey:
    return dg.AssetKey([view.system, "pushed", view_slug(view)])


def _flows_text(view: View) -> str:
    rows = []
    for f, other, is_target in counterparts(view):
        arrow = f"{SYSTEMS[other.system].title} {other.name} → {SYSTEMS[view.system].title} {view.name}" if is_target \
            else f"{SYSTEMS[view.system].title} {view.name} → {SYSTEMS[other.system].title} {other.name}"
        rows.append(f"- seed {f.seed}: {arrow} ({f.link_mode})")
    return "\n".join(rows)


# -- API clients ---------------------------------------------------------------------------------
class HttpTuning(dg.ConfigurableResource):
    """How the steps' API clients time out and retry; unset fields keep each client's defaults.

    One resource for every system, so a run against a flaky or slow system (the reliability tests,
    `talk-assets sync` on a bad day) is configured in Dagster like any other setting.
    """

    timeout_s: float | None = None
    max_retries: int | None = None
    backoff_s: float | None = None
    max_backoff_s: float | None = None
    default_retry_after_s: float | None = None
    max_rate_limit_wait_s: float | None = None

    def apply(self, client: Any) -> Any:
        if self.timeout_s is not None:
            client.timeout = (self.timeout_s, self.timeout_s)
        changes = {name: value for name, value in (
            ("max_retries", self.max_retries), ("backoff", self.backoff_s), ("max_backoff", self.max_backoff_s),
            ("default_retry_after", self.default_retry_after_s),
            ("max_rate_limit_wait", self.max_rate_limit_wait_s)) if value is not None}
        if changes:
            client.retry = dataclasses.replace(client.retry, **changes)
        return client


HTTP = "http"


def open_client(context: Any, system: str) -> Any:
    """The system's client from its resource, tuned by the `http` resource when the run has one."""
    client = getattr(context.resources, system).client()
    return getattr(context.resources, HTTP).apply(client)


def observed_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The data version last recorded for a source asset (by the sensor, a collect or a push)."""
    record = instance.get_latest_data_version_record(key, is_source=True)
    if record is None or record.asset_observation is None:
        return None
    return record.asset_observation.tags.get(DATA_VERSION_TAG)


def observation(src: Source, version: str, by: str) -> dg.AssetObservation:
    return dg.AssetObservation(asset_key=source_key(src), tags={DATA_VERSION_TAG: version},
                               metadata={"data_version": version, "recorded_by": by})


# -- source and collect --------------------------------------------------------------------------
def build_source_asset(src: Source) -> dg.SourceAsset:
    views = ", ".join(f"{v.name}" for v in src.views)

    @dg.observable_source_asset(
        key=source_key(src),
        group_name=f"{src.system}_in",
        description=f"{SYSTEMS[src.system].title} {src.title}: the records in {SYSTEMS[src.system].title} itself.\n\n"
                    f"Read as: {views}. Observed by a cheap API probe whose result changes exactly when the data changes: by the "
                    f"`{src.system}_changes` sensor, by each collect (before it reads) and by each push to it.",
        required_resource_keys={src.system, HTTP},
        tags={"stage": "source"},
    )
    def _observe(context: AssetExecutionContext) -> dg.DataVersion:
        client = open_client(context, src.system)
        try:
            return dg.DataVersion(client.probe(src.entity))
        finally:
            client.close()

    return _observe


class CollectConfig(dg.Config):
    full_sync: bool = False
    """Re-read every record instead of what changed since the cursor (Sesam's "Full Sync")."""


READ_COMPLETE = "read_complete"


def build_collect_asset(src: Source) -> dg.AssetsDefinition:
    @dg.asset(
        key=collected_key(src),
        deps=[source_key(src)],
        group_name=f"{src.system}_in",
        kinds={src.system, "duckdb"},
        owners=OWNERS,
        pool=POOL,
        tags={"stage": "collect"},
        op_tags=stage_tags("collect"),
        required_resource_keys={src.system, HTTP},
        check_specs=[dg.AssetCheckSpec(READ_COMPLETE, asset=collected_key(src),
                                       description="The API answered the read. When it did not, the records "
                                                   "collected before stay current and every other system syncs.")],
        description=f"{SYSTEMS[src.system].title} {src.title} copied into DuckDB, every version kept.\n\n"
                    f"Every version of every record in DuckDB (`raw_versions`, `raw_current`) with a content hash. Reads only what changed since "
                    f"the cursor, minus a lookback window for late commits.",
    )
    def _collect(context: AssetExecutionContext, config: CollectConfig) -> dg.MaterializeResult:
        client = open_client(context, src.system)
        try:
            since, version, records, read_from = _read_source(context, client, src, full=config.full_sync)
        except Exception as exc:  # one system down must not stop the others: the check says it failed
            context.log.error(f"{src.key}: the read failed: {exc}")
            return dg.MaterializeResult(
                metadata={"read_failed": str(exc)[:2000]},
                check_results=[dg.AssetCheckResult(check_name=READ_COMPLETE, passed=False,
                                                   severity=dg.AssetCheckSeverity.ERROR,
                                                   metadata={"error": str(exc)[:2000]})])
        finally:
            client.close()
        if version is not None:
            context.log_event(observation(src, version, "collect"))
        with connect() as con:
            res = collect_records(con, src, records, since=since, now=datetime.now(UTC), read_from=read_from,
                                  probe=version)
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
            metadata={**res.as_metadata(), "records": int(total), "latest": display.md(preview),
                      "rejected_records": dg.MetadataValue.md("\n".join(f"- {b}" for b in rejected) or "none"),
                      "rejected_detail": dg.MetadataValue.json([dataclasses.asdict(b) for b in res.bad[:200]])},
            check_results=[dg.AssetCheckResult(check_name=READ_COMPLETE, passed=True,
                                               metadata={"read": res.read})],
        )

    return _collect


# -- merge -------------------------------------------------------------------------------------------
def merge_deps(gtype: str) -> list[dg.AssetKey]:
    deps = list(dict.fromkeys(collected_key(source_of(v)) for v in views_of_type(gtype)))
    deps += [merge_key(REFERENCES[p]) for p in GLOBAL_TYPES[gtype] if p in REFERENCES]
    return deps


def build_merge_asset(gtype: str) -> dg.AssetsDefinition:
    views = views_of_type(gtype)
    merge_checks = checks.merge_checks(gtype, merge_key(gtype))
    keys = ", ".join(MERGE_KEYS[gtype]) or "none (linked only by the sync itself)"

    @dg.asset(
        key=merge_key(gtype),
        deps=merge_deps(gtype),
        check_specs=checks.specs(merge_checks),
        group_name="merge",
        kinds={"duckdb"},
        owners=OWNERS,
        pool=POOL,
        tags={"stage": "merge"},
        op_tags=stage_tags("merge", gtype),
        description=f"Global {gtype}s: the records of every system that are the same {gtype}, merged into one.\n\n"
                    f"Records of {', '.join(sorted({v.vkey for v in views}))} recognised as the "
                    f"same {gtype} (merge keys: {keys}; transitive; existing links kept). Per property the latest "
                    "non-empty value wins, with its provenance. Tables `merged_" + gtype + "`, `members_" + gtype + "`.",
    )
    def _merge(context: AssetExecutionContext) -> dg.MaterializeResult:
        with connect() as con:
            res = merge_type(con, gtype)
            con.execute("DELETE FROM cycle_state WHERE name = ?", [READ_BACK + gtype])
            if not res.reused:  # the type's current links follow its members (versioned by `sync/links`)
                refresh_links(con, datetime.now(UTC), [gtype], scope=None if res.whole else "merge_scope")
                links_refreshed(con, gtype, res)
                changed, n_changed, first_merge = display.changed_entities(con, gtype, gids=res.gids)
            else:
                changed, n_changed, first_merge = [], 0, False
            props = [p for p in GLOBAL_TYPES[gtype] if p != "lines"][:6]
            preview = con.execute(
                f"SELECT gid, record_count, {', '.join(props)} FROM {table('merged', gtype)} "
                "ORDER BY record_count DESC, gid LIMIT ?", [PREVIEW_ROWS]
            ).df()
            sample = list(preview["gid"][:2])
            why_sample = display.provenance_rows(con, gtype, sample)
            # every changed entity is shown here, also one that is in the sample above (a user who edited it
            # looks for it under "changed")
            why_changed = display.provenance_rows(con, gtype, changed[:3])
        heading = (f"All {n_changed} entities are new (first merge); the first shown" if first_merge
                   else f"{n_changed} {'entity' if n_changed == 1 else 'entities'} changed in this run"
                   + ("; the first shown" if n_changed > 3 else ""))
        return dg.MaterializeResult(metadata={
            "records": res.records, "entities": res.entities, "merged_groups": res.merged_groups,
            "iterations": res.iterations, "rebuilt": not res.reused, "changed_entities": n_changed,
            "records_merged_again": 0 if res.reused else res.rebuilt,
            "preview": display.md(preview),
            "provenance_sample": dg.MetadataValue.md(display.provenance_md(
                why_sample, "Why each value: the entities with the most records", 2)),
            "provenance_changed": dg.MetadataValue.md(display.provenance_md(
                why_changed, heading if n_changed else "No entity changed in this run", 3)),
        }, check_results=checks.evaluate(merge_checks))

    return _merge


# -- links -------------------------------------------------------------------------------------------
def links_deps() -> list[dg.AssetKey]:
    """Last in a run: after the merges (which rewrite their types' links) and the pushes (which add the
    records they created and the payloads they wrote), so one run makes at most one version."""
    return [merge_key(t) for t in GLOBAL_TYPES] + [pushed_key(v) for v in target_views()]


@dg.asset(
    key=LINKS_KEY,
    deps=links_deps(),
    check_specs=checks.specs(checks.links_checks(LINKS_KEY)),
    group_name="sync",
    kinds={"duckdb"},
    owners=OWNERS,
    pool=POOL,
    tags={"stage": "links"},
    op_tags=stage_tags("links"),
    output_required=False,
    description="The link table: which records in the five systems are the same customer, product, order or user.\n\n"
                "Per record: its global id, link mode, origin and the last payload the sync wrote to it. Each change is a new "
                "version, one materialization here (the Events tab is its history, with the records added, moved, "
                "removed and written); a run that changed no link makes none. Any version stays queryable: "
                "`talk-assets links --at VERSION|TIME`.",
)
def links_asset(context: AssetExecutionContext) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    with connect() as con:
        v = record_version(con, datetime.now(UTC), context.run.run_id)
        if v.created:
            per_system = con.execute(
                "SELECT system, global_type, count(*) AS records, count(DISTINCT gid) AS entities FROM links "
                "GROUP BY ALL ORDER BY ALL").df()
            changes = version_changes(con, v.version, 20)
    results = checks.evaluate(checks.links_checks(LINKS_KEY))
    if not v.created:
        context.log.info(f"no link changed: version {v.version} stays current (no materialization)")
        yield from results
        return
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(v.data_version),
        metadata={"version": v.version, "rows": v.rows, "added": v.added, "moved": v.moved, "removed": v.removed,
                  "written": v.written, "changes": display.md(changes, 20), "per_system": display.md(per_system, 50)},
        check_results=results,
    )


# -- mapped ------------------------------------------------------------------------------------------
DIFF_ENTITIES = 10  # the pending rows a mapped asset's "what differs" shows (updates first)
DIFF_ROWS = 30


def mapped_deps(view: View) -> list[dg.AssetKey]:
    """Every merge `mapped_sql(view)` reads (`read_types`): its own type, the types it references and the
    types whose records reference it (a Shopify customer is created when a Shopify order names it).
    Without the last, a customer view could map before the order merge of the same run: its first
    mapping would miss the customers the orders need (created, with their orders, a cycle late) and
    the next, quiet, cycle would rebuild it for the order merge it had not seen."""
    return [merge_key(t) for t in read_types(view)]


def build_mapped_asset(view: View) -> dg.AssetsDefinition:
    mapped_checks = checks.mapped_checks(view, mapped_key(view))

    @dg.asset(
        key=mapped_key(view),
        deps=mapped_deps(view),
        check_specs=checks.specs(mapped_checks),
        group_name=f"{view.system}_out",
        kinds={view.system, "duckdb"},
        owners=OWNERS,
        pool=POOL,
        tags={"stage": "mapped"},
        op_tags=stage_tags("mapped", view.global_type),
        description=f"What {SYSTEMS[view.system].title} {view.name} should hold, and what differs from what it holds.\n\n"
                    f"In its own fields and formats, and what differs from what it holds now (table `{table('mapped', view.vkey)[1:-1]}`). "
                    f"Dataflows:\n{_flows_text(view)}",
    )
    def _mapped(context: AssetExecutionContext) -> dg.MaterializeResult:
        mapped = table("mapped", view.vkey)
        with connect() as con:
            res = map_view(con, view)
            pending = con.execute(
                f"SELECT gid, record_id, action, changed_fields, payload, current FROM {mapped} "
                "WHERE action IN ('create', 'update') ORDER BY action DESC, gid LIMIT ?", [DIFF_ENTITIES]
            ).fetchall()
            held = con.execute(
                f"SELECT gid, payload, held_reason FROM {mapped} WHERE action = 'held' ORDER BY gid LIMIT 20").fetchall()
        diff = display.diff_rows(pending)
        held_df = pd.DataFrame([(g, display.record_summary(p), r) for g, p, r in held], columns=["gid", "record", "why held"])
        return dg.MaterializeResult(metadata={
            "rows": res.rows, "create": res.create, "update": res.update, "unchanged": res.unchanged,
            "held": res.held, "rebuilt": not res.reused,
            "entities_mapped_again": 0 if res.reused else (res.rows if res.mapped_again < 0 else res.mapped_again),
            # records the target refuses to change (a Confirmed PowerOffice order): one-way, not written
            **({"locked": res.locked, "locked_reason": view.locked_reason} if view.locked else {}),
            "pending": res.create + res.update,
            "what_differs": display.md(diff, DIFF_ROWS, {"old": 50, "new": 50}),
            "held_records": display.md(held_df, 20, {"why held": 200}),
        }, check_results=checks.evaluate(mapped_checks))

    return _mapped


# -- pushed ------------------------------------------------------------------------------------------
class PushConfig(dg.Config):
    confirm_large_change: bool = False
    """Let a run through that the circuit breaker stopped (after checking its pending changes)."""
    dry_run: bool = False
    """Log the calls instead of making them."""
    max_update_share: float | None = None
    """This run's circuit-breaker share (default: TALK_CIRCUIT_BREAKER_SHARE)."""
    breaker_min_rows: int | None = None
    """This run's circuit-breaker minimum (default: TALK_CIRCUIT_BREAKER_MIN_ROWS)."""

    def push_settings(self) -> PushSettings:
        limits = {k: v for k, v in (("max_update_share", self.max_update_share),
                                    ("breaker_min_rows", self.breaker_min_rows)) if v is not None}
        return PushSettings(confirm_large=self.confirm_large_change, dry_run=self.dry_run, **limits)


def push_dependencies(view: View) -> list[View]:
    """The pushes that must come before `view`'s: the same system's target views of the types its
    records reference (customers, users and products before the orders naming them)."""
    wanted = referenced_types(view.global_type)
    return [v for v in target_views() if v.system == view.system and v.global_type in wanted]


def push_deps(view: View) -> list[dg.AssetKey]:
    """The push's upstream: every mapped view of its global type (so all targets of a type are
    judged, and their blocking checks run, before any of them is written) and the pushes it
    references (`push_dependencies`)."""
    deps = [mapped_key(view)]
    deps += [mapped_key(v) for v in target_views() if v.global_type == view.global_type]
    deps += [pushed_key(v) for v in push_dependencies(view)]
    return list(dict.fromkeys(deps))


BREAKER_TAG = "circuit_breaker"


def build_push_asset(view: View) -> dg.AssetsDefinition:
    src = source_of(view)

    @dg.asset(
        key=pushed_key(view),
        deps=push_deps(view),
        group_name=f"{view.system}_out",
        kinds={view.system},
        owners=OWNERS,
        pool=f"{view.system}_api",
        tags={"stage": "push"},
        op_tags=stage_tags("push", view.global_type),
        required_resource_keys={view.system, HTTP},
        description=f"The writes to {SYSTEMS[view.system].title} {view.name}: what the sync created and updated there.\n\n"
                    "Creates, updates of the properties that differ (optimistic locking), failures to the dead-letter table. "
                    f"Dataflows:\n{_flows_text(view)}",
    )
    def _push(context: AssetExecutionContext, config: PushConfig) -> dg.MaterializeResult:
        settings = config.push_settings()
        client = open_client(context, view.system)
        try:
            res = push_view(view, client, connect, settings, run_id=context.run.run_id,
                            progress=lambda i, n: context.log.info(f"{view.vkey}: {i}/{n} records written"))
            if res.created or res.updated:
                _read_back(context, client, src, res.written_ids)
        except CircuitBreakerOpen as exc:
            raise dg.Failure(description=str(exc), metadata={BREAKER_TAG: True}) from None
        finally:
            client.close()
        for call in res.calls:
            context.log.info(f"dry run: {call}")
        for f in res.failures[:50]:
            context.log.warning(f"{view.vkey} {f['action']} {f['record']}: {f['error']}")
        with connect() as con:
            # the push wrote its links (created records, written payloads) into the current table; the
            # `sync/links` step after the pushes records them as the run's one new version
            links_version = first(con, "SELECT max(version) FROM link_versions")[0]
            dead = first(con, "SELECT count(*) FROM dead_letters WHERE view = ? AND resolved_at IS NULL", [view.vkey])[0]
        failures = pd.DataFrame(res.failures, columns=["record", "gid", "action", "status", "error"])
        return dg.MaterializeResult(metadata={
            **res.as_metadata(), "dead_letters": int(dead), "links_version": links_version,
            "failures": display.md(failures, 20, {"error": 120}),
            "failure_detail": dg.MetadataValue.json(_jsonable(res.failures[:200])),
            **({"calls": dg.MetadataValue.json(res.calls[:5000])} if settings.dry_run else {}),
        })

    return _push


def _read_back(context: AssetExecutionContext, client: Any, src: Source, written: set[str]) -> None:
    """After a push wrote to `src`: read its changes, as its collect does, so the state holds the
    records as the target now has them (our writes, their new versions, the records we created).

    Without it the next run that does not collect the target (a sensor's run for another system) maps
    against the versions before our write: the next update names a version the target no longer has
    (a conflict, every run, until someone else edits the target), and a value put back to what the
    target held before our write looks unchanged. Found in `make run` (issue #16's tour, a second edit).

    The probe before the read is recorded as the source's observation (so its change sensor does not
    start a run to read our own writes), unless the read found a change to a record we did not write:
    then neither the observation nor the plan's probe is recorded, and the next tick or cycle runs what
    that change reaches. A failed read costs only this: the next collect reads the same."""
    try:
        since, version, records, read_from = _read_source(context, client, src, full=False)
    except Exception as exc:
        context.log.warning(f"{src.key}: reading back after the push failed, the next collect reads it: {exc}")
        return
    with connect() as con:
        by_id = {str(r.get(src.id_field)): r for r in records if isinstance(r, dict)}
        known = dict(con.execute("SELECT record_id, hash FROM raw_current WHERE system = ? AND entity = ? "
                                 "AND list_contains(?::VARCHAR[], record_id)",
                                 [src.system, src.entity, list(by_id)]).fetchall())
        others = sorted(i for i, r in by_id.items() if i not in written and known.get(i) != content_hash(r))
        res = collect_records(con, src, records, since=since, now=datetime.now(UTC), read_from=read_from,
                              probe=None if others else version)
        if res.new or res.changed:
            for gtype in sorted({v.global_type for v in src.views}):
                con.execute("INSERT OR REPLACE INTO cycle_state VALUES (?, '', now())", [READ_BACK + gtype])
    if version is not None and not others:
        context.log_event(observation(src, version, "push"))
    context.log_event(dg.AssetObservation(collected_key(src), metadata={
        "read_back_after_push": res.read, "new": res.new, "changed": res.changed,
        "changed_by_others": len(others), "others_sample": ", ".join(others[:10])}))


def _read_source(context: AssetExecutionContext, client: Any, src: Source,
                 *, full: bool) -> tuple[datetime | None, str | None, list[dict[str, Any]], datetime | None]:
    """A read of `src` as the collect and the push's read-back make it: (where it started, the probe
    taken before it, the records, the server's time when it began). The probe before the read is what
    this read has seen, the source's observation (a failed probe only costs the observation; the
    sensor sees the version later)."""
    with connect() as con:
        since = collect_since(con, src, full=full)
        previous = stored_probes(con).get(src.key)
    version = _probe(context, client, src, previous)
    records, read_from = read_changes(client, src, since)
    return since, version, records, read_from


def _probe(context: AssetExecutionContext, client: Any, src: Source, previous: str | None = None) -> str | None:
    """The entity's version, or None when the system does not answer the probe: a refused or failed
    probe costs only the observation (the collect's read and the push decide what a failure means)."""
    try:
        return client.probe(src.entity, previous)
    except Exception as exc:
        context.log.warning(f"{src.key}: probe failed, no observation recorded: {exc}")
        return None


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in r.items()}
            for r in rows]


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
