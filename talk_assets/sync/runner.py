"""The one way a sync cycle runs: Dagster's `sync_job`, executed in this process.

`talk-assets sync`, `talk-assets dlq replay`, the tests and the benchmarks call `run_cycle`, which
executes the same job the UI and the sensors launch (same assets, blocking checks, resources,
ordering, link versions and metadata) and records the run in a Dagster instance: by default the
one the UI uses (`$DAGSTER_HOME`, else `<data dir>/dagster_home` as `talk-assets run` sets it), so
Runs lists CLI cycles too. The returned `CycleReport` is read back from the run's events: the
materializations' metadata, the step failures, the skipped steps and the check evaluations.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg

from talk_assets.sync.assets import BREAKER_TAG, HTTP, HttpTuning, pushed_key
from talk_assets.sync.collect import BadRecord, CollectResult, bad_lines, stored_probes
from talk_assets.sync.declaration import SOURCES
from talk_assets.sync.mapping import target_views
from talk_assets.sync.plan import CyclePlan, mark_unsettled, plan_cycle, probe_all, record_planned
from talk_assets.sync.push import PushResult, PushSettings
from talk_assets.sync.sensors import probe_client
from talk_assets.sync.store import StateFileError, connect, data_dir, db_path, session


@dataclass
class CycleReport:
    """What one run of `sync_job` did, per system entity (collect) and target view (push)."""

    collected: dict[str, CollectResult] = field(default_factory=dict)
    pushed: dict[str, PushResult] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    breaker: list[str] = field(default_factory=list)  # the circuit breaker's messages, one per stopped view
    held: dict[str, str] = field(default_factory=dict)  # view key -> why its push did not run
    failed_checks: list[str] = field(default_factory=list)  # failed blocking checks: "asset check: verdict"
    run_id: str = ""  # the (last) run's id; "" when the plan found nothing to run
    success: bool = True
    plan: CyclePlan | None = None  # what the cycle's plan selected and why (None: the whole job ran)
    run_ids: list[str] = field(default_factory=list)

    def absorb(self, other: CycleReport) -> None:
        """Add a follow-up run's report to this cycle's."""
        self.collected.update(other.collected)
        self.pushed.update(other.pushed)
        self.unchanged.update(other.unchanged)
        self.held.update(other.held)
        self.errors += other.errors
        self.breaker += other.breaker
        self.failed_checks += other.failed_checks
        self.run_ids += other.run_ids
        self.run_id = other.run_id or self.run_id
        self.success = self.success and other.success

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for key, c in self.collected.items():
            out.append({"system entity": key, "collected": c.new + c.changed, "read": c.read, "created": "-",
                        "updated": "-", "unchanged": "-", "conflicts": "-", "failed": c.rejected})
        for key, p in self.pushed.items():
            out.append({"system entity": f"{key} (push)", "collected": "-", "read": "-", "created": p.created,
                        "updated": p.updated, "unchanged": self.unchanged.get(key, 0), "conflicts": p.conflicts,
                        "failed": p.not_written})
        return out

    @property
    def rejected(self) -> list[str]:
        """The records collect rejected (bad input), by system, record and field."""
        return [line for c in self.collected.values() for line in bad_lines(c.bad)]

    @property
    def writes(self) -> int:
        return sum(p.created + p.updated for p in self.pushed.values())


# -- the instance ----------------------------------------------------------------------------------
def dagster_home() -> Path:
    """The instance the UI uses: `$DAGSTER_HOME`, else `<data dir>/dagster_home` (as `talk-assets run`)."""
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) if home else data_dir().resolve() / "dagster_home"


def ui_instance(home: Path | None = None) -> dg.DagsterInstance:
    """The UI's instance (or the one in `home`), its `dagster.yaml` written the way `talk-assets run` writes
    it when new."""
    from talk_assets.devserver import write_instance_yaml

    home = home or dagster_home()
    write_instance_yaml(home)
    return dg.DagsterInstance.from_config(str(home))


# -- the job ---------------------------------------------------------------------------------------
def sync_job() -> dg.JobDefinition:
    """`sync_job` with the resources the environment names now (a system's URL variable may have been
    set after `talk_assets.definitions` was imported, e.g. by a test's sandbox)."""
    from talk_assets.definitions import all_resources

    resources = all_resources()
    return _job_for(repr(sorted((k, repr(v)) for k, v in resources.items())), resources)


_JOBS: dict[str, dg.JobDefinition] = {}


def _job_for(key: str, resources: dict[str, object]) -> dg.JobDefinition:
    if key not in _JOBS:
        from talk_assets.definitions import JOB_NAME, build_defs

        _JOBS[key] = build_defs(resources).resolve_job_def(JOB_NAME)
    return _JOBS[key]


def _by_stage() -> dict[str, tuple[str, str]]:
    """Asset key (user string) -> (stage, declaration key), for reading a run's events back."""
    from talk_assets.sync.assets import collected_key, mapped_key, pushed_key

    out = {collected_key(s).to_user_string(): ("collect", s.key) for s in SOURCES}
    for v in target_views():
        out[mapped_key(v).to_user_string()] = ("mapped", v.vkey)
        out[pushed_key(v).to_user_string()] = ("push", v.vkey)
    return out


def run_config(*, full: bool = False, settings: PushSettings | None = None, http: HttpTuning | None = None,
               log_level: str = "ERROR") -> dict:
    """The job's run config for one cycle: full collect, confirmed or dry pushes, the clients' timeouts
    and retries (the `http` resource), log level."""
    from talk_assets.sync.assets import collected_key, pushed_key

    settings = settings or PushSettings()
    ops: dict[str, Any] = {}
    if full:
        ops.update({collected_key(s).to_python_identifier(): {"config": {"full_sync": True}} for s in SOURCES})
    defaults = PushSettings()
    if settings != PushSettings(confirm_large=False, dry_run=False, max_update_share=defaults.max_update_share,
                                breaker_min_rows=defaults.breaker_min_rows):
        push = {"confirm_large_change": settings.confirm_large, "dry_run": settings.dry_run,
                "max_update_share": settings.max_update_share, "breaker_min_rows": settings.breaker_min_rows}
        ops.update({pushed_key(v).to_python_identifier(): {"config": push} for v in target_views()})
    config: dict[str, Any] = {"ops": ops, "loggers": {"console": {"config": {"log_level": log_level}}}}
    tuning = {k: v for k, v in (http.model_dump() if http else {}).items() if v is not None}
    if tuning:
        config["resources"] = {HTTP: {"config": tuning}}
    return config


@contextlib.contextmanager
def _scratch_state() -> Iterator[Path]:
    """A temporary copy of the state file, so a dry run leaves the real one untouched."""
    original = db_path()
    tmp = Path(tempfile.mkdtemp(prefix="talk-dry-run-"))
    saved = os.environ.get("TALK_DATA_DIR")
    try:
        if original.exists():
            shutil.copy2(original, tmp / original.name)
        os.environ["TALK_DATA_DIR"] = str(tmp)
        yield tmp
    finally:
        if saved is None:
            os.environ.pop("TALK_DATA_DIR", None)
        else:
            os.environ["TALK_DATA_DIR"] = saved
        shutil.rmtree(tmp, ignore_errors=True)


def run_cycle(
    *,
    full: bool = False,
    settings: PushSettings | None = None,
    http: HttpTuning | None = None,
    instance: dg.DagsterInstance | None = None,
    scratch_state: bool = False,
    selection: list[dg.AssetKey] | None = None,
    tags: dict[str, str] | None = None,
    log_level: str = "ERROR",
) -> CycleReport:
    """Execute `sync_job` once in this process and report what it did.

    `settings.dry_run` turns the pushes' writes off (they log the calls instead); `scratch_state`
    also runs against a temporary copy of the state file (the CLI's `--dry-run`), otherwise the
    collect, merge, links and mapping steps update the state as in any run. `http` configures the
    clients' timeouts and retries; `instance` defaults to the UI's (`ui_instance`).
    """
    settings = settings or PushSettings()
    owned = instance is None
    home = dagster_home()  # now: a dry run's scratch state moves the data dir, not the UI's instance
    config = run_config(full=full, settings=settings, http=http, log_level=log_level)
    tags = {"talk/runner": "in-process", **({"talk/dry_run": "true"} if settings.dry_run else {}), **(tags or {})}

    def execute(keys: list[dg.AssetKey] | None, extra: dict[str, str]) -> CycleReport:
        nonlocal instance
        # opened for the first run only: a cycle that finds nothing to do (a cron'd `sync --once` on a
        # quiet day) does not load Dagster's storage (a quiet `sync --once` at size 60: 4.9 -> 3.1 s)
        instance = instance or ui_instance(home)
        result = sync_job().execute_in_process(run_config=config, instance=instance, raise_on_error=False,
                                               asset_selection=keys, tags={**tags, **extra})
        report = report_of(result)
        report.run_ids.append(report.run_id)
        return report

    try:
        with contextlib.ExitStack() as stack:
            if scratch_state:
                stack.enter_context(_scratch_state())
            stack.enter_context(session())  # one DuckDB connection for the whole cycle (~80 opens otherwise)
            if selection is not None or full:  # what the caller chose, or everything (a full sync)
                return execute(selection, {})
            plan = _plan(http)
            keys = plan.selection()
            if keys == []:  # nothing changed, nothing pending: no run
                return CycleReport(plan=plan)
            if not settings.dry_run:
                with connect() as con:
                    mark_unsettled(con, plan)
            report = execute(keys, plan.reasons())
            report.plan = plan
            found = [k for k, c in report.collected.items() if c.new or c.changed]
            if (more := plan.followup(found)):
                report.absorb(execute(more, {"talk/plan": "follow-up: a recheck found records",
                                             "talk/changed": ",".join(found)}))
            if report.success and not settings.dry_run:
                with connect() as con:
                    record_planned(con)
            return report
    finally:
        if owned and instance is not None:
            instance.dispose()


def _plan(http: HttpTuning | None) -> CyclePlan:
    """Probe every entity and compare with the state (talk_assets/sync/plan.py)."""
    from talk_assets.resources import client_from_env

    tuning = http or HttpTuning()
    with connect() as con:
        previous = stored_probes(con)
    probes = probe_all(lambda system: probe_client(tuning.apply(client_from_env(system))), previous)
    with connect() as con:
        return plan_cycle(con, probes)


def report_of(result: dg.ExecuteInProcessResult) -> CycleReport:
    """The CycleReport of a finished run, from its events."""
    stages = _by_stage()
    report = CycleReport(run_id=result.run_id, success=result.success)
    failed_checks: dict[str, str] = {}
    state_error = ""
    for event in result.all_events:
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            stage, key = stages.get(mat.asset_key.to_user_string(), ("", ""))
            md = {k: v.value for k, v in mat.metadata.items()}
            if stage == "collect" and "read" in md:
                report.collected[key] = _collect_result(key, md)
            elif stage == "mapped":
                report.unchanged[key] = int(md.get("unchanged", 0))
            elif stage == "push":
                report.pushed[key] = _push_result(key, md)
        elif kind == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            if ev.passed:
                continue
            target = ev.asset_key.to_user_string()
            md = {k: v.value for k, v in ev.metadata.items()}
            if ev.check_name == "read_complete":
                stage, key = stages.get(target, ("", target))
                report.errors.append(f"{key}: {md.get('error', 'the read failed')}")
            elif ev.severity == dg.AssetCheckSeverity.ERROR:
                why = ev.description or md.get("verdict") or "failed"
                failed_checks[target] = failed_checks.get(target, "") + f"{ev.check_name}: {why}; "
                report.failed_checks.append(f"{target} {ev.check_name}: {why}")
        elif kind == "STEP_FAILURE":
            key = _asset_of_step(event.step_key)
            stage, name = stages.get(key, ("", key or event.step_key))
            data = event.step_failure_data
            user = data.user_failure_data if data else None
            if data is not None and data.error is not None and "DagsterAssetCheckFailedError" in (data.error.cls_name or ""):
                continue  # a blocking check failed: its evaluation is reported, what depends on it is held
            unreadable = _state_error(data.error if data else None)
            if unreadable:
                state_error = unreadable
                continue
            if user is not None and user.metadata.get(BREAKER_TAG) is not None:
                report.breaker.append(user.description or "circuit breaker")
            elif user is not None and user.description:
                report.errors.append(f"{name}: {user.description}")
            else:
                report.errors.append(f"{name}: {_error_text(data.error if data else None)}")
    if state_error:  # the state file cannot be read: what happened and how to recover, not a run's errors
        raise StateFileError.reported(db_path(), state_error)
    # pushes that did not run: held by a failed blocking check upstream, or by a failed upstream step
    for v in target_views():
        if v.vkey in report.pushed or any(e.startswith(f"{v.vkey}:") for e in report.errors) \
                or any(v.name in b and v.system in b for b in report.breaker):
            continue
        key = pushed_key(v)
        if not _in_run(result, key):
            continue
        upstream = _upstream(key)
        reasons = [f"{t} {why.rstrip('; ')}" for t, why in failed_checks.items() if t in upstream]
        failed_up = [e for e in report.errors if e.split(":", 1)[0] in {stages.get(u, ("", u))[1] for u in upstream}]
        report.held[v.vkey] = ("blocking check failed upstream: " + " | ".join(reasons)) if reasons else \
            ("an upstream step failed: " + " | ".join(failed_up[:3])) if failed_up else "not run"
    return report


def _asset_of_step(step_key: str | None) -> str:
    from talk_assets.definitions import asset_graph

    if not step_key:
        return ""
    for node in asset_graph().asset_nodes:
        if node.key.to_python_identifier() == step_key:
            return node.key.to_user_string()
    return ""


def _in_run(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> bool:
    selection = result.dagster_run.asset_selection
    return not selection or key in selection


@cache
def _upstream_of(key_str: str) -> frozenset[str]:
    from talk_assets.definitions import asset_graph

    key = dg.AssetKey.from_user_string(key_str)
    keys = dg.AssetSelection.assets(key).upstream().resolve(asset_graph())
    return frozenset(k.to_user_string() for k in keys)


def _upstream(key: dg.AssetKey) -> frozenset[str]:
    return _upstream_of(key.to_user_string())


def _state_error(error: Any) -> str:
    """The message of a `StateFileError` in a step's error chain ("" when there is none)."""
    while error is not None:
        if getattr(error, "cls_name", "") == "StateFileError":
            return (error.message or "").strip().splitlines()[-1].split(": ", 1)[-1]
        error = getattr(error, "cause", None)
    return ""


def _error_text(error: Any) -> str:
    """The innermost cause of a step's error: the exception the step raised (an ApiError names the
    system, the call and the status)."""
    if error is None:
        return "failed"
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return (error.message or "").strip().splitlines()[-1] if error.message else "failed"


def _collect_result(key: str, md: dict[str, Any]) -> CollectResult:
    system, entity = key.split(".", 1)
    bad = [BadRecord(**b) for b in md.get("rejected_detail") or []]
    return CollectResult(system, entity, read=int(md["read"]), new=int(md.get("new", 0)),
                         changed=int(md.get("changed", 0)), unchanged=int(md.get("unchanged", 0)), bad=bad)


def _push_result(key: str, md: dict[str, Any]) -> PushResult:
    return PushResult(key, created=int(md.get("created", 0)), updated=int(md.get("updated", 0)),
                      conflicts=int(md.get("conflicts", 0)), failed=int(md.get("failed", 0)),
                      skipped=int(md.get("skipped", 0)), pending_refs=int(md.get("waiting_for_reference", 0)),
                      held=int(md.get("held", 0)), held_reason=str(md.get("held_reason") or ""),
                      not_confirmed=int(md.get("not_confirmed", 0)), resolved=int(md.get("dead_letters_resolved", 0)),
                      calls=list(md.get("calls") or []), failures=list(md.get("failure_detail") or []))

