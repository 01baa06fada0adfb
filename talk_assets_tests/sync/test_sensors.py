"""The change sensors, evaluated through Dagster's test APIs against the sandbox."""

from __future__ import annotations

import dagster as dg

from talk_assets.resources import build_resources, client_from_env
from talk_assets.sync.sensors import all_sensors, build_change_sensor, poll_interval
from talk_assets_tests.conftest import Sandbox


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None,
          resources: dict) -> dg.SensorResult:
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return sensor.evaluate_tick(ctx)


def test_an_edit_produces_exactly_one_run_request_per_data_version(sandbox: Sandbox) -> None:
    sandbox.reset("shopify")
    sensor = build_change_sensor("shopify")
    resources = {"shopify": build_resources()["shopify"]}
    with dg.instance_for_test() as instance:
        first = _tick(sensor, instance, None, resources)
        assert len(first.run_requests) == 1  # nothing seen yet: one initial sync
        again = _tick(sensor, instance, first.cursor, resources)
        assert again.run_requests == [] and again.cursor == first.cursor
        client = client_from_env("shopify")
        customer = next(client.iter_records("customer"))
        client.update_record("customer", str(customer["id"]), {"note": "edited for the sensor test"})
        edited = _tick(sensor, instance, again.cursor, resources)
        assert len(edited.run_requests) == 1
        request = edited.run_requests[0]
        assert request.run_key != first.run_requests[0].run_key
        assert request.tags["talk/changed"] == "customer"
        # the same data version again (a retried or previewed tick): no second request
        repeat = _tick(sensor, instance, edited.cursor, resources)
        assert repeat.run_requests == []
        # a retried evaluation from the old cursor asks for the same run key, which Dagster dedupes
        retried = _tick(sensor, instance, again.cursor, resources)
        assert [r.run_key for r in retried.run_requests] == [request.run_key]


def test_a_system_that_cannot_be_reached_skips_with_a_reason(sandbox: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("TALK_SQUARESPACE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    sensor = build_change_sensor("squarespace")
    with dg.instance_for_test() as instance:
        res = _tick(sensor, instance, None, {"squarespace": build_resources()["squarespace"]})
    assert res.run_requests == [] and "could not be probed" in (res.skip_message or "")


def test_poll_interval_per_system_from_the_environment(monkeypatch) -> None:
    assert poll_interval("shopify") == 300
    monkeypatch.setenv("TALK_POLL_INTERVAL_S", "10")
    monkeypatch.setenv("TALK_SHOPIFY_POLL_INTERVAL_S", "30")
    assert poll_interval("shopify") == 30 and poll_interval("customcrm") == 10
    sensors = {s.name: s for s in all_sensors()}
    assert sensors["shopify_changes"].minimum_interval_seconds == 30
    assert sensors["customcrm_changes"].default_status == dg.DefaultSensorStatus.RUNNING
