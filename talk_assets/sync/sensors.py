"""Sensors: one per system, polling its API cheaply and asking for a sync run when it changed.

A sensor only reads (the probes are the source assets' observations: counts and newest change
times); the run does the work. The cursor holds the last data version of every entity of the
system, and the run key is derived from those versions, so a change is synced once: a second
evaluation that sees the same versions (a retried or previewed tick) requests nothing new.
"""

import hashlib
import json
import os

import dagster as dg

from talk_assets.config import SYSTEMS
from talk_assets.core.http import RetryPolicy
from talk_assets.sync.declaration import SOURCES

DEFAULT_POLL_S = 300


def poll_interval(system: str) -> int:
    """`TALK_<SYSTEM>_POLL_INTERVAL_S`, else `TALK_POLL_INTERVAL_S`, else 300 s (Sesam's default)."""
    value = os.environ.get(f"TALK_{system.upper()}_POLL_INTERVAL_S") or os.environ.get("TALK_POLL_INTERVAL_S")
    return int(value) if value else DEFAULT_POLL_S


def build_change_sensor(system: str, job_name: str = "sync_job") -> dg.SensorDefinition:
    sources = [s for s in SOURCES if s.system == system]

    @dg.sensor(
        name=f"{system}_changes",
        job_name=job_name,
        minimum_interval_seconds=poll_interval(system),
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={system},
        description=f"Polls {SYSTEMS[system].title} ({', '.join(s.entity for s in sources)}) every "
                    f"{poll_interval(system)} s and requests a sync run when its data version changed.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        client = getattr(context.resources, system).client()
        client.retry = RetryPolicy(max_retries=1, max_rate_limit_wait=5.0)  # a tick should answer fast
        try:
            versions = {s.entity: client.probe(s.entity) for s in sources}
        except Exception as exc:  # the API is down: say so, try again next tick
            return dg.SensorResult(skip_reason=f"{SYSTEMS[system].title} could not be probed: {exc}")
        finally:
            client.close()
        previous = json.loads(context.cursor) if context.cursor else None
        cursor = json.dumps(versions, sort_keys=True)
        if previous == versions:
            return dg.SensorResult(skip_reason="no change since the last sync", cursor=cursor)
        busy = context.instance.get_runs_count(dg.RunsFilter(job_name=job_name, statuses=[
            dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]))
        if busy:  # the cursor stays: the change is seen again once the queued run has started
            return dg.SensorResult(skip_reason="a sync run is already waiting; it will collect this change")
        changed = sorted(e for e in versions if not previous or previous.get(e) != versions[e])
        key = hashlib.sha256(cursor.encode()).hexdigest()[:16]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{system}-{key}", tags={"talk/system": system,
                                                                          "talk/changed": ",".join(changed)})],
            cursor=cursor,
        )

    return _sensor


def all_sensors() -> list[dg.SensorDefinition]:
    return [build_change_sensor(s) for s in SYSTEMS]
