"""The change sensors, evaluated through Dagster's sensor test APIs against the sandbox, and what a
materialization on demand sets off."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dagster as dg
import pytest

from talk_assets.definitions import all_resources, defs
from talk_assets.sync.assets import HttpTuning, all_assets, merge_key
from talk_assets.sync.runner import run_cycle, sync_job
from talk_assets.sync.sensors import all_sensors, build_change_sensor, poll_interval
from talk_assets_tests.conftest import Sandbox, Worlds
from talk_assets_tests.harness import SYSTEM_KEYS, SyncHarness


def _tick(system: str, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    """One evaluation, its observations stored as the sensor daemon stores them."""
    sensor = build_change_sensor(system)
    resources = {system: all_resources()[system], "http": HttpTuning()}
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def _selected(result: dg.SensorResult) -> set[str]:
    assert len(result.run_requests) == 1, result.run_requests
    return {k.to_user_string() for k in result.run_requests[0].asset_selection or []}


@pytest.fixture(scope="module")
def synced(sandbox: Sandbox, worlds: Worlds, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncHarness]:
    sandbox.reset()
    h = SyncHarness(sandbox, tmp_path_factory.mktemp("sensors"))
    worlds.converge(h, limit=5)  # synced until quiet (once per test run; a copy of it here after)
    yield h


def test_a_change_in_one_system_requests_only_what_depends_on_it(synced: SyncHarness) -> None:
    instance = synced.instance
    for s in SYSTEM_KEYS:
        _tick(s, instance)
    # the source assets are observed now, with data versions (the UI no longer says "Never observed")
    record = instance.get_latest_data_version_record(dg.AssetKey(["customwebshop", "customers"]), is_source=True)
    assert record is not None and record.asset_observation.tags.get("dagster/data_version")
    quiet = _tick("customwebshop", instance)
    assert quiet.run_requests == [] and "no change" in (quiet.skip_message or "")
    shop = synced.client("customwebshop")
    customer = next(iter(shop.iter_records("customers")))
    shop.update_record("customers", str(customer["id"]), {"phone": f"9{uuid.uuid4().int % 10**7:07d}"})
    # a run waiting for Shopify's products does not collect the webshop's customers: it holds nothing back
    from dagster._core.test_utils import create_run_for_test

    from talk_assets.sync.declaration import SOURCES
    from talk_assets.sync.sensors import downstream_of
    other = create_run_for_test(instance, job_name="sync_job", status=dg.DagsterRunStatus.NOT_STARTED,
                                asset_selection=frozenset(downstream_of(tuple(
                                    s for s in SOURCES if (s.system, s.entity) == ("shopify", "product")))))
    try:
        edited = _tick("customwebshop", instance)
    finally:
        instance.delete_run(other.run_id)
    selected = _selected(edited)
    assert "dagster/priority" not in edited.run_requests[0].tags  # a poll queues in order; a webhook's run goes first
    assert "customwebshop/collected/customers" in selected and "merge/customer" in selected
    assert "customcrm/pushed/customer" in selected  # where the webshop's customers go
    # nothing of the other systems' sources, nor of the webshop's unchanged entities, nor unrelated merges
    assert not {k for k in selected if "/collected/" in k} - {"customwebshop/collected/customers"}, selected
    # the merges the selected mappings read are in (reused, not rebuilt, when unchanged: the order
    # mappings read the users, and a new state file has no user merge yet); unrelated ones are not
    assert "merge/product" not in selected and "merge/user" in selected
    assert edited.run_requests[0].tags["talk/changed"] == "customers"
    # the same versions again: observed now, so no second request
    assert _tick("customwebshop", instance).run_requests == []


def test_after_a_cycle_that_wrote_to_a_system_its_next_poll_requests_no_run(synced: SyncHarness) -> None:
    instance = synced.instance
    for s in SYSTEM_KEYS:
        _tick(s, instance)
    t = uuid.uuid4().hex[:8]
    synced.client("customwebshop").create_record("customers", {"email": f"sensor.{t}@example.no",
                                                               "first_name": "Sensor", "last_name": f"Test{t}"})
    request = _tick("customwebshop", instance).run_requests[0]
    synced.reset_stats()
    report = run_cycle(instance=instance, selection=list(request.asset_selection))
    assert not report.errors, report.errors
    assert report.pushed["customcrm.customer"].created >= 1  # the cycle wrote to the CRM...
    assert synced.writes()["customcrm"] >= 1
    assert not {k for k in report.collected} - {"customwebshop.customers"}  # ...having collected only the change
    for s in SYSTEM_KEYS:  # ...and no sensor takes its own writes (or the change it synced) for a new change
        res = _tick(s, instance)
        assert res.run_requests == [], (s, res.run_requests)


def test_a_system_that_cannot_be_reached_skips_with_a_reason(sandbox: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("TALK_SQUARESPACE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with dg.instance_for_test() as instance:
        res = _tick("squarespace", instance)
    assert res.run_requests == [] and "could not be probed" in (res.skip_message or "")


def test_poll_interval_per_system_from_the_environment(monkeypatch) -> None:
    assert poll_interval("shopify") == 300
    monkeypatch.setenv("TALK_POLL_INTERVAL_S", "10")
    monkeypatch.setenv("TALK_SHOPIFY_POLL_INTERVAL_S", "30")
    assert poll_interval("shopify") == 30 and poll_interval("customcrm") == 10
    sensors = {s.name: s for s in all_sensors()}
    assert sensors["shopify_changes"].minimum_interval_seconds == 30
    assert sensors["customcrm_changes"].default_status == dg.DefaultSensorStatus.RUNNING


# -- materialize on demand ---------------------------------------------------------------------------
def test_nothing_materializes_downstream_by_itself() -> None:
    """No automation condition and no automation sensor: a run on demand is what the user selected."""
    assert all(a.automation_conditions_by_key.get(k) is None for a in all_assets()
               if isinstance(a, dg.AssetsDefinition) for k in a.keys)
    assert not [s for s in defs.sensors or [] if isinstance(s, dg.AutomationConditionSensorDefinition)]
    assert {s.name for s in defs.sensors or []} == {f"{s}_changes" for s in SYSTEM_KEYS} | {"settle_after_writes"}


def test_materializing_merge_customer_alone_makes_no_write(synced: SyncHarness) -> None:
    synced.reset_stats()
    job = sync_job()  # what the UI runs: the job of the definitions, with the resources of this environment
    result = job.execute_in_process(instance=synced.instance, asset_selection=[merge_key("customer")],
                                    raise_on_error=False)
    assert result.success
    mats = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert mats == {"merge/customer"}
    assert synced.writes() == dict.fromkeys(SYSTEM_KEYS, 0)


def test_a_runs_pushes_start_as_soon_as_what_they_read_is_made(synced: SyncHarness) -> None:
    """Edit to visible: in the run a change requests, each push starts as soon as the steps it depends on
    are done, before the merges and mappings that only later pushes need (Dagster's step priority). So the
    edit's target is written early in the run, not after every mapping of every type it reaches."""
    from talk_assets.sync.declaration import SOURCES
    from talk_assets.sync.sensors import downstream_of

    shop = synced.client("customwebshop")
    customer = next(iter(shop.iter_records("customers")))
    shop.update_record("customers", str(customer["id"]), {"phone": f"4{uuid.uuid4().int % 10**7:07d}"})
    selection = downstream_of(tuple(s for s in SOURCES if s.key == "customwebshop.customers"))
    report = synced.cycle(selection=selection)
    starts = [e.step_key for e in synced.instance.all_logs(report.run_id, of_type=dg.DagsterEventType.STEP_START)]
    assert len(starts) == len(set(starts)) and "customcrm__pushed__customer" in starts, starts
    graph = defs.resolve_asset_graph()
    by_step = {k.to_python_identifier(): k for k in selection}
    pushes = [s for s in starts if "__pushed__" in s]
    assert len(pushes) >= 5, starts
    for step in pushes:
        needs = [starts.index(p.to_python_identifier()) for p in graph.get(by_step[step]).parent_keys
                 if p.to_python_identifier() in starts]
        ready = max(needs, default=-1)
        between = [s for s in starts[ready + 1:starts.index(step)] if "__pushed__" not in s]
        assert not between, f"{step} was ready after {starts[ready]} but waited for {between}"
    # and the edited type's pushes go before the mappings and pushes of the types that reference it: the
    # orders' steps, ready as soon as the order merge is, do not come between it and the CRM's customer push
    from talk_assets.sync.declaration import VIEWS, referenced_types

    target = "customcrm__pushed__customer"
    needed = {k.to_python_identifier() for k in dg.AssetSelection.assets(by_step[target]).upstream().resolve(graph)}
    referencing = {f"{v.system}__{stage}__{v.vkey.split('.', 1)[1]}" for v in VIEWS
                   if "customer" in referenced_types(v.global_type) for stage in ("mapped", "pushed")}
    early = [s for s in starts[:starts.index(target)] if s not in needed and s in referencing]
    assert not early, f"{target} waited for steps of the orders: {early}"


def test_every_edit_of_a_record_the_sync_wrote_reaches_the_target_by_sensor_runs(synced: SyncHarness) -> None:
    """Found in `make run`: the tour's edit reached the CRM, the next edits of the same customer never did.
    A sensor's run reads only the changed system, and the push recorded the CRM's version after its own
    write as seen, so the CRM was never read again: the next update named the version before our write
    (a conflict, every run) and a value put back to what the CRM held before would have looked unchanged.
    Each edit here is one run as the webshop's sensor requests it, and each must reach the CRM."""
    from talk_assets.sync.declaration import SOURCES
    from talk_assets.sync.sensors import downstream_of

    shop, crm = synced.client("customwebshop"), synced.client("customcrm")
    pairs = synced.sql("SELECT a.record_id, b.record_id FROM links a JOIN links b USING (gid) "
                       "WHERE a.view = 'customwebshop.customer' AND b.view = 'customcrm.customer' "
                       "AND gid IN (SELECT gid FROM links GROUP BY gid HAVING count(*) = 2) ORDER BY a.record_id")
    assert pairs
    web_id, crm_id = pairs[0]
    original = crm.get_record("customers", crm_id)["city"]
    selection = downstream_of(tuple(s for s in SOURCES if s.key == "customwebshop.customers"))
    for city in ("Lillehammer", "Hønefoss", "Ås", original):
        shop.update_record("customers", web_id, {"billing_address": {"city": city}})
        report = synced.cycle(selection=selection)
        assert crm.get_record("customers", crm_id)["city"] == city, report.summary() if hasattr(report, "summary") else report
        assert report.pushed["customcrm.customer"].conflicts == 0


def test_a_push_run_again_before_its_mapping_does_not_create_twice(synced: SyncHarness) -> None:
    """A push that runs without its mapping (a run of another system's entities reaches it through the
    push order, or the UI materializes it alone) sees the mapping made before its own last create. Found
    in `make run` once pushes read back what they write: 21 Shopify orders created twice, because the
    guard "created since the target was last read" no longer held once the read-back had read it."""
    from talk_assets.sync.assets import pushed_key
    from talk_assets.sync.declaration import SOURCES, VIEWS_BY_KEY
    from talk_assets.sync.sensors import downstream_of

    shop, crm = synced.client("customwebshop"), synced.client("customcrm")
    email = f"ny.kunde.{uuid.uuid4().hex[:6]}@example.no"
    shop.create_record("customers", {"email": email, "first_name": "Ny", "last_name": "von Kunde",
                                     "billing_address": {"city": "Bø", "country_code": "NO"}})
    synced.cycle(selection=downstream_of(tuple(s for s in SOURCES if s.key == "customwebshop.customers")))
    assert [c["email"] for c in crm.iter_records("customers") if c.get("email") == email] == [email]
    push_only = [pushed_key(VIEWS_BY_KEY["customcrm.customer"])]
    again = synced.cycle(selection=push_only)
    assert again.pushed["customcrm.customer"].created == 0
    assert [c["email"] for c in crm.iter_records("customers") if c.get("email") == email] == [email]
    # and an update it made is not made again from the mapping it was made from
    web_id = next(str(c["id"]) for c in shop.iter_records("customers") if c.get("email") == email)
    shop.update_record("customers", web_id, {"billing_address": {"city": "Sauda"}})
    synced.cycle(selection=downstream_of(tuple(s for s in SOURCES if s.key == "customwebshop.customers")))
    assert next(c for c in crm.iter_records("customers") if c.get("email") == email)["city"] == "Sauda"
    synced.reset_stats()
    again = synced.cycle(selection=push_only)
    assert again.pushed["customcrm.customer"].updated == 0 and synced.writes()["customcrm"] == 0


def test_a_tick_probes_from_the_tokens_in_its_cursor(synced: SyncHarness, sandbox: Sandbox) -> None:
    """Squarespace's products and orders cannot be counted or sorted: without a token the probe searches
    windows back to the newest change (the seed's, months old: several list reads each); from the last
    tick's token (the sensor's cursor) one read each, and the same versions."""
    sandbox.reset("squarespace")  # the seed alone: no change in the last hour (reset again at the end)
    try:
        sandbox.control("squarespace", "POST", "stats/reset")
        first = _tick("squarespace", synced.instance)
        cold = sandbox.stats("squarespace")["requests"]
        assert cold.get("GET products", 0) > 1 and cold.get("GET orders", 0) > 1, cold
        sandbox.control("squarespace", "POST", "stats/reset")
        again = _tick("squarespace", synced.instance, first.cursor)
        assert again.cursor == first.cursor
        warm = sandbox.stats("squarespace")["requests"]
        assert warm.get("GET products", 0) == 1 and warm.get("GET orders", 0) == 1, warm
        sandbox.control("squarespace", "POST", "stats/reset")
        other = _tick("squarespace", synced.instance, "not json")  # a cursor of another form: no hint, no failure
        assert other.cursor == first.cursor and sandbox.stats("squarespace")["requests"] == cold
    finally:
        sandbox.reset("squarespace")


def test_after_a_sensor_run_wrote_somewhere_the_settle_sensor_merges_what_it_read_back(synced: SyncHarness) -> None:
    """Found in `make run` (`explain` after an edit): a sensor's run wrote the CRM's new phone to the webshop and
    read it back, but nothing merged what it read, so `explain` said the webshop's old phone was beaten by the
    edit while the webshop held the new one. The settle sensor asks for a run of the read-back type's merges,
    mappings and pushes (no collect); after it the webshop's record holds the phone as an echo of the CRM's
    edit, and the next tick asks for nothing."""
    from talk_assets.sync.declaration import SOURCES
    from talk_assets.sync.sensors import build_settle_sensor, downstream_of

    crm = synced.client("customcrm")
    crm_id, ws_id = synced.sql("SELECT a.record_id, b.record_id FROM links a JOIN links b USING (gid) "
                               "WHERE a.view = 'customcrm.customer' AND b.view = 'customwebshop.customer' "
                               "ORDER BY a.record_id LIMIT 1")[0]
    crm.update_record("customers", crm_id, {"phone": f"+47 4{uuid.uuid4().int % 10**7:07d}"})
    synced.cycle(selection=downstream_of(tuple(s for s in SOURCES if s.key == "customcrm.customers")))
    node = ("SELECT n.phone = g.phone, n.phone__origin FROM nodes_customer n JOIN members_customer m USING (nsid) "
            "JOIN merged_customer g USING (gid) WHERE n.nsid = ?")
    ws_nsid = f"customwebshop-customers:{ws_id}"
    assert synced.sql(node, [ws_nsid]) == [(False, None)]  # what `make run` left: the old phone, the webshop's own

    def tick() -> dg.SensorResult:
        return build_settle_sensor().evaluate_tick(dg.build_sensor_context(instance=synced.instance))

    request = tick().run_requests[0]
    keys = {k.to_user_string() for k in request.asset_selection}
    assert "merge/customer" in keys and not any("/collected/" in k for k in keys), keys
    synced.reset_stats()
    synced.cycle(selection=list(request.asset_selection))
    assert not any(synced.writes().values()), synced.writes()
    assert synced.sql(node, [ws_nsid]) == [(True, f"customcrm-customers:{crm_id}")]
    assert tick().run_requests == []
