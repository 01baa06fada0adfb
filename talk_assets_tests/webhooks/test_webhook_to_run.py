"""End to end: an edit in the CRM reaches the webshop through a webhook, not a poll: the sandbox
notifies, the receiver verifies and stores, the inbox sensor requests a run of what changed, and
that run (Dagster's sync_job) collects the edit and pushes it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import dagster as dg
import pytest
import requests

from talk_assets.sync.declaration import VIEWS_BY_KEY as V
from talk_assets.sync.sensors import build_inbox_sensor
from talk_assets.webhooks.inbox import Inbox
from talk_assets.webhooks.receiver import ReceiverServer
from talk_assets.webhooks.subscribe import sandbox_subscribe
from talk_assets_tests.conftest import Sandbox, Worlds
from talk_assets_tests.harness import SyncHarness


@pytest.fixture(scope="module")
def synced(sandbox: Sandbox, worlds: Worlds, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncHarness]:
    sandbox.reset()
    h = SyncHarness(sandbox, tmp_path_factory.mktemp("webhooks"))
    worlds.converge(h, limit=5)  # synced until quiet (once per test run; a copy of it here after)
    yield h
    sandbox.control("customcrm", "DELETE", "webhooks/subscriptions")


def test_an_edit_arrives_through_a_webhook_into_a_run(synced: SyncHarness, sandbox: Sandbox) -> None:
    os.environ["TALK_DATA_DIR"] = str(synced.data)
    receiver = ReceiverServer(Inbox(synced.data / "webhooks.sqlite"), host="127.0.0.1", port=0).start()
    try:
        sandbox_subscribe(sandbox.url("customcrm"), "customcrm", receiver.url)
        crm_view, ws_view = V["customcrm.customer"], V["customwebshop.customer"]
        gid, crm_id = synced.sql(
            "SELECT c.gid, c.record_id FROM links c JOIN links w ON w.gid = c.gid AND w.view = ? WHERE c.view = ? "
            "AND c.gid NOT IN (SELECT gid FROM dead_letters) ORDER BY c.gid LIMIT 1", [ws_view.vkey, crm_view.vkey])[0]
        ws_id = synced.member(gid, ws_view)
        phone = f"+479{int(time.time() * 1000) % 10**7:07d}"
        edited_at = time.monotonic()
        synced.client("customcrm").update_record("customers", crm_id, {"phone": phone})
        assert sandbox.control("customcrm", "POST", "webhooks/flush", json={"timeout_s": 15})["idle"]
        assert receiver.counts["customcrm new"] == 1
        result = build_inbox_sensor("customcrm").evaluate_tick(dg.build_sensor_context(instance=synced.instance))
        [request] = result.run_requests
        assert request.tags["talk/trigger"] == "webhook"
        report = synced.cycle(selection=list(request.asset_selection),
                              tags={k: v for k, v in request.tags.items()})
        took = time.monotonic() - edited_at
        assert set(report.collected) == {"customcrm.customers"}  # only what the notification named
        assert report.collected["customcrm.customers"].changed >= 1
        assert synced.client("customwebshop").get_record("customers", ws_id)["phone"] == phone
        assert took < 60, took
    finally:
        receiver.stop()
        receiver.inbox.close()


def test_the_sync_s_own_writes_come_back_as_notifications_that_start_no_run(
        synced: SyncHarness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run pushes a CRM edit to the webshop; the webshop notifies us of that write (as it notifies
    every subscriber), and its inbox sensor requests nothing for it. A person's edit of the same webshop
    record right after does start a run."""
    monkeypatch.setenv("TALK_DATA_DIR", str(synced.data))
    monkeypatch.setenv("TALK_WEBHOOK_PUBLIC_URL", "https://sync.example.no")  # webhooks on: pushes record writes
    receiver = ReceiverServer(Inbox(synced.data / "webhooks.sqlite"), host="127.0.0.1", port=0).start()
    try:
        for system in ("customcrm", "customwebshop"):
            sandbox_subscribe(sandbox.url(system), system, receiver.url)
        crm_view, ws_view = V["customcrm.customer"], V["customwebshop.customer"]
        gid, crm_id = synced.sql(
            "SELECT c.gid, c.record_id FROM links c JOIN links w ON w.gid = c.gid AND w.view = ? WHERE c.view = ? "
            "AND c.gid NOT IN (SELECT gid FROM dead_letters) ORDER BY c.gid DESC LIMIT 1",
            [ws_view.vkey, crm_view.vkey])[0]
        ws_id = synced.member(gid, ws_view)
        phone = f"+479{int(time.time() * 1000) % 10**7:07d}"
        synced.client("customcrm").update_record("customers", crm_id, {"phone": phone})
        assert sandbox.control("customcrm", "POST", "webhooks/flush", json={"timeout_s": 15})["idle"]
        cursors = {s: str(receiver.inbox.last_seq(s)) for s in ("customwebshop",)}
        crm_tick = build_inbox_sensor("customcrm").evaluate_tick(dg.build_sensor_context(instance=synced.instance))
        [request] = crm_tick.run_requests
        report = synced.cycle(selection=list(request.asset_selection), tags=dict(request.tags))
        assert report.pushed["customwebshop.customer"].updated >= 1
        assert synced.client("customwebshop").get_record("customers", ws_id)["phone"] == phone
        for system in ("customcrm", "customwebshop"):
            assert sandbox.control(system, "POST", "webhooks/flush", json={"timeout_s": 15})["idle"]
        for system, cursor in (("customcrm", crm_tick.cursor), ("customwebshop", cursors["customwebshop"])):
            quiet = build_inbox_sensor(system).evaluate_tick(
                dg.build_sensor_context(instance=synced.instance, cursor=cursor))
            assert quiet.run_requests == [], (system, quiet.run_requests)
        # the echo came, and is ours: claimed at receipt, or by the tick above where it came before the push
        # had recorded its write (the webshop notifies as it answers)
        counts = receiver.inbox.counts("customwebshop")
        assert counts["own"] >= 1 and counts["fresh"] == 0, (counts, dict(receiver.counts))
        # a person edits the record the sync has just written: that is a change, and starts a run
        synced.client("customwebshop").update_record("customers", ws_id, {"first_name": "Ærlige Åse 🙂"})
        assert sandbox.control("customwebshop", "POST", "webhooks/flush", json={"timeout_s": 15})["idle"]
        edit = build_inbox_sensor("customwebshop").evaluate_tick(
            dg.build_sensor_context(instance=synced.instance, cursor=cursors["customwebshop"]))
        [req] = edit.run_requests
        assert req.tags["talk/changed"] == "customers" and req.tags["talk/notifications"] == "1"
    finally:
        receiver.stop()
        receiver.inbox.close()


def test_the_echo_of_a_shopify_variant_write_starts_no_run(
        synced: SyncHarness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run pushes a CRM product's new price and stock to its Shopify variant (productVariantsBulkUpdate
    and inventorySetQuantities, addressed to the variant and its inventory item). Shopify notifies
    `products/update` for each, naming the product (payload `id`, its variants under `variants[]`), not
    the variant the push wrote to: each is recognised as ours and starts no run. A person's edit of the
    same product right after does."""
    from talk_assets.settings import settings
    from talk_assets.systems.shopify.webhooks import TOPICS

    monkeypatch.setenv("TALK_DATA_DIR", str(synced.data))
    monkeypatch.setenv("TALK_WEBHOOK_PUBLIC_URL", "https://sync.example.no")  # webhooks on: pushes record writes
    receiver = ReceiverServer(Inbox(synced.data / "webhooks.sqlite"), host="127.0.0.1", port=0).start()
    try:
        sandbox_subscribe(sandbox.url("customcrm"), "customcrm", receiver.url)
        # as webhookSubscriptionCreate would (systems/shopify/webhooks.py subscribe); through the sandbox's
        # control API so the subscription is gone after this test
        sandbox.control("shopify", "POST", "webhooks/subscriptions", json={
            "url": f"{receiver.url}/webhooks/shopify", "topics": list(TOPICS),
            "secret": settings().webhook_secret("shopify")})
        crm_view, sh_view = V["customcrm.product"], V["shopify.sesamproduct"]
        gid, crm_id = synced.sql(
            "SELECT c.gid, c.record_id FROM links c JOIN links s ON s.gid = c.gid AND s.view = ? WHERE c.view = ? "
            "AND c.gid NOT IN (SELECT gid FROM dead_letters) ORDER BY c.gid LIMIT 1", [sh_view.vkey, crm_view.vkey])[0]
        variant_id = synced.member(gid, sh_view)
        crm = synced.client("customcrm")
        before = crm.get_record("products", crm_id)
        price = round(float(before.get("unit_price") or 100) + 7.25, 2)
        stock = int(before.get("stock_quantity") or 0) + 3
        crm.update_record("products", crm_id, {"unit_price": f"{price:.2f}", "stock_quantity": stock})
        assert sandbox.control("customcrm", "POST", "webhooks/flush", json={"timeout_s": 15})["idle"]
        shopify_cursor = str(receiver.inbox.last_seq("shopify"))
        crm_tick = build_inbox_sensor("customcrm").evaluate_tick(dg.build_sensor_context(instance=synced.instance))
        [request] = crm_tick.run_requests
        report = synced.cycle(selection=list(request.asset_selection), tags=dict(request.tags))
        assert report.pushed["shopify.sesamproduct"].updated >= 1
        shopify = synced.client("shopify")
        product_id = next(pid for pid, payload in synced.sql(
            "SELECT record_id, payload::VARCHAR FROM raw_current WHERE system = 'shopify' AND entity = 'product'")
            if any(str(v.get("id")) == variant_id for v in json.loads(payload).get("variants") or []))
        variant = next(v for v in shopify.get_record("product", product_id)["variants"] if str(v["id"]) == variant_id)
        assert int(variant["inventory_quantity"]) == stock
        assert sandbox.control("shopify", "POST", "webhooks/flush", json={"timeout_s": 15})["idle"]
        quiet = build_inbox_sensor("shopify").evaluate_tick(
            dg.build_sensor_context(instance=synced.instance, cursor=shopify_cursor))
        assert quiet.run_requests == [], quiet.run_requests
        # both writes were notified (a price and a stock change), and both are ours: claimed at receipt, or by
        # the sensor's tick where the notification came before the push had recorded its write
        counts = receiver.inbox.counts("shopify")
        assert counts["own"] >= 2 and counts["fresh"] == 0, (counts, dict(receiver.counts))
        # a person edits the product the sync has just written: that is a change, and starts a run
        base = f"{sandbox.url('shopify')}/admin/api/{shopify_api_version()}"
        r = requests.put(f"{base}/products/{product_id}.json", headers=shopify_headers(), timeout=10,
                         json={"product": {"id": int(product_id), "body_html": "<p>Ærlig «saft» 🍓\nlinje 2</p>"}})
        assert r.status_code == 200, r.text
        assert sandbox.control("shopify", "POST", "webhooks/flush", json={"timeout_s": 15})["idle"]
        edit = build_inbox_sensor("shopify").evaluate_tick(
            dg.build_sensor_context(instance=synced.instance, cursor=shopify_cursor))
        [req] = edit.run_requests
        assert req.tags["talk/changed"] == "product" and req.tags["talk/notifications"] == "1"
    finally:
        receiver.stop()
        receiver.inbox.close()
        sandbox.control("shopify", "DELETE", "webhooks/subscriptions")


def shopify_api_version() -> str:
    from talk_assets.config import SHOPIFY

    return SHOPIFY.value("api_version")


def shopify_headers() -> dict[str, str]:
    from talk_assets.config import SHOPIFY

    return {"X-Shopify-Access-Token": SHOPIFY.value("access_token")}
