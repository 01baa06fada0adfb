"""Sensors: one per system, probing its API cheaply and asking for a run of what a change reaches; one that
settles what the pushes read back.

Each tick probes every entity of the system (counts and newest change times: the source assets'
data versions) and compares them with the versions last *observed* in the instance: by an earlier
tick, by a collect (the probe it took before reading) or by a push (the probe before it read back
what it wrote, see `assets._read_back`). So the sync's own writes do not look like a change, and a quiet
poll requests nothing. A change is recorded as an AssetObservation with its data version (the UI
shows when each source last changed) and requests a run of only the changed entities' collect
assets and everything downstream of them. The run key is derived from the versions, so a retried
or previewed tick that sees the same versions asks for the same run, which Dagster deduplicates.

One more sensor, `settle_after_writes`, reads no system: once no sync run is waiting or running, it asks
for a run that merges what the pushes read back (`build_settle_sensor`).
"""

import hashlib
import json
from functools import cache
from typing import Any

import dagster as dg

from talk_assets.config import SYSTEMS
from talk_assets.core.http import RetryPolicy
from talk_assets.settings import settings
from talk_assets.sync.assets import (
    HTTP,
    collected_key,
    merge_key,
    observation,
    observed_version,
    read_back_notes,
    source_key,
)
from talk_assets.sync.declaration import SOURCES, Source
from talk_assets.sync.store import connect, db_path
from talk_assets.webhooks.inbox import Inbox
from talk_assets.webhooks.registry import receiving_systems


def poll_interval(system: str) -> int:
    """`TALK_<SYSTEM>_POLL_INTERVAL_S`, else `TALK_POLL_INTERVAL_S`, else 300 s (Sesam's default); with
    webhooks on for a system that sends them, the longer safety-net `TALK_WEBHOOK_POLL_INTERVAL_S`."""
    s = settings()
    return s.poll_interval(system, webhooks=s.webhooks_on and system in receiving_systems())


@cache
def downstream_of(sources: tuple[Source, ...]) -> list[dg.AssetKey]:
    """The collect assets of `sources`, every asset downstream of them, and the merges the selected
    mappings read (`downstream_of_keys`)."""
    return downstream_of_keys(tuple(collected_key(s) for s in sources))


@cache
def downstream_of_keys(keys: tuple[dg.AssetKey, ...]) -> list[dg.AssetKey]:
    """`keys`, every asset downstream of them, and the merges the selected mappings read (sorted, for
    stable requests). An order mapping reads the user merge too: on a new state file a run started for
    Shopify's orders would otherwise map before any user merge existed (reused, not rebuilt, when nothing
    it reads changed)."""
    from talk_assets.definitions import asset_graph  # assembled from this module's sensors too

    assets = asset_graph()
    down = dg.AssetSelection.assets(*keys).downstream().resolve(assets)
    mapped = [k for k in down if k.path[1:2] == ["mapped"]]
    read = dg.AssetSelection.assets(*mapped).upstream(depth=1).resolve(assets) if mapped else set()
    return sorted(set(down) | {k for k in read if k.path[0] == "merge"}, key=lambda k: k.to_user_string())


def settle_selection(types: tuple[str, ...]) -> list[dg.AssetKey]:
    """What a push's read-back of `types` leaves to do (`assets.READ_BACK`): their merges and everything
    downstream of them, without a collect (the read-back was the read)."""
    return downstream_of_keys(tuple(merge_key(t) for t in types))


def probe_client(client: Any) -> Any:
    """A system's client made fit for probes (a sensor tick, a cycle's plan): quick to give up, since
    a failed probe only means "look": the collect reads with the full retries."""
    client.retry = RetryPolicy(max_retries=1, max_rate_limit_wait=5.0)
    return client


WAITING = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)


def waiting_run_collects(context: dg.SensorEvaluationContext, job_name: str, sources: list[Source],
                         statuses: tuple[dg.DagsterRunStatus, ...] = WAITING) -> bool:
    """Whether a run waiting to start will collect every one of `sources` (a run of the whole job, or
    one whose selection holds their collect assets). Then a change is left to it; a run waiting for
    another system's entities does not read these, so the change asks for its own run at once (queued
    behind it) instead of a tick after that run has started."""
    keys = {collected_key(s) for s in sources}
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=list(statuses)), limit=100)
    return any(r.asset_selection is None or keys <= r.asset_selection for r in runs)


def _cursor_versions(cursor: str | None) -> dict[str, str]:
    """The versions a change sensor's cursor holds (entity -> probe token), {} for none or another form."""
    try:
        loaded = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return {k: v for k, v in loaded.items() if isinstance(v, str)} if isinstance(loaded, dict) else {}


def build_change_sensor(system: str, job_name: str = "sync_job") -> dg.SensorDefinition:
    sources = [s for s in SOURCES if s.system == system]

    @dg.sensor(
        name=f"{system}_changes",
        job_name=job_name,
        minimum_interval_seconds=poll_interval(system),
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={system, HTTP},
        description=f"Probes {SYSTEMS[system].title} ({', '.join(s.entity for s in sources)}) every "
                    f"{poll_interval(system)} s, records each change as an observation of its source asset and "
                    "requests a run of what the changed entities reach.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        client = probe_client(getattr(context.resources, HTTP).apply(getattr(context.resources, system).client()))
        last = _cursor_versions(context.cursor)  # each probe's last token: the hint some APIs search from
        try:
            versions = {s.entity: client.probe(s.entity, last.get(s.entity)) for s in sources}
        except Exception as exc:  # the API is down: say so, try again next tick
            return dg.SensorResult(skip_reason=f"{SYSTEMS[system].title} could not be probed: {exc}")
        finally:
            client.close()
        cursor = json.dumps(versions, sort_keys=True)
        changed = [s for s in sources if observed_version(context.instance, source_key(s)) != versions[s.entity]]
        if not changed:
            return dg.SensorResult(skip_reason="no change since the last observation", cursor=cursor)
        if waiting_run_collects(context, job_name, changed, (*WAITING, dg.DagsterRunStatus.STARTING)):
            # nothing is recorded: the change is seen again once the queued run has started
            return dg.SensorResult(skip_reason="a sync run that collects these entities is already waiting; "
                                               "it will collect this change")
        key = hashlib.sha256(cursor.encode()).hexdigest()[:16]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(
                run_key=f"{system}-{key}",
                asset_selection=downstream_of(tuple(changed)),
                tags={"talk/system": system, "talk/changed": ",".join(s.entity for s in changed)},
            )],
            asset_events=[observation(s, versions[s.entity], "sensor") for s in changed],
            cursor=cursor,
        )

    return _sensor


WEBHOOK_SENSOR_INTERVAL_S = 1  # the inbox is a local file: reading it every second costs nothing
# A notification's run starts before the polling runs already queued (one run at a time): the run queue
# launches higher `dagster/priority` run tags first, equal ones in order of arrival (default 0; Dagster's
# "Customizing run queue priority", docs.dagster.io/troubleshooting/run-queue). In a first `make run` the
# tour's edit waited 36 s behind two polling runs queued before it.
WEBHOOK_RUN_PRIORITY = "1"


def build_inbox_sensor(system: str, job_name: str = "sync_job") -> dg.SensorDefinition:
    """Turns the webhook inbox (talk_assets/webhooks/inbox.py) into runs of the changed entities.

    The cursor is the inbox's sequence number; the run key is derived from the notifications' ids,
    so a re-evaluated tick asks for the same run and a redelivered notification (already dropped by
    the inbox's unique id) starts nothing. A notification of a write the sync made itself (recorded
    by the push, matched by the record's change time) starts nothing either. The run collects the changed entities from the API, like
    a polling run: a notification is a reason to look, not data.
    """
    sources = {s.entity: s for s in SOURCES if s.system == system}

    @dg.sensor(
        name=f"{system}_webhooks",
        job_name=job_name,
        minimum_interval_seconds=WEBHOOK_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Reads the notifications {SYSTEMS[system].title} sent to the webhook receiver and requests "
                    "a run of what the changed entities reach (polling stays on as the safety net).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        after = int(context.cursor or 0)
        with Inbox() as inbox:
            inbox.claim_own(system, after)  # echoes of our own writes that came before the push recorded them
            pending = inbox.pending(system, after)
        if not pending:
            return dg.SensorResult(skip_reason="no notification since the last run request but the echoes of "
                                               "the sync's own writes")
        cursor = str(pending[-1].seq)
        changed = sorted({p.entity for p in pending if p.entity in sources})
        if not changed:
            return dg.SensorResult(skip_reason="notifications of no synced entity", cursor=cursor)
        if waiting_run_collects(context, job_name, [sources[e] for e in changed]):
            # the cursor stays: the notifications are read again once the waiting run has started
            return dg.SensorResult(skip_reason="a sync run that collects these entities is already waiting; "
                                               "it will collect these changes")
        key = hashlib.sha256("\n".join(sorted(p.event_id for p in pending)).encode()).hexdigest()[:16]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(
                run_key=f"{system}-webhook-{key}",
                asset_selection=downstream_of(tuple(sources[e] for e in changed)),
                tags={"talk/system": system, "talk/trigger": "webhook", "talk/changed": ",".join(changed),
                      "talk/notifications": str(len(pending)), "dagster/priority": WEBHOOK_RUN_PRIORITY},
            )],
            cursor=cursor,
        )

    return _sensor


SETTLE_SENSOR_INTERVAL_S = 5
ACTIVE = (*WAITING, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)


def build_settle_sensor(job_name: str = "sync_job") -> dg.SensorDefinition:
    """After a run's pushes read their writes back: a run of those types' merges, mappings and pushes, as
    a cycle's plan makes it (`CyclePlan.settle`). Without it the state kept the target records as they were
    before our write until the type's next change, and `explain` and the merge's metadata said the target's
    old value had been beaten while the target held the new one (seen in `make run`)."""

    @dg.sensor(
        name="settle_after_writes",
        job_name=job_name,
        minimum_interval_seconds=SETTLE_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="When a run's pushes have read their writes back, requests a run that merges, maps and pushes "
                    "those types again without reading any system, so the state holds what the targets now hold.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        # a run that is waiting or running merges or writes again: its own read-back is settled after it
        if context.instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=list(ACTIVE)), limit=1):
            return dg.SensorResult(skip_reason="a sync run is waiting or running")
        if not db_path().exists():
            return dg.SensorResult(skip_reason="no sync state yet")
        with connect(read_only=True) as con:
            noted = read_back_notes(con)
        if not noted:
            return dg.SensorResult(skip_reason="no write read back since its type's last merge")
        types = tuple(t for t, _ in noted)
        # one run per set of read-backs: a tick seeing the same notes asks for the same run (deduplicated)
        key = hashlib.sha256(repr(noted).encode()).hexdigest()[:16]
        return dg.SensorResult(run_requests=[dg.RunRequest(
            run_key=f"settle-{key}", asset_selection=settle_selection(types),
            tags={"talk/plan": "settle", "talk/settle": ",".join(types)})])

    return _sensor


def all_sensors() -> list[dg.SensorDefinition]:
    """A polling sensor per system and the settle sensor; with webhooks on (`TALK_WEBHOOK_PUBLIC_URL`), an
    inbox sensor per system that sends notifications too."""
    out = [build_change_sensor(s) for s in SYSTEMS] + [build_settle_sensor()]
    if settings().webhooks_on:
        out += [build_inbox_sensor(s) for s in receiving_systems() if s in SYSTEMS]
    return out
